package sensor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/ring"
)

// feedSource is a Source the test feeds batch by batch, as a live ring
// hands over blocks.
type feedSource struct {
	in     chan *ring.Batch
	closed chan struct{}
	once   sync.Once
}

func newFeedSource() *feedSource {
	return &feedSource{in: make(chan *ring.Batch), closed: make(chan struct{})}
}

func (s *feedSource) NextBatch(b *ring.Batch) error {
	b.N = 0
	select {
	case in, ok := <-s.in:
		if !ok {
			return io.EOF
		}
		copy(b.Frames, in.Frames[:in.N])
		copy(b.TS, in.TS[:in.N])
		copy(b.WireLen, in.WireLen[:in.N])
		b.Link, b.N, b.Clock = in.Link, in.N, in.Clock
		return nil
	case <-s.closed:
		return ring.ErrClosed
	}
}

func (s *feedSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// lockedBuffer is the publisher's output, read by the test meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSuffix(l.b.String(), "\n"), "\n")
}

// frame builds an Ethernet/IPv4/TCP frame.
func frame(t *testing.T, src, dst string, sp, dp uint16, syn, rst, ack bool, seq, ackn uint32) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), SYN: syn, RST: rst, ACK: ack, Seq: seq, Ack: ackn, Window: 64240}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// phase is one part of the test traffic starting at base: five clients
// refused by refusedTo:7211, and three SYNs to silentTo:9090 that are sent
// again once, a second later, and never answered.
func phase(t *testing.T, base int64, refusedTo, silentTo string) *ring.Batch {
	b := ring.NewBatch(64)
	b.Link = ring.LinkTypeEthernet
	add := func(ts int64, f []byte) {
		b.Frames[b.N], b.TS[b.N], b.WireLen[b.N] = f, ts, len(f)
		b.N++
	}
	for i := range 5 {
		cl := fmt.Sprintf("192.0.2.%d", i+1)
		ts := base + int64(i)*100e6
		add(ts, frame(t, cl, refusedTo, 40000, 7211, true, false, false, 1000, 0))
		add(ts+1e6, frame(t, refusedTo, cl, 7211, 40000, false, true, true, 0, 1001))
	}
	for i := range 3 {
		cl := fmt.Sprintf("192.0.2.%d", i+21)
		ts := base + 600e6 + int64(i)*100e6
		add(ts, frame(t, cl, silentTo, 41000, 9090, true, false, false, 5000, 0))
		add(ts+1e9, frame(t, cl, silentTo, 41000, 9090, true, false, false, 5000, 0))
	}
	sortBatch(b)
	b.Clock = b.TS[b.N-1]
	return b
}

// sortBatch orders b's frames by time.
func sortBatch(b *ring.Batch) {
	idx := make([]int, b.N)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int { return int(b.TS[x] - b.TS[y]) })
	f, ts, wl := slices.Clone(b.Frames[:b.N]), slices.Clone(b.TS[:b.N]), slices.Clone(b.WireLen[:b.N])
	for i, j := range idx {
		b.Frames[i], b.TS[i], b.WireLen[i] = f[j], ts[j], wl[j]
	}
}

// tick is an empty batch that only moves the clock, as an idle ring
// block does.
func tick(ts int64) *ring.Batch {
	b := ring.NewBatch(1)
	b.Link, b.Clock = ring.LinkTypeEthernet, ts
	return b
}

