package detectors

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
)

// aggTable is a fixed-size map for the Correlator's cross-connection
// state: open addressing over a window of aggProbe slots, never grown.
// When a key finds its window full, the entry used longest ago in that
// window gives way (and is reported through the drop callback, so
// nothing leaves silently).
type aggTable[K aggKey, V any] struct {
	// slots are allocated at start, all of them: an allocation later,
	// however rare, would make the replay's garbage collector run.
	slots []aggSlot[K, V]
	// tags and lasts say, per slot, what the window scans ask of every
	// slot, side by side: a scan reads its window's 16 tags and lasts (a
	// few cache lines) and only the slots whose tag matches, rather than
	// all 16 slots (some 20 lines for the TCP clocks).
	tags  []uint8 // 0: unused; else tagOf the key's hash
	lasts []int64 // capture time of the slot's last use
	mask  uint64
	seed  uint64
	drop  func(*K, *V) // called before an entry gives way; may be nil
	// Evicted counts entries that gave way to new keys.
	Evicted uint64
}

// aggKey is a key that hashes itself with a seed (maphash.Comparable
// would make every key escape to the heap).
type aggKey interface {
	comparable
	sum(seed uint64) uint64
}

// mix folds a 64-bit word into h (a multiply-xorshift step, as in
// wyhash): seeded, so an attacker who picks addresses cannot pick
// colliding ones.
func mix(h, w uint64) uint64 {
	hi, lo := bits.Mul64(h^w, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// mix16 folds 16 bytes into h.
func mix16(h uint64, b *[16]byte) uint64 {
	return mix(mix(h, binary.LittleEndian.Uint64(b[:8])), binary.LittleEndian.Uint64(b[8:]))
}

type aggSlot[K aggKey, V any] struct {
	key K
	val V
}

const aggProbe = 16

// tagOf is a slot's tag for a key of hash h: 1 to 128, from the bits the
// slot index does not use.
func tagOf(h uint64) uint8 { return uint8(h>>57) + 1 }

// arrays returns the table's arrays (see Correlator.Arrays).
func (t *aggTable[K, V]) arrays() []any { return []any{t.slots, t.tags, t.lasts} }

func newAggTable[K aggKey, V any](size int, drop func(*K, *V)) *aggTable[K, V] {
	n := 64
	for n < size {
		n <<= 1
	}
	t := &aggTable[K, V]{
		slots: make([]aggSlot[K, V], n),
		tags:  make([]uint8, n),
		lasts: make([]int64, n),
		mask:  uint64(n - 1),
		drop:  drop,
	}
	t.seed = randomSeed() // seeded: addresses are chosen by whoever sends packets
	// Touch every page now: fresh memory from the kernel is only mapped,
	// and the tables would otherwise become resident as they fill, so the
	// sensor's memory would creep up for hours (the 2^20 TCP clocks fill
	// with every new address pair) instead of standing at its bound.
	clear(t.slots)
	clear(t.tags)
	clear(t.lasts)
	return t
}

// randomSeed returns a random odd hash seed.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux (crypto/rand panics otherwise)
	return binary.LittleEndian.Uint64(b[:]) | 1
}

func (t *aggTable[K, V]) hash(k *K) uint64 { return mix((*k).sum(t.seed), t.seed) }

// get returns k's value, creating a zero one (created true) when absent:
// in the window's first free slot, or else in place of the entry used
// longest ago (the first of them).
func (t *aggTable[K, V]) get(k K, now int64) (v *V, created bool) {
	h := t.hash(&k)
	i, tag := h&t.mask, tagOf(h)
	free, oldest := -1, -1
	for j := uint64(0); j < aggProbe; j++ {
		x := int((i + j) & t.mask)
		switch g := t.tags[x]; {
		case g == 0:
			if free < 0 {
				free = x
			}
		case g == tag && t.slots[x].key == k:
			t.lasts[x] = max(t.lasts[x], now)
			return &t.slots[x].val, false
		default:
			if oldest < 0 || t.lasts[x] < t.lasts[oldest] {
				oldest = x
			}
		}
	}
	if free < 0 {
		free = oldest
		t.Evicted++
		if t.drop != nil {
			t.drop(&t.slots[free].key, &t.slots[free].val)
		}
	}
	t.slots[free] = aggSlot[K, V]{key: k}
	t.tags[free], t.lasts[free] = tag, now
	return &t.slots[free].val, true
}

// find returns the slot holding k, or -1.
func (t *aggTable[K, V]) find(k *K) int {
	h := t.hash(k)
	i, tag := h&t.mask, tagOf(h)
	for j := uint64(0); j < aggProbe; j++ {
		if x := int((i + j) & t.mask); t.tags[x] == tag && t.slots[x].key == *k {
			return x
		}
	}
	return -1
}

// lookup returns k's value or nil.
func (t *aggTable[K, V]) lookup(k K) *V {
	if x := t.find(&k); x >= 0 {
		return &t.slots[x].val
	}
	return nil
}

// remove deletes k.
func (t *aggTable[K, V]) remove(k K) {
	if x := t.find(&k); x >= 0 {
		var zero V
		t.tags[x], t.slots[x].val = 0, zero
	}
}
