package detectors

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

// slab holds queued values by index, reusing released slots.
type slab[T any] struct {
	items []T
	free  []int32
}

func (s *slab[T]) put(v *T) int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		s.items[i] = *v
		return i
	}
	s.items = append(s.items, *v)
	return int32(len(s.items) - 1)
}

func (s *slab[T]) release(i int32) { s.free = append(s.free, i) }