// describe reduces an event line to what the test compares.
func describe(t *testing.T, line string) string {
	t.Helper()
	var e struct {
		Event struct {
			Action, Reason string
		}
		Source      struct{ IP string }
		Destination struct {
			IP   string
			Port int
		}
		Tcpsentry struct {
			Severity string
			Count    int
			Evidence map[string]any
		}
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	s := fmt.Sprintf("%s/%s %s %s -> %s:%d x%d", e.Event.Action, e.Event.Reason, e.Tcpsentry.Severity,
		e.Source.IP, e.Destination.IP, e.Destination.Port, e.Tcpsentry.Count)
	for _, k := range []string{"syn_retransmits", "wait_ms", "failures"} {
		if v, ok := e.Tcpsentry.Evidence[k]; ok {
			s += fmt.Sprintf(" %s=%v", k, v)
		}
	}
	return s
}

// reloadRun plays phase 1, waits until its events are out, calls between
// (if set), plays phase 2 and ends. It returns the events of each phase.
func reloadRun(t *testing.T, between func(*Reload)) (before, after []string, sum Summary) {
	t.Helper()
	const base = int64(1_800_000_000e9)
	p1 := phase(t, base, "10.0.0.1", "10.0.0.2")
	p2 := phase(t, base+200e9, "10.0.0.3", "10.0.0.4")
	src := newFeedSource()
	out := &lockedBuffer{}
	cfg := Config{Workers: 1, Flows: 1000, Reload: &Reload{}}
	cfg.defaults()
	end := base + 300e9
	p, err := newPipeline(cfg, []ring.Source{src}, out, func() int64 { return end }, replayReorder, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.run(nil, nil, nil) }()

	src.in <- p1
	src.in <- tick(base + 100e9) // every phase 1 timer is due, its flows gone
	deadline := time.Now().Add(10 * time.Second)
	for len(out.lines()) < 8 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	n1 := len(out.lines())
	if between != nil {
		between(cfg.Reload)
	}
	src.in <- p2
	src.in <- tick(end)
	close(src.in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, l := range out.lines() {
		if i < n1 {
			before = append(before, describe(t, l))
		} else {
			after = append(after, describe(t, l))
		}
	}
	slices.Sort(before)
	slices.Sort(after)
	return before, after, p.summary()
}

// TestReloadBetweenBatches changes thresholds, a type's switch and a
// severity while the sensor runs: the events before the change follow
// the old settings, those after it the new ones, and no flow is lost.
func TestReloadBetweenBatches(t *testing.T) {
	base1, base2, baseSum := reloadRun(t, nil)
	before, after, sum := reloadRun(t, func(r *Reload) {
		var c detectors.Config
		c.SynRetransmits = 1                               // worker side
		c.FailedConnections = 3                            // correlator side
		c.Disabled[detectors.TypeConnectionRefused] = true // still counted as failures
		c.Severity[detectors.TypeSynUnanswered] = detectors.SeverityCritical
		r.Set(c)
	})

	want1 := []string{
		"connection_refused/no_listener notice 192.0.2.1 -> 10.0.0.1:7211 x1 syn_retransmits=0",
		"connection_refused/no_listener notice 192.0.2.2 -> 10.0.0.1:7211 x1 syn_retransmits=0",
		"connection_refused/no_listener notice 192.0.2.3 -> 10.0.0.1:7211 x1 syn_retransmits=0",
		"connection_refused/no_listener notice 192.0.2.4 -> 10.0.0.1:7211 x1 syn_retransmits=0",
		"connection_refused/no_listener notice 192.0.2.5 -> 10.0.0.1:7211 x1 syn_retransmits=0",
		"syn_unanswered/silent_drop warning 192.0.2.21 -> 10.0.0.2:9090 x1 syn_retransmits=1 wait_ms=3000",
		"syn_unanswered/silent_drop warning 192.0.2.22 -> 10.0.0.2:9090 x1 syn_retransmits=1 wait_ms=3000",
		"syn_unanswered/silent_drop warning 192.0.2.23 -> 10.0.0.2:9090 x1 syn_retransmits=1 wait_ms=3000",
	}
	if !slices.Equal(base1, want1) || !slices.Equal(before, want1) {
		t.Errorf("phase 1 without reload:\n%s\nwith reload:\n%s\nwant:\n%s", strings.Join(base1, "\n"), strings.Join(before, "\n"), strings.Join(want1, "\n"))
	}
	// Unchanged settings: phase 2 is phase 1 again, on other servers.
	var want2base []string
	for _, s := range want1 {
		s = strings.Replace(s, "10.0.0.1:", "10.0.0.3:", 1)
		want2base = append(want2base, strings.Replace(s, "10.0.0.2:", "10.0.0.4:", 1))
	}
	if !slices.Equal(base2, want2base) {
		t.Errorf("phase 2 without reload:\n%s\nwant:\n%s", strings.Join(base2, "\n"), strings.Join(want2base, "\n"))
	}
	want2 := []string{
		// The refusals are not emitted but still make a rate.
		"failed_connection_rate/no_listener warning 192.0.2.1 -> 10.0.0.3:7211 x1 failures=3",
		"failed_connection_rate/silent_drop warning 192.0.2.21 -> 10.0.0.4:9090 x1 failures=3",
		// At the first retransmission, not the 3 s timer; critical.
		"syn_unanswered/silent_drop critical 192.0.2.21 -> 10.0.0.4:9090 x1 syn_retransmits=1 wait_ms=1000",
		"syn_unanswered/silent_drop critical 192.0.2.22 -> 10.0.0.4:9090 x1 syn_retransmits=1 wait_ms=1000",
		"syn_unanswered/silent_drop critical 192.0.2.23 -> 10.0.0.4:9090 x1 syn_retransmits=1 wait_ms=1000",
	}
	if !slices.Equal(after, want2) {
		t.Errorf("phase 2 after the reload:\n%s\nwant:\n%s", strings.Join(after, "\n"), strings.Join(want2, "\n"))
	}
	if sum.Suppressed[detectors.TypeConnectionRefused] != 5 {
		t.Errorf("suppressed %v, want 5 connection_refused", sum.Suppressed)
	}
	if sum.Flows != baseSum.Flows || sum.Packets != baseSum.Packets || sum.Flows.Created != 16 {
		t.Errorf("flows %+v, packets %d; without reload %+v, %d", sum.Flows, sum.Packets, baseSum.Flows, baseSum.Packets)
	}
}
