//go:build linux

package sensor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/ring"
)

// flowRec is what the tests compare of one flow key: how many connections
// had it, their packets per side, and which workers held them.
type flowRec struct {
	Conns   int
	Pkts    [2]uint64
	Seq     [2]uint64 // sequence space each side sent (end - ISN)
	Workers map[int]bool
}

// result is one run of the pipeline over the same traffic.
type result struct {
	sum    Summary
	events []map[string]any
	flows  map[flowtable.Key]*flowRec
}

func newRecorder() (*result, func(int, *flowtable.Conn)) {
	r := &result{flows: map[flowtable.Key]*flowRec{}}
	var mu sync.Mutex
	return r, func(w int, c *flowtable.Conn) {
		mu.Lock()
		defer mu.Unlock()
		f := r.flows[c.Key]
		if f == nil {
			f = &flowRec{Workers: map[int]bool{}}
			r.flows[c.Key] = f
		}
		f.Conns++
		f.Workers[w] = true
		for i := range f.Pkts {
			f.Pkts[i] += uint64(c.Side[i].Pkts)
			f.Seq[i] += uint64(c.Side[i].NextSeq - c.Side[i].ISN)
		}
	}
}

func parseJSONLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("event is not JSON: %v: %s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// liveRun captures on the wire with workers while tcpreplay sends file at
// its recorded pace, and stops as soon as every frame arrived. tcpdump
// records the same traffic beside it: its file has the kernel timestamps
// the live workers saw, which tcpreplay only approximates.
func liveRun(t *testing.T, w *netlab.Wire, file string, workers int) (r *result, sent int, seen string) {
	t.Helper()
	seen = filepath.Join(t.TempDir(), "seen.pcap")
	td := w.Capture(netlab.WireCapture, seen, "")
	live, err := ring.OpenLive(ring.LiveConfig{Interfaces: []string{netlab.WireCapture}, Workers: workers, Netns: w.Path})
	if err != nil {
		t.Fatal(err)
	}
	var rec func(int, *flowtable.Conn)
	r, rec = newRecorder()
	var out, logb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		r.sum, err = Capture(ctx, live, Config{Workers: workers, Flows: 1 << 16, flowEnded: rec}, &out, slog.New(slog.NewTextHandler(&logb, nil)))
		done <- err
	}()
	sent, err = w.Replay(file, false)
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if st := live.Stats(); st[0].Frames >= uint64(sent) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Capture: %v\n%s", err, logb.String())
	}
	if st := td.Stop(); st.Captured != sent {
		t.Fatalf("tcpdump beside the sensor captured %d packets of %d sent: %+v", st.Captured, sent, st)
	}
	if logb.Len() > 0 {
		t.Logf("capture log:\n%s", logb.String())
	}
	r.events = parseJSONLines(t, out.Bytes())
	return r, sent, seen
}

func replayRun(t *testing.T, file string, workers int) *result {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(file, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		in = zr
	}
	r, rec := newRecorder()
	var out bytes.Buffer
	r.sum, err = Replay(context.Background(), in, Config{Workers: workers, Flows: 1 << 16, flowEnded: rec}, &out)
	if err != nil {
		t.Fatal(err)
	}
	r.events = parseJSONLines(t, out.Bytes())
	return r
}

