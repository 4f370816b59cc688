package detectors

import "testing"

// TestBucket: a token bucket on capture time, exact in integers.
func TestBucket(t *testing.T) {
	var b bucket
	const rate, burst = 4, 3 // an event every 250 ms, 3 at once
	steps := []struct {
		at   int64
		want bool
	}{
		{0, true}, {0, true}, {0, true}, {0, false}, // the burst, then empty
		{249e6, false}, {250e6, true}, {250e6, false}, // one refill
		{100e6, false},                                                          // time running backwards refills nothing
		{10 * sec, true}, {10 * sec, true}, {10 * sec, true}, {10 * sec, false}, // full again, never above the burst
		{1 << 62, true}, // a huge gap does not overflow
	}
	for i, s := range steps {
		if got := b.take(s.at, rate, burst); got != s.want {
			t.Fatalf("step %d (at %d): %v, want %v", i, s.at, got, s.want)
		}
	}
	// A lower burst (a reload) caps what the bucket holds at once.
	b = bucket{}
	b.take(0, rate, 100)
	n := 0
	for b.take(0, rate, 2) {
		n++
	}
	if n != 2 {
		t.Fatalf("%d events after lowering the burst to 2", n)
	}
}

// TestRateLimitFlood: syn_unanswered from 5,000 distinct clients in 10 s
// (500 a second, none folded) against a limit of 100 a second and 50 at
// once: no second of capture time gets more than rate + burst, the events
// refused are counted, and written + refused is exactly what is written
// without the limit. The flood's own summary (failed_connection_rate) and
// a refused connection from another client in the middle of it have
// buckets of their own and get through.
func TestRateLimitFlood(t *testing.T) {
	const rate, burst, n = 100, 50, 5000
	run := func(cfg Config) *corHarness {
		h := corWith(cfg)
		for i := range n {
			at := int64(i) * 10 * sec / n
			h.unanswered(v4(100, 64, byte(i>>8), byte(i)), uint64(i+1), at-3*sec, at)
			if i == n/2 {
				e := Event{Type: TypeConnectionRefused, Cause: CauseNoListener, Family: 4, FlowID: 1 << 40, Count: 1,
					Client: Endpoint{Addr: v4(198, 51, 100, 7), Port: 40000}, Server: Endpoint{Addr: srv, Port: 7211}, Start: at, End: at, At: at}
				h.out.Emit(&e)
			}
		}
		h.end()
		return h
	}
	free := run(Config{EventRate: 1e6, EventBurst: 1e6})
	h := run(Config{EventRate: rate, EventBurst: burst})
	var perSec [11]int
	var refused, rates int
	for _, e := range h.got {
		switch e.Type {
		case TypeSynUnanswered:
			perSec[e.At/sec]++
		case TypeConnectionRefused:
			refused++
		case TypeFailedConnectionRate:
			rates++
		}
	}
	for s, c := range perSec {
		if c > rate+burst {
			t.Errorf("second %d: %d syn_unanswered, more than rate + burst = %d", s, c, rate+burst)
		}
	}
	// The burst, then one every 10 ms until the last, at 9.998 s.
	if w, want := h.cor.Counts[TypeSynUnanswered], uint64(burst+rate*(n-1)*10/n); w != want {
		t.Errorf("%d syn_unanswered written, want %d", w, want)
	}
	if refused != 1 || rates != 1 {
		t.Errorf("%d connection_refused, %d failed_connection_rate; want 1 each", refused, rates)
	}
	for ty := range NumTypes {
		if h.cor.Counts[ty]+h.cor.RateLimited[ty] != free.cor.Counts[ty] || free.cor.RateLimited[ty] != 0 {
			t.Errorf("%s: %d written + %d refused; %d written without the limit (%d refused)", ty,
				h.cor.Counts[ty], h.cor.RateLimited[ty], free.cor.Counts[ty], free.cor.RateLimited[ty])
		}
	}
	if free.cor.Counts[TypeSynUnanswered] != n {
		t.Errorf("without the limit: %d syn_unanswered, want %d", free.cor.Counts[TypeSynUnanswered], n)
	}
}

// TestFoldQueueBounded: a flood from 100,000 distinct clients within one
// fold window (each event a window of its own, most of them giving way
// in the folds table long before they end) keeps the queue of window
// ends within foldQMax (without compaction it would hold all 100,000: no
// window ends within the flood), without growing it, and a client that
// repeats throughout still has its repeats folded into one report.
func TestFoldQueueBounded(t *testing.T) {
	const n = 100_000
	h := corWith(Config{EventRate: 1e7, EventBurst: 1e7})
	hot := v4(192, 0, 2, 99)
	for i := range n {
		at := int64(i) * 10_000 // 100,000 a second
		h.unanswered(v4(100, byte(i>>16), byte(i>>8), byte(i)), uint64(i+1), at-3*sec, at)
		if i%100 == 0 {
			h.unanswered(hot, uint64(n+i+1), at-3*sec, at)
		}
		if len(h.cor.foldQ) > foldQMax || cap(h.cor.foldQ) != foldQMax+1 {
			t.Fatalf("event %d: fold queue of %d (capacity %d), bound %d", i, len(h.cor.foldQ), cap(h.cor.foldQ), foldQMax)
		}
	}
	var first, report int
	for _, e := range h.end() {
		if e.Client.Addr == hot {
			if e.Count == 1 {
				first++
			} else if e.Count == n/100-1 {
				report++
			} else {
				t.Errorf("hot client: event with count %d", e.Count)
			}
		}
	}
	if first != 1 || report != 1 {
		t.Errorf("hot client: %d first events, %d reports of %d repeats; want 1 and 1", first, report, n/100-1)
	}
	if w := h.cor.Counts[TypeSynUnanswered]; w != n+2 {
		t.Errorf("%d syn_unanswered written, want %d", w, n+2)
	}
}
