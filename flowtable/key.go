package flowtable

import (
	"encoding/binary"
	"math/bits"

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

// less orders endpoints by address bytes, then port. Big-endian words
// compare as the bytes do, eight at a time.
func less(a *[16]byte, pa uint16, b *[16]byte, pb uint16) bool {
	if x, y := binary.BigEndian.Uint64(a[0:8]), binary.BigEndian.Uint64(b[0:8]); x != y {
		return x < y
	}
	if x, y := binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16]); x != y {
		return x < y
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

// Hasher computes seeded hashes of keys for the flow table's index and
// the replay fanout. It is a few multiplications over the key's words
// (wyhash's folded 64x64->128 multiply), several times cheaper per packet
// than xxhash over the serialised key; the random seed keeps an attacker
// from choosing colliding keys. It is not safe for concurrent use; each
// worker (and the replay reader) owns one.
type Hasher struct {
	seed uint64
}

// NewHasher returns a hasher keyed with seed.
func NewHasher(seed uint64) *Hasher { return &Hasher{seed: seed} }

// Multipliers and seed perturbations (wyhash's secret).
const (
	wyp0 = 0xa0761d6478bd642f
	wyp1 = 0xe7037ed1a0b428db
	wyp2 = 0x8ebc6af09c88c6e3
	wyp3 = 0x589965cc75374cc3
)

// Sum returns the seeded hash of k. Every field of the key is mixed in, so
// keys that differ in any field (VLAN, family, interface) hash apart.
func (h *Hasher) Sum(k *Key) uint64 {
	return h.sum(be64(k.A[0:8]), be64(k.A[8:16]), be64(k.B[0:8]), be64(k.B[8:16]),
		uint64(k.PortA)<<48|uint64(k.PortB)<<32|uint64(k.VLAN[0])<<16|uint64(k.VLAN[1]),
		uint64(k.Family)<<8|uint64(k.Iface))
}

// sum hashes a key given as words: the addresses' big-endian halves, the
// ports and VLANs, the family and interface.
func (h *Hasher) sum(a0, a1, b0, b1, m, f uint64) uint64 {
	// The seed goes into both factors of every product: a factor an
	// attacker could make zero (a word equal to a public constant) would
	// make every key with that word collide whatever its other words.
	s := h.seed
	a := mum(a0^s^wyp1, a1^s^wyp2)
	b := mum(b0^s^wyp3, b1^s^wyp1)
	c := mum(m^s^wyp0, f^s^wyp2)
	return mum(a^c^wyp0, b^s^wyp3)
}

func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// mum is wyhash's mixing step: the 128-bit product of x and y, its halves
// xored.
func mum(x, y uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	return hi ^ lo
}

// idHash is the unseeded hash the flow id is made of: xxhash of the key
// bytes, kept so that flow ids stay what they always were. It runs once
// per new connection.
func idHash(k *Key) uint64 {
	var b [keyBytes]byte
	k.put(&b)
	return xxhash.Sum64(b[:])
}
