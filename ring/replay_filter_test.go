package ring_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tcpsentry/tcpsentry/ring"
)

// TestReplayFilterMatchesTcpdump: with a filter, a replay delivers the
// frames tcpdump -r FILE EXPRESSION prints, on each link type of the real
// captures, with one worker and two, and counts the rest as filtered.
func TestReplayFilterMatchesTcpdump(t *testing.T) {
	tcpdump := needTcpdump(t)
	exprs := []string{
		"tcp port 47802",
		"ip6",
		"tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
		"src port 47801 and not ip6",
		"greater 80",
	}
	for _, name := range []string{"lo_eth.pcap", "lo_eth.pcapng", "any_sll.pcap", "any_sll2_nano.pcap"} {
		data := readFile(t, "testdata/"+name)
		for _, expr := range exprs {
			want := tcpdumpTimes(t, tcpdump, "testdata/"+name, expr)
			if len(want) == 0 {
				t.Fatalf("%s %q: tcpdump printed no frames; the test needs some", name, expr)
			}
			checkFiltered(t, name, data, expr, want)
		}
	}
}

// TestReplayFilterWireLength: in a capture cut to a snap length, len,
// less and greater see each frame's length on the wire, as in tcpdump -r:
// a replay delivers the frames tcpdump prints. So does a shift by X of
// 32 bits or more, which libpcap's bpf_filter makes 0.
func TestReplayFilterWireLength(t *testing.T) {
	tcpdump := needTcpdump(t)
	// 40 flows of 30 frames cut to 96 bytes: IPv4 and IPv6, with and
	// without payload, 54 to 1472 bytes on the wire. The IPv4 frames go
	// without their Ethernet padding, as captured on the sending host.
	frames := synthFrames(t, ring.LinkTypeEthernet, 40, 30, 96)
	for i, f := range frames {
		if binary.BigEndian.Uint16(f.Data[12:]) == 0x0800 {
			frames[i].Wire = 14 + int(binary.BigEndian.Uint16(f.Data[16:]))
			frames[i].Data = f.Data[:min(len(f.Data), frames[i].Wire)]
		}
	}
	data := pcapBytes(t, ring.LinkTypeEthernet, frames, true)
	path := filepath.Join(t.TempDir(), "snap96.pcap")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(keep func(f frame) bool) int {
		n := 0
		for _, f := range frames {
			if keep(f) {
				n++
			}
		}
		return n
	}
	if cut := count(func(f frame) bool { return f.Wire > len(f.Data) }); cut < 100 {
		t.Fatalf("only %d of %d frames are cut", cut, len(frames))
	}
	for _, c := range []struct {
		expr string
		keep func(f frame) bool // nil: tcpdump alone says
	}{
		{"greater 1000", func(f frame) bool { return f.Wire >= 1000 }},
		{"less 200", func(f frame) bool { return f.Wire <= 200 }},
		{"len > 1400", func(f frame) bool { return f.Wire > 1400 }},
		{"len = 54", func(f frame) bool { return f.Wire == 54 }},
		{"tcp and greater 500", func(f frame) bool { return f.Wire >= 500 }}, // every frame is TCP
		{"1 << (tcp[16] & 0x3f) != 0", nil},                                  // the checksum: shifts of 0 to 63
		{"0x80000000 >> (tcp[17] & 0x3f) != 0", nil},
	} {
		want := tcpdumpTimes(t, tcpdump, path, c.expr)
		if len(want) == 0 || len(want) == len(frames) {
			t.Fatalf("%q: tcpdump printed %d of %d frames; the test needs some left in and some out", c.expr, len(want), len(frames))
		}
		if c.keep != nil {
			if n := count(c.keep); n != len(want) {
				t.Fatalf("%q: tcpdump printed %d frames, %d have that length on the wire", c.expr, len(want), n)
			}
		}
		checkFiltered(t, "snap96.pcap", data, c.expr, want)
		t.Logf("%q: %d of %d frames, as tcpdump -r", c.expr, len(want), len(frames))
	}
}

// needTcpdump is the path of tcpdump, the oracle of the filter tests.
func needTcpdump(t *testing.T) string {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		unavailable(t, "tcpdump, the oracle, is not installed (Debian package tcpdump)")
	}
	return tcpdump
}

// tcpdumpTimes is the capture time, in nanoseconds, of every frame
// tcpdump -r path expr prints.
func tcpdumpTimes(t *testing.T, tcpdump, path, expr string) []int64 {
	t.Helper()
	out, err := exec.Command(tcpdump, "-n", "-tt", "--time-stamp-precision=nano", "-r", path, expr).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s %q: %v", path, expr, err)
	}
	var times []int64
	for line := range strings.Lines(string(out)) {
		sec, frac, ok := strings.Cut(strings.Fields(line)[0], ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt(frac, 10, 64)
		if !ok || err1 != nil || err2 != nil || len(frac) != 9 {
			t.Fatalf("tcpdump line %q", line)
		}
		times = append(times, s*1e9+ns)
	}
	return times
}

