package detectors

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// corHarness feeds facts and events straight to a Correlator through a
// worker's Out, as a worker's detectors would.
type corHarness struct {
	out *Out
	cor *Correlator
	got []Event
}

func newCorHarness() *corHarness {
	h := &corHarness{}
	h.cor = NewCorrelator(Config{}, 1, func(e *Event) { h.got = append(h.got, *e) })
	h.out = NewOut(0, func(b *Batch) *Batch {
		if b != nil {
			h.cor.Add(b)
			b.Events, b.Facts = b.Events[:0], b.Facts[:0]
			return b
		}
		return NewBatch()
	})
	return h
}

func (h *corHarness) syn(src [16]byte, flow uint64, tsval uint32, at int64) {
	f := Fact{At: at, FlowID: flow, Kind: FactSYN, Family: 4, TSval: tsval,
		Client: Endpoint{Addr: src, Port: 40000}, Server: Endpoint{Addr: srv, Port: 80}}
	h.out.Fact(&f)
}

func (h *corHarness) unanswered(src [16]byte, flow uint64, start, at int64) {
	e := Event{Type: TypeSynUnanswered, Cause: CauseSilentDrop, Family: 4, FlowID: flow, Count: 1,
		Client: Endpoint{Addr: src, Port: 40000}, Server: Endpoint{Addr: srv, Port: 80}, Start: start, End: at, At: at}
	h.out.Emit(&e)
}

func (h *corHarness) end() []Event {
	h.out.Flushing()
	h.out.Close()
	h.cor.Finish()
	return h.got
}

func count(evs []Event, t Type, c Cause) (n int) {
	for _, e := range evs {
		if e.Type == t && e.Cause == c {
			n++
		}
	}
	return n
}

// TestClockOutlivesManyPairs: a source's TCP clock, learned from two
// SYNs a second apart, is still known after 50,000 other pairs sent
// SYNs meanwhile (a busy link), so the third SYN's regression is seen.
// A table of 16,384 clocks forgot it.
func TestClockOutlivesManyPairs(t *testing.T) {
	h := newCorHarness()
	nat := v4(198, 51, 100, 1)
	h.syn(nat, 1, 5_000_000, 0)
	h.syn(nat, 2, 5_001_000, sec)
	for i := range 50_000 {
		var a [16]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		h.syn(a, uint64(100+i), uint32(i)*7919, sec+int64(i)*10_000)
	}
	h.syn(nat, 3, 4_990_000, 2*sec) // another host's clock, 12 s behind
	evs := h.end()
	if n := count(evs, TypeTSRegression, CauseNATTimestamps); n != 1 {
		t.Fatalf("%d ts_regression, want 1 (%d events)", n, len(evs))
	}
}

// TestRegressedFlowsSameSlot: two flows flagged by ts_regression whose
// ids fall in the same slot of the regressed set, both unanswered: both
// are paws_nat_timestamps.
func TestRegressedFlowsSameSlot(t *testing.T) {
	h := newCorHarness()
	a, b := v4(198, 51, 100, 1), v4(198, 51, 100, 2)
	fa, fb := uint64(7), uint64(7+regressedSize)
	for _, x := range []struct {
		src  [16]byte
		flow uint64
	}{{a, fa}, {b, fb}} {
		h.syn(x.src, x.flow+1e6, 1_000_000, 0)
		h.syn(x.src, x.flow+2e6, 1_001_000, sec)
	}
	h.syn(a, fa, 900_000, 2*sec)
	h.syn(b, fb, 900_000, 2*sec+1e6)
	h.unanswered(a, fa, 2*sec, 5*sec)
	h.unanswered(b, fb, 2*sec+1e6, 5*sec+1e6)
	evs := h.end()
	if n := count(evs, TypeSynUnanswered, CausePAWSNATTimestamps); n != 2 {
		t.Fatalf("%d syn_unanswered/paws_nat_timestamps, want 2 (%d events)", n, len(evs))
	}
}

// TestCorrelatorQueueBound: items beyond queueMax waiting for a watermark
// that does not come are handled early and counted, not queued without
// bound.
func TestCorrelatorQueueBound(t *testing.T) {
	h := newCorHarness()
	const extra = 100
	for i := range queueMax + extra {
		var a [16]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000+uint32(i))
		h.syn(a, uint64(1+i), 1000, int64(i)*1000)
	}
	h.end()
	if h.cor.Late != extra {
		t.Fatalf("Late = %d, want %d", h.cor.Late, extra)
	}
}

// TestClockEntrySize: an entry of the TCP clocks table is 24 bytes of
// slot plus its tag and last use, as ClockTableSize's memory figure says.
func TestClockEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(aggSlot[pairKey, tsClock]{}); n != 24 {
		t.Errorf("clocks slot is %d bytes, want 24", n)
	}
}
