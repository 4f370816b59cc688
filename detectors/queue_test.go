package detectors

import (
	"math/rand/v2"
	"testing"
)

// TestTimeQueueOrder: the radix queue gives back exactly what a binary
// heap of the same items does, in the Correlator's pattern (items added at
// or after a watermark, taken below it) and when items come earlier than
// what was already taken (after Late), with many equal times.
func TestTimeQueueOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spread int64 // how far after the watermark items are due
		early  int   // one item in early comes before the last taken
		res    int64 // times are multiples of this
	}{
		{"monotone", 2e9, 0, 1},
		{"coarse clock", 2e9, 0, 1e6},
		{"one time", 1, 0, 1},
		{"early items", 2e9, 50, 1},
		{"negative times", 2e9, 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.spread)))
			q := newTimeQueue(0)
			var h minHeap[qitem]
			wm := int64(1_700_000_000e9)
			if tc.name == "negative times" {
				wm = -5e9
			}
			var seq uint64
			var last qitem
			taken := 0
			for round := range 20_000 {
				for range rng.IntN(8) {
					at := wm + rng.Int64N(tc.spread)
					if tc.early > 0 && rng.IntN(tc.early) == 0 && taken > 0 {
						at = last.at - rng.Int64N(1e6)
					}
					at -= at % tc.res
					seq++
					it := qitem{at: at, flow: uint64(rng.IntN(4)), seq: seq, ev: int32(seq), fact: -1}
					q.push(it)
					h.push(it)
				}
				wm += rng.Int64N(2e6)
				final := round == 20_000-1
				for q.Len() > 0 && (q.min().at < wm || final) {
					if len(h) == 0 {
						t.Fatalf("queue holds %d items, heap none", q.Len())
					}
					got, want := q.pop(), h.pop()
					if got != want {
						t.Fatalf("item %d: queue gave %+v, heap %+v", taken, got, want)
					}
					last = got
					taken++
				}
				if q.Len() != len(h) {
					t.Fatalf("queue holds %d items, heap %d", q.Len(), len(h))
				}
			}
			if taken < 10_000 {
				t.Fatalf("only %d items taken", taken)
			}
		})
	}
}

// TestTimeQueueNoAllocs: once its buckets have grown, the queue allocates
// nothing.
func TestTimeQueueNoAllocs(t *testing.T) {
	q := newTimeQueue(0)
	at := int64(1e18)
	var seq uint64
	step := func() {
		for range 64 {
			seq++
			q.push(qitem{at: at + int64(seq%997)*1e6, seq: seq})
		}
		at += 32e6
		for q.Len() > 0 && q.min().at < at {
			q.pop()
		}
	}
	for range 10_000 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per step", n)
	}
}

func BenchmarkTimeQueue(b *testing.B) {
	for _, kind := range []string{"radix", "heap"} {
		b.Run(kind, func(b *testing.B) {
			q := newTimeQueue(0)
			var h minHeap[qitem]
			rng := rand.New(rand.NewPCG(1, 2))
			at := int64(1e18)
			var seq uint64
			// about 150,000 items held, as at a million flows
			for range 150_000 {
				seq++
				it := qitem{at: at + rng.Int64N(2e9), seq: seq}
				q.push(it)
				h.push(it)
			}
			b.ResetTimer()
			for range b.N {
				seq++
				at += 13_000
				it := qitem{at: at + rng.Int64N(2e9), seq: seq}
				if kind == "radix" {
					q.push(it)
					q.pop()
				} else {
					h.push(it)
					h.pop()
				}
			}
		})
	}
}

// TestSlab: values put in the slab stay where their index says while
// others come and go, across many chunks, and it allocates only when it
// holds more than ever before.
func TestSlab(t *testing.T) {
	var s slab[Fact]
	s.reserve(100)
	model := map[int32]uint64{}
	rng := rand.New(rand.NewPCG(3, 4))
	var id uint64
	for range 200_000 {
		if len(model) > 0 && rng.IntN(3) == 0 {
			for i, want := range model { // any one
				if got := s.at(i).FlowID; got != want {
					t.Fatalf("slot %d holds %d, want %d", i, got, want)
				}
				s.release(i)
				delete(model, i)
				break
			}
			continue
		}
		id++
		i := s.put(&Fact{FlowID: id})
		if _, dup := model[i]; dup {
			t.Fatalf("slot %d handed out twice", i)
		}
		model[i] = id
	}
	if len(model) < 2*slabChunk {
		t.Fatalf("only %d values held: the test should span chunks", len(model))
	}
	for i, want := range model {
		if got := s.at(i).FlowID; got != want {
			t.Fatalf("slot %d holds %d, want %d", i, got, want)
		}
	}
	held := make([]int32, 0, len(model))
	for i := range model {
		held = append(held, i)
	}
	n := testing.AllocsPerRun(10, func() {
		for _, i := range held {
			s.release(i)
		}
		for j := range held {
			held[j] = s.put(&Fact{})
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations refilling the slab to its high-water mark", n)
	}
}
