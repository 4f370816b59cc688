package workload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// small is a capture with every anomaly kind a few times.
func small() Options {
	o := DefaultOptions()
	o.Connections = 3000
	o.Concurrent = 300
	o.AnomalyRate = 0.001 // 3 of each kind
	return o
}

// replay runs the capture through tcpsentry's whole pipeline and returns
// its events.
func replay(t *testing.T, data []byte, st Stats, workers int) []Truth {
	t.Helper()
	var out bytes.Buffer
	sum, err := sensor.Replay(context.Background(), bytes.NewReader(data), sensor.Config{Workers: workers, Flows: 200_000}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.DecodeFailures() != 0 || sum.OptMalformed != 0 || sum.EventsLost != 0 {
		t.Errorf("drops %v, malformed options %d, events lost %d", sum.Drops, sum.OptMalformed, sum.EventsLost)
	}
	if sum.Packets != uint64(st.Packets) || sum.Flows.Created != uint64(st.Flows) {
		t.Errorf("replay saw %d packets and %d flows; the generator wrote %d and %d", sum.Packets, sum.Flows.Created, st.Packets, st.Flows)
	}
	ev, err := ParseEvents(&out)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestGroundTruth: tcpsentry reports exactly the generated anomalies —
// every expected event and nothing else, over ordinary traffic with
// loss, keep-alive, resets and both close orders.
func TestGroundTruth(t *testing.T) {
	for _, format := range []Format{PCAP, PCAPNG} {
		o := small()
		o.Format = format
		var buf bytes.Buffer
		st, err := Write(&buf, o)
		if err != nil {
			t.Fatal(err)
		}
		for k := range NumKinds {
			if st.Instances[k] != 3 {
				t.Errorf("%v: %d instances, want 3", k, st.Instances[k])
			}
		}
		t.Logf("format %d: %d packets, %d flows, %d truth events, max open %d, span %.1f s",
			format, st.Packets, st.Flows, len(st.Truth), st.MaxOpen, float64(st.Last-st.First)/1e9)
		for _, workers := range []int{1, 2} {
			got := replay(t, buf.Bytes(), st, workers)
			if workers == 1 && format == PCAP {
				for _, q := range Score(st.Truth, got) {
					t.Logf("%-28s truth %3d reported %3d matched %3d", q.Type, q.Truth, q.Reported, q.Matched)
				}
			}
			missing, unexpected := Diff(st.Truth, got)
			for _, m := range missing {
				t.Errorf("workers %d: missing %+v", workers, m)
			}
			for _, u := range unexpected {
				t.Errorf("workers %d: unexpected %+v", workers, u)
			}
		}
	}
}

// TestDeterministic: the same options give the same bytes and truth; a
// different seed different bytes.
func TestDeterministic(t *testing.T) {
	o := small()
	o.Connections = 500
	h := func(o Options) ([32]byte, int) {
		var buf bytes.Buffer
		st, err := Write(&buf, o)
		if err != nil {
			t.Fatal(err)
		}
		var tb bytes.Buffer
		WriteTruth(&tb, st.Truth)
		return sha256.Sum256(append(buf.Bytes(), tb.Bytes()...)), st.Packets
	}
	a, n := h(o)
	b, _ := h(o)
	if a != b {
		t.Error("two runs with the same options differ")
	}
	o.Seed++
	if c, _ := h(o); c == a {
		t.Error("another seed gives the same capture")
	}
	if n == 0 {
		t.Error("no packets")
	}
}

// TestMaxHeldCountsEveryFlow: with anomalies (a RST storm is a hundred
// connections in one instance), MaxHeld is what the sensor's table holds
// at its fullest: never less, and more only by the few flows that stay
// longer than Linger (an unanswered handshake, for the half-open
// timeout) or leave up to a second late. Counted by instance, not by
// flow, it fell short by a third here.
func TestMaxHeldCountsEveryFlow(t *testing.T) {
	st, capture := keepAlive(t, 20000, 2000, 20*time.Second, 0.005)
	sum, err := sensor.Replay(context.Background(), bytes.NewReader(capture), sensor.Config{Workers: 1, Flows: 2 * st.MaxHeld}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d flows, at most %d open and %d held at once; the table held at most %d", st.Flows, st.MaxOpen, st.MaxHeld, sum.Flows.Peak)
	if sum.Flows.Peak < st.MaxHeld || sum.Flows.Peak > st.MaxHeld+st.MaxHeld/50 {
		t.Errorf("the table held at most %d flows, MaxHeld is %d: want MaxHeld ≤ the table's most ≤ MaxHeld + 2%%", sum.Flows.Peak, st.MaxHeld)
	}
	if uint64(st.Flows) != sum.Flows.Created {
		t.Errorf("%d flows written, the table created %d", st.Flows, sum.Flows.Created)
	}
}

// TestMaxHeld: a table sized by MaxHeld (with a tenth more for the up to
// a second that an idle eviction may come late) never evicts a flow to
// make room, and one sized by MaxOpen does: ended connections stay in
// the table for Linger.
func TestMaxHeld(t *testing.T) {
	const concurrent = 1000
	st, capture := keepAlive(t, 4000, concurrent, 4*time.Minute, 0)
	t.Logf("%d flows, at most %d open and %d held at once", st.Flows, st.MaxOpen, st.MaxHeld)
	if st.MaxOpen != concurrent || st.MaxHeld <= st.MaxOpen {
		t.Fatalf("MaxOpen %d (want %d), MaxHeld %d (want more)", st.MaxOpen, concurrent, st.MaxHeld)
	}
	for _, c := range []struct {
		name     string
		n        int
		wantFull bool
	}{{"MaxHeld", st.MaxHeld, false}, {"MaxOpen", st.MaxOpen, true}} {
		sum, err := sensor.Replay(context.Background(), bytes.NewReader(capture),
			sensor.Config{Workers: 1, Flows: c.n + c.n/10}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if full := sum.Flows.EvictedFull > 0; full != c.wantFull {
			t.Errorf("table of %s + 10%% (%d): %d evicted as full", c.name, c.n+c.n/10, sum.Flows.EvictedFull)
		}
	}
}

// keepAlive writes a capture of keep-alive clients with small responses
// (two exchanges each, pauses up to think): many flows held, few packets.
func keepAlive(t *testing.T, connections, concurrent int, think time.Duration, anomalyRate float64) (Stats, []byte) {
	t.Helper()
	o := DefaultOptions()
	o.Connections, o.Concurrent, o.Exchanges = connections, concurrent, 2
	o.MaxResponse, o.ThinkMax, o.AnomalyRate = 2000, think, anomalyRate
	var buf bytes.Buffer
	st, err := Write(&buf, o)
	if err != nil {
		t.Fatal(err)
	}
	return st, buf.Bytes()
}
