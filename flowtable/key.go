package flowtable

import (
	"github.com/cespare/xxhash/v2"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Key identifies a connection in both directions: endpoint A is the lower
// (address, port) of the two, so both directions of a connection build
// the same Key. It is a small comparable value with no pointers, so a
// slab of a million of them costs the garbage collector nothing.
type Key struct {
	A, B         [16]byte // IPv4 in the first 4 bytes
	PortA, PortB uint16
	VLAN         [decode.MaxVLAN]uint16 // outermost first; 0 = untagged
	Family       uint8                  // 4 or 6
	// Iface is the capture interface (its index in the sensor's list):
	// the same 4-tuple on two interfaces is two connections, as in
	// Suricata's per-device tracking, and events name the right one.
	Iface uint8
}

// KeyOf returns the canonical key of p and whether p travels from A to B.
func KeyOf(p *decode.Packet) (k Key, fromA bool) {
	k.Family = p.Family
	k.VLAN = p.VLAN
	k.Iface = p.Iface
	if less(&p.Src, p.SrcPort, &p.Dst, p.DstPort) {
		k.A, k.B, k.PortA, k.PortB = p.Src, p.Dst, p.SrcPort, p.DstPort
		return k, true
	}
	k.A, k.B, k.PortA, k.PortB = p.Dst, p.Src, p.DstPort, p.SrcPort
	return k, false
}

// less orders endpoints by address bytes, then port.
func less(a *[16]byte, pa uint16, b *[16]byte, pb uint16) bool {
	for i := 0; i < 16; i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return pa <= pb
}

// keyBytes is the hashed form of a key: fixed layout, no padding.
const keyBytes = 16 + 16 + 2 + 2 + 2*decode.MaxVLAN + 2

func (k *Key) put(b *[keyBytes]byte) {
	copy(b[0:16], k.A[:])
	copy(b[16:32], k.B[:])
	b[32], b[33] = byte(k.PortA>>8), byte(k.PortA)
	b[34], b[35] = byte(k.PortB>>8), byte(k.PortB)
	for i, v := range k.VLAN {
		b[36+2*i], b[37+2*i] = byte(v>>8), byte(v)
	}
	b[keyBytes-2] = k.Family
	b[keyBytes-1] = k.Iface
}

// Hasher computes seeded xxhash values of keys without allocating. It is
// not safe for concurrent use; each worker (and the replay reader) owns one.
type Hasher struct {
	d    xxhash.Digest
	seed uint64
	kb   [keyBytes]byte
}

// NewHasher returns a hasher keyed with seed.
func NewHasher(seed uint64) *Hasher { return &Hasher{seed: seed} }

// Sum returns the seeded hash of k.
func (h *Hasher) Sum(k *Key) uint64 {
	k.put(&h.kb)
	h.d.ResetWithSeed(h.seed)
	_, _ = h.d.Write(h.kb[:])
	return h.d.Sum64()
}
