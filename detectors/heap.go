package detectors

import "slices"

// minHeap is a binary min-heap (container/heap would box every element
// in an interface: an allocation each).
type minHeap[T interface{ less(*T) bool }] []T

func (h *minHeap[T]) push(v T) {
	*h = append(*h, v)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a[i].less(&a[p]) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *minHeap[T]) pop() T {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	a.down(0)
	*h = a
	return top
}

// init orders a slice into a heap.
func (h minHeap[T]) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// down moves element i down to its place.
func (h minHeap[T]) down(i int) {
	a, n := h, len(h)
	for {
		l, m := 2*i+1, i
		if l < n && a[l].less(&a[m]) {
			m = l
		}
		if r := l + 1; r < n && a[r].less(&a[m]) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
}

// slab holds queued values by index, reusing released slots. Its
// values lie in chunks of slabChunk, so growing it never copies or clears
// what it holds: at 1M flows the Correlator's facts grew to hundreds of
// thousands, and doubling one slice for them cost it 8-12% of its CPU
// (and left the old copies resident).
type slab[T any] struct {
	chunks [][]T
	n      int32 // slots ever used: the next fresh index
	free   []int32
}

const (
	slabBits  = 12
	slabChunk = 1 << slabBits
)

// reserve makes room for n values without allocating later.
func (s *slab[T]) reserve(n int) {
	for len(s.chunks)*slabChunk < n {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	s.free = slices.Grow(s.free, n)
}

// regions yields the slab's arrays under name.
func (s *slab[T]) regions(name string, yield func(string, any)) {
	for _, ch := range s.chunks {
		yield(name, ch)
	}
	yield(name, s.free)
}

// at returns the value in slot i.
func (s *slab[T]) at(i int32) *T { return &s.chunks[i>>slabBits][i&(slabChunk-1)] }

func (s *slab[T]) put(v *T) int32 {
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = s.n
		if int(i>>slabBits) == len(s.chunks) {
			s.chunks = append(s.chunks, make([]T, slabChunk))
		}
		s.n++
	}
	*s.at(i) = *v
	return i
}

func (s *slab[T]) release(i int32) { s.free = append(s.free, i) }