// TestCaptureMatchesReplay sends recorded kernel captures onto a veth with
// tcpreplay at their recorded pace, captures them live with 1 and 2
// workers, and checks that the live pipeline saw exactly what a replay of
// the same file sees: packets, bytes, every flow's packets per side, the
// events — and, with 2 workers, that both directions of every flow reached
// one worker (the kernel's fanout hash is symmetric).
func TestCaptureMatchesReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("sends captures at their recorded pace (about 45 s)")
	}
	files := []string{"defer_accept.pcap", "seed001.pcap", "rst_storm.pcap.gz", "clean_many.pcap.gz"}
	// The TCP_DEFER_ACCEPT story again, as if on a trunk: every frame
	// 802.1Q-tagged with VLAN 42, which the kernel takes out of the frame
	// and the ring passes on beside it.
	tagged := filepath.Join(t.TempDir(), "defer_accept_vlan42.pcap")
	tagFile(t, filepath.Join("..", "..", "..", "testdata", "defer_accept.pcap"), tagged, 42)
	for _, workers := range []int{1, 2} {
		// One after the other: the live workers must not share the two
		// CPUs with a replay of the other subtest.
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			w := netlab.NewWire(t)
			for _, name := range files {
				path := filepath.Join("..", "..", "..", "testdata", name)
				live, sent, seen := liveRun(t, w, path, workers)
				compareRuns(t, name, live, replayRun(t, path, workers), replayRun(t, seen, workers), sent, workers)
			}
			live, sent, seen := liveRun(t, w, tagged, workers)
			compareRuns(t, filepath.Base(tagged), live, replayRun(t, tagged, workers), replayRun(t, seen, workers), sent, workers)
			for k := range live.flows {
				if k.VLAN != [2]uint16{42, 0} {
					t.Errorf("tagged flow %v: VLAN %v in the key; want [42 0]", k, k.VLAN)
				}
			}
			if len(live.events) == 0 {
				t.Fatal("no events from the tagged capture")
			}
			for _, e := range live.events {
				if v, _ := json.Marshal(e["network"].(map[string]any)["vlan"]); string(v) != `{"id":"42"}` {
					t.Errorf("tagged event: network.vlan %s; want {\"id\":\"42\"}", v)
				}
			}
		})
	}
}

// compareRuns checks a live run against a replay of the file sent (rep:
// packets, bytes, flows, and the events less their delays) and against a
// replay of what tcpdump recorded beside the sensor (seen: the events
// exactly, delays included, since both carry the same kernel timestamps).
func compareRuns(t *testing.T, name string, live, rep, seen *result, sent, workers int) {
	t.Helper()
	ls, rs := &live.sum, &rep.sum
	if ls.Packets != uint64(sent) || ls.Packets != rs.Packets || ls.Bytes != rs.Bytes {
		t.Errorf("%s: live %d packets %d bytes; replay %d packets %d bytes; tcpreplay sent %d", name, ls.Packets, ls.Bytes, rs.Packets, rs.Bytes, sent)
	}
	if k := ls.Kernel[0]; k.Drops != 0 || k.Packets != uint64(sent) {
		t.Errorf("%s: kernel counters %+v; want %d packets, no drops", name, k, sent)
	}
	if ls.Flows.Created != rs.Flows.Created {
		t.Errorf("%s: live created %d flows, replay %d", name, ls.Flows.Created, rs.Flows.Created)
	}
	if len(live.flows) != len(rep.flows) {
		t.Errorf("%s: live %d flow keys, replay %d", name, len(live.flows), len(rep.flows))
	}
	busy := map[int]bool{}
	for k, lf := range live.flows {
		rf := rep.flows[k]
		if rf == nil || lf.Conns != rf.Conns || lf.Pkts != rf.Pkts || lf.Seq != rf.Seq {
			t.Errorf("%s: flow %v: live %+v, replay %+v", name, k, lf, rf)
			continue
		}
		if len(lf.Workers) != 1 {
			t.Errorf("%s: flow %v was split over workers %v", name, k, lf.Workers)
		}
		for w := range lf.Workers {
			busy[w] = true
		}
	}
	if workers == 2 && len(live.flows) >= 20 && len(busy) != 2 {
		t.Errorf("%s: %d flows all on worker(s) %v: no fanout", name, len(live.flows), busy)
	}
	sameEventList(t, name+" (the file)", normalize(live.events), normalize(rep.events), false)
	sameEventList(t, name+" (tcpdump beside)", normalize(live.events), normalize(seen.events), true)
}

