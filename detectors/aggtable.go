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
	used bool
	last int64 // capture time of the last use
	key  K
	val  V
}

const aggProbe = 16

// slot returns slot i (modulo the table's size).
func (t *aggTable[K, V]) slot(i uint64) *aggSlot[K, V] { return &t.slots[i&t.mask] }

func newAggTable[K aggKey, V any](size int, drop func(*K, *V)) *aggTable[K, V] {
	n := 64
	for n < size {
		n <<= 1
	}
	t := &aggTable[K, V]{slots: make([]aggSlot[K, V], n), mask: uint64(n - 1), drop: drop}
	var b [8]byte
	_, _ = rand.Read(b[:]) // seeded: addresses are chosen by whoever sends packets
	t.seed = binary.LittleEndian.Uint64(b[:]) | 1
	return t
}

func (t *aggTable[K, V]) hash(k *K) uint64 { return mix((*k).sum(t.seed), t.seed) }

// get returns k's value, creating a zero one (created true) when absent.
func (t *aggTable[K, V]) get(k K, now int64) (v *V, created bool) {
	i := t.hash(&k) & t.mask
	var free, oldest *aggSlot[K, V]
	for j := uint64(0); j < aggProbe; j++ {
		s := t.slot(i + j)
		if !s.used {
			if free == nil {
				free = s
			}
			continue
		}
		if s.key == k {
			s.last = max(s.last, now)
			return &s.val, false
		}
		if oldest == nil || s.last < oldest.last {
			oldest = s
		}
	}
	if free == nil {
		free = oldest
		t.Evicted++
		if t.drop != nil {
			t.drop(&free.key, &free.val)
		}
	}
	var zero V
	*free = aggSlot[K, V]{used: true, last: now, key: k, val: zero}
	return &free.val, true
}

// lookup returns k's value or nil.
func (t *aggTable[K, V]) lookup(k K) *V {
	i := t.hash(&k) & t.mask
	for j := uint64(0); j < aggProbe; j++ {
		if s := t.slot(i + j); s.used && s.key == k {
			return &s.val
		}
	}
	return nil
}

// remove deletes k.
func (t *aggTable[K, V]) remove(k K) {
	i := t.hash(&k) & t.mask
	for j := uint64(0); j < aggProbe; j++ {
		if s := t.slot(i + j); s.used && s.key == k {
			var zero V
			s.used, s.val = false, zero
			return
		}
	}
}
