package detectors

import (
	"math/bits"
	"slices"
)

// timeQueue holds the Correlator's items until their turn and gives them
// back smallest first, in qitem order. It is a radix heap: the Correlator
// takes items in time order and workers only add items due at or after
// their watermark, so the keys it gives back never decrease, and an item
// need only be kept in the bucket of the highest byte in which its time
// differs from the last time given back, and of its value in that byte.
// Adding is an append; an item moves to a bucket of a lower byte at most
// once per byte, its cost is a few copies through memory read in order.
// A binary heap of the same items (a few hundred thousand at a million
// flows) cost a cache miss per level on every pop: 14% of a replay's CPU.
//
// Items at or before the last time given back (possible only after the
// Correlator had to take items early, see Correlator.Late) go into the
// ready list in order, so what comes out is always the smallest item
// held, as from a heap.
type timeQueue struct {
	last  uint64  // key of the items in ready
	ready []qitem // items with keys up to last, in order, from head on
	head  int
	// buckets[b][v]: keys above last whose highest byte differing from
	// last is b, with value v there. Bit v of full[b] says it holds items;
	// bit b of levels, that full[b] is not all zero.
	buckets [8][256]qbucket
	full    [8][4]uint64
	levels  uint8
	// chunks hold the buckets' items; free lists the unused ones. They
	// are shared so that the queue grows only when it holds more items
	// than ever, whichever buckets they fall in; it then doubles with a
	// block of new chunks (nothing held is copied).
	chunks []*qchunk
	free   int32
	n      int
}

const chunkItems = 32

type qchunk struct {
	items [chunkItems]qitem
	n     int32
	next  int32 // the bucket's next chunk, or the next free one; -1: none
}

type qbucket struct {
	head, tail int32
	min        uint64 // the smallest key in the bucket
}

// qkey maps a time to an unsigned key of the same order.
func qkey(at int64) uint64 { return uint64(at) ^ 1<<63 }

// newTimeQueue returns a queue with room for capacity items before it
// allocates.
func newTimeQueue(capacity int) *timeQueue {
	q := &timeQueue{ready: make([]qitem, 0, 256), free: -1}
	q.grow(max(1, (capacity+chunkItems-1)/chunkItems))
	return q
}

// grow adds n free chunks.
func (q *timeQueue) grow(n int) {
	block := make([]qchunk, n)
	q.chunks = slices.Grow(q.chunks, n)
	for i := range block {
		q.chunks = append(q.chunks, &block[i])
		block[i].next = q.free
		q.free = int32(len(q.chunks) - 1)
	}
}

func (q *timeQueue) Len() int { return q.n }

func (q *timeQueue) push(it qitem) {
	q.n++
	if k := qkey(it.at); k > q.last {
		q.add(k, q.last, &it)
		return
	}
	r := append(q.ready, it)
	j := len(r) - 1
	for j > q.head && it.less(&r[j-1]) {
		r[j] = r[j-1]
		j--
	}
	r[j] = it
	q.ready = r
}

// add appends it, of key k above last, to its bucket.
func (q *timeQueue) add(k, last uint64, it *qitem) {
	lv := (bits.Len64(k^last) - 1) / 8
	v := uint8(k >> (8 * lv))
	b := &q.buckets[lv][v]
	if w := &q.full[lv][v/64]; *w&(1<<(v%64)) == 0 {
		c := q.newChunk()
		b.head, b.tail, b.min = c, c, k
		*w |= 1 << (v % 64)
		q.levels |= 1 << lv
	} else {
		b.min = min(b.min, k)
	}
	ch := q.chunks[b.tail]
	if ch.n == chunkItems {
		c := q.newChunk()
		ch.next = c
		b.tail = c
		ch = q.chunks[c]
	}
	ch.items[ch.n] = *it
	ch.n++
}

func (q *timeQueue) newChunk() int32 {
	if q.free < 0 {
		q.grow(len(q.chunks))
	}
	c := q.free
	q.free = q.chunks[c].next
	q.chunks[c].n, q.chunks[c].next = 0, -1
	return c
}

// min returns the smallest item held; the queue must not be empty.
func (q *timeQueue) min() *qitem {
	if q.head == len(q.ready) {
		q.refill()
	}
	return &q.ready[q.head]
}

func (q *timeQueue) pop() qitem {
	it := *q.min()
	q.head++
	q.n--
	return it
}

// refill empties the bucket with the smallest keys: the items with its
// smallest key go to ready, the others to buckets of lower bytes.
func (q *timeQueue) refill() {
	q.ready, q.head = q.ready[:0], 0
	lv := bits.TrailingZeros8(q.levels)
	f := &q.full[lv]
	wi := 0
	for f[wi] == 0 {
		wi++
	}
	v := wi*64 + bits.TrailingZeros64(f[wi])
	f[wi] &^= 1 << (v % 64)
	if f[0]|f[1]|f[2]|f[3] == 0 {
		q.levels &^= 1 << lv
	}
	b := &q.buckets[lv][v]
	m := b.min
	q.last = m
	for c := b.head; c >= 0; {
		ch := q.chunks[c]
		for j := range ch.n {
			it := &ch.items[j]
			if k := qkey(it.at); k == m {
				q.ready = append(q.ready, *it)
			} else {
				q.add(k, m, it)
			}
		}
		next := ch.next
		ch.next = q.free
		q.free = c
		c = next
	}
	if len(q.ready) > 1 {
		slices.SortFunc(q.ready, compareItems)
	}
}

func compareItems(a, b qitem) int {
	switch {
	case a.less(&b):
		return -1
	case b.less(&a):
		return 1
	}
	return 0
}