// sameEventList checks that two runs gave the same events; with exact,
// their times and delays also agree within 2 ms (2 ticks of a 1 kHz TCP
// clock, 1% of a rate): the two sockets that saw a packet stamped it a few
// microseconds apart, which can move a rounded millisecond.
func sameEventList(t *testing.T, what string, got, want []timedEvent, exact bool) {
	t.Helper()
	keys := func(evs []timedEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.key)
		}
		return out
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Errorf("%s: events differ:\nlive:\n%s\nreplay:\n%s", what, strings.Join(keys(got), "\n"), strings.Join(keys(want), "\n"))
		return
	}
	if !exact {
		return
	}
	for i := range got {
		for k, v := range want[i].timing {
			tol := 2.0
			if k == "rate_per_s" {
				tol = math.Max(0.01, 0.01*math.Abs(v))
			}
			if g, ok := got[i].timing[k]; !ok || math.Abs(g-v) > tol {
				t.Errorf("%s: event %s: %s live %v, replay %v", what, got[i].key, k, g, v)
			}
		}
	}
}

// msgTiming finds the delays, rates and tick counts a message quotes.
var msgTiming = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)?( ms|/s| ticks)`)

// isTiming says which evidence values come from the time between packets,
// which tcpreplay reproduces only roughly.
func isTiming(k string) bool {
	return strings.HasSuffix(k, "_ms") || k == "rate_per_s" || k == "predicted_tsval" || k == "regression_ticks"
}

// timedEvent is an event less what differs between any two runs (ids,
// the random flow ids, the interface name) and less its times and delays
// (key), and those times (ms since the epoch) and delays (timing).
type timedEvent struct {
	key    string
	timing map[string]float64
}

func normalize(evs []map[string]any) []timedEvent {
	var out []timedEvent
	for _, e0 := range evs {
		b, _ := json.Marshal(e0)
		var e map[string]any
		_ = json.Unmarshal(b, &e) // a copy: the caller's events stay whole
		te := timedEvent{timing: map[string]float64{}}
		delete(e, "observer") // live names the interface
		stamp := func(k string, v any) {
			if s, ok := v.(string); ok {
				if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
					te.timing[k] = float64(ts.UnixNano()) / 1e6
				}
			}
		}
		stamp("@timestamp", e["@timestamp"])
		delete(e, "@timestamp")
		if ev, ok := e["event"].(map[string]any); ok {
			stamp("start", ev["start"])
			stamp("end", ev["end"])
			delete(ev, "id")
			delete(ev, "start")
			delete(ev, "end")
		}
		if ts, ok := e["tcpsentry"].(map[string]any); ok {
			delete(ts, "flow_id") // from the table's random seed
			if evd, ok := ts["evidence"].(map[string]any); ok {
				for k, v := range evd {
					if f, ok := v.(float64); ok && isTiming(k) {
						te.timing[k] = f
						delete(evd, k)
					}
				}
			}
		}
		if m, ok := e["message"].(string); ok {
			e["message"] = msgTiming.ReplaceAllString(m, "N$1")
		}
		b, _ = json.Marshal(e) // maps marshal with sorted keys
		te.key = string(b)
		out = append(out, te)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key != out[j].key {
			return out[i].key < out[j].key
		}
		return out[i].timing["@timestamp"] < out[j].timing["@timestamp"]
	})
	return out
}

// tagFile writes a copy of an Ethernet pcap with every frame 802.1Q-tagged
// with vlan.
func tagFile(t *testing.T, from, to string, vlan uint16) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := pcapgo.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := pcapgo.NewWriterNanos(out)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		tagged := append(append(append([]byte{}, data[:12]...), 0x81, 0, byte(vlan>>8), byte(vlan)), data[12:]...)
		ci.CaptureLength, ci.Length = len(tagged), ci.Length+4
		if err := w.WritePacket(ci, tagged); err != nil {
			t.Fatal(err)
		}
	}
}
