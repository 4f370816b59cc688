package flowtable

// Seq is a TCP sequence number. Comparisons are modulo 2^32 (RFC 793
// section 3.3), so wraparound is handled here and nowhere else.
type Seq uint32

// LessThan reports s < t in sequence space.
func (s Seq) LessThan(t Seq) bool { return int32(s-t) < 0 }

// LessThanEq reports s <= t in sequence space.
func (s Seq) LessThanEq(t Seq) bool { return int32(s-t) <= 0 }

// Add returns s advanced by n.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// InRange reports first <= s < end in sequence space.
func (s Seq) InRange(first, end Seq) bool {
	return uint32(s-first) < uint32(end-first)
}

// Distance returns the signed distance t - s in sequence space.
func (s Seq) Distance(t Seq) int32 { return int32(t - s) }