// checkFiltered replays data with the filter expr, with one worker and
// two, and checks that the frames delivered are those of capture times
// want and that the rest are counted as filtered.
func checkFiltered(t *testing.T, name string, data []byte, expr string, want []int64) {
	t.Helper()
	for _, workers := range []int{1, 2} {
		res := replay(t, data, ring.ReplayConfig{Workers: workers, Hash: symHash, Filter: expr})
		var got []int64
		for _, f := range res.all() {
			got = append(got, f.TS)
		}
		slices.Sort(got)
		st := res.rp.Stats()
		if !slices.Equal(got, want) || st.Filtered != st.Packets-uint64(len(want)) {
			t.Errorf("%s %q, %d workers: %d frames (%d filtered of %d), tcpdump %d", name, expr, workers, len(got), st.Filtered, st.Packets, len(want))
		}
	}
}

// TestReplayFilterMixedLinks: in a pcapng file of two link types, the
// filter is compiled for each; an expression one of them cannot take
// stops the replay there with an error that names the link type.
// (tcpdump -r refuses such a file.)
func TestReplayFilterMixedLinks(t *testing.T) {
	data := readFile(t, "testdata/lo_any_mixed.pcapng")
	// Every packet twice, once per interface: the connection to 47802 is
	// a SYN and a RST/ACK.
	res := replay(t, data, ring.ReplayConfig{Filter: "tcp port 47802"})
	links := map[ring.LinkType]int{}
	for _, f := range res.all() {
		links[f.Link]++
	}
	if st := res.rp.Stats(); links[ring.LinkTypeEthernet] != 2 || links[ring.LinkTypeLinuxSLL] != 2 || len(links) != 2 || st.Filtered != st.Packets-4 {
		t.Fatalf("frames by link type %v, stats %+v", links, st)
	}
	// Ethernet first: the expression compiles at open, then fails on the
	// first Linux SLL frame.
	res = replayFrom(t, bytes.NewReader(data), ring.ReplayConfig{Filter: "ether host 00:00:00:00:00:00"})
	if err := res.rp.Err(); err == nil || !strings.Contains(err.Error(), `filter "ether host 00:00:00:00:00:00" on link type Linux SLL`) {
		t.Fatalf("Err() = %v", err)
	}
	if n := len(res.all()); n != 10 {
		t.Fatalf("%d frames before the error, want the first run of 10 Ethernet frames", n)
	}
}

// TestReplayFilterBadExpression: an expression that does not compile for
// the file's link type is an error of OpenReplay.
func TestReplayFilterBadExpression(t *testing.T) {
	for _, c := range []struct{ file, expr, want string }{
		{"lo_eth.pcap", "tcp port", "unexpected end of expression"},
		{"any_sll.pcap", "ether host 1:2:3:4:5:6", "on link type Linux SLL"},
		{"lo_eth.pcap", "port 99999", "port 99999"},
	} {
		_, err := ring.OpenReplay(bytes.NewReader(readFile(t, "testdata/"+c.file)), ring.ReplayConfig{Filter: c.expr})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: %v, want an error with %q", c.file, c.expr, err, c.want)
		}
	}
}

// TestReplayFilterClockBeats: while the filter leaves a worker without
// frames, the worker still hears the capture's clock, as an idle worker
// of a fanout does (TestReplayClockBeats), so its timers fire on time.
func TestReplayFilterClockBeats(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 10, 300, 0)
	for i := range frames {
		frames[i].TS = frames[0].TS + int64(i)*10e6 // 3000 frames, 30 s
	}
	// The first flow's SYN and SYN/ACK, in the first 0.1 s.
	rp, err := ring.OpenReplay(slowReader{bytes.NewReader(pcapBytes(t, ring.LinkTypeEthernet, frames, true))},
		ring.ReplayConfig{BatchSize: 64, Filter: "tcp port 40000 and tcp[tcpflags] & tcp-syn != 0"})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	var got, beats int
	var last int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b := ring.NewBatch(64)
		for rp.Sources()[0].NextBatch(b) == nil {
			got += b.N
			if b.N == 0 {
				beats++
			}
			last = max(last, b.Clock)
		}
	}()
	wg.Wait()
	if st := rp.Stats(); got != 2 || st.Filtered != uint64(len(frames)-2) {
		t.Fatalf("%d frames delivered, %d filtered", got, st.Filtered)
	}
	if beats < 30 || last < frames[0].TS+25e9 {
		t.Fatalf("the worker heard the clock %d times, last at +%d ms", beats, (last-frames[0].TS)/1e6)
	}
}
