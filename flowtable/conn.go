package flowtable

import "math/bits"

// Stage is where a connection stands in its life as the sensor saw it.
type Stage uint8

const (
	StageNone        Stage = iota // slot unused
	StageSynSent                  // client SYN seen, no answer yet
	StageSynRcvd                  // server SYN/ACK seen, handshake ACK not yet
	StageEstablished              // handshake completed (or picked up midstream)
	StageClosing                  // a FIN was seen
	StageClosed                   // both FINs, or a RST
)

// Client and Server index Conn.Side.
const (
	Client = 0
	Server = 1
)

// Side flags.
const (
	SideISN   = 1 << iota // ISN known (a SYN or SYN/ACK was seen)
	SideSent              // at least one segment seen from this side
	SideAcked             // MaxAck valid (an ACK was seen)
	SideFIN               // FIN seen
	SideRST               // RST seen
	SideTS                // TSval valid
	SideData              // payload seen
	SideSeq               // NextSeq valid
)

// Side is what one direction of a connection has shown: 32 bytes, so
// that both share the Conn's second cache line. Payload bytes are not
// counted: nothing reads them, and the sequence numbers tell how much
// each side sent (as Zeek's conn.log takes them).
type Side struct {
	ISN     Seq    // initial sequence number (SideISN)
	NextSeq Seq    // highest sequence sent + 1 (end of the highest segment)
	MaxAck  Seq    // highest acknowledgment sent (SideAcked)
	TSval   uint32 // latest TSval (SideTS)
	Pkts    uint32 // segments sent
	Window  uint16 // latest raw window field
	Flags   uint8  // Side* bits
	WScale  int8   // window scale from the SYN, -1 when not offered
	// hist has a bit per history letter this side already recorded, so
	// that most segments check their letters here, in a line they touch
	// anyway.
	hist    uint16
	Syns    uint16 // SYN (client) or SYN/ACK (server) segments sent, first included
	Retrans uint16 // data segments sent again (sequence below NextSeq)
}

// Has reports whether all flags f are set.
func (s *Side) Has(f uint8) bool { return s.Flags&f == f }

// Conn is the per-connection state. Conns live in a preallocated slab
// owned by a Table and are reused: a *Conn is valid only until the next
// call that may evict (Upsert, Advance, Flush).
//
// Layout: a Conn is three 64-byte cache lines (the slab is page-aligned,
// so every Conn starts a line). An ordinary segment touches only the
// first two, a 128-byte pair that the processor's adjacent-line
// prefetcher fetches together: the key, stage and clocks, then both
// Sides. The third is read on handshake, teardown, new history letters,
// and by detectors with something to watch. Every byte is paid per slot
// of the table (a million slots are a million Conns): the idle and timer
// lists' links are beside the slab (Table.links), the detectors keep
// what only a few connections need in a pool of their own (Notes.Ext,
// and the previous connection on the 4-tuple: Handler.Previous), and no
// field is kept that nothing reads.
type Conn struct {
	Key Key
	// ClientIsA: the client (sender of the first SYN; midstream, the side
	// with the higher port) is endpoint A of Key.
	ClientIsA bool
	Midstream bool // the connection was picked up without its SYN
	// SynAckUnseen: the client acknowledged a SYN/ACK the sensor did not
	// see (one-sided capture or capture loss).
	SynAckUnseen bool
	Stage        Stage
	// Watch belongs to the detectors: bits saying what in their notes
	// needs a look on every segment, in the line every packet touches.
	Watch  uint8
	class  uint8 // idle list (table bookkeeping)
	LastTS int64 // latest packet
	linkTS int64 // when the table linked it into its idle list

	Side [2]Side // Client, Server

	// Notes belong to the detectors; the table zeroes them with the slot.
	Notes       Notes
	ID          uint64 // flow id, stable for the life of the connection (53 bits)
	SynTS       int64  // first SYN
	LastSynTS   int64  // latest SYN (retransmissions included)
	EstTS       int64  // handshake-completing ACK
	EndTS       int64  // first FIN or RST
	FirstDataTS int64  // capture time of the client's first payload byte

	// bits holds the history letters (see History) and two flags: whether
	// the handshake timer is armed (its deadline is SynTS +
	// Config.Handshake, and the key's hash is computed again when needed,
	// so neither takes room here), and whether the Handler was told of
	// the 4-tuple's previous connection (Handler.Previous).
	bits uint64
}

// Prev is what the previous connection on a 4-tuple showed.
type Prev struct {
	EndTS int64  // its first FIN or RST, or its last packet
	TSval uint32 // the client's last TSval, when HasTS
	HasTS bool
}

// Notes is the detectors' per-connection state kept in the Conn itself:
// a few flags every connection may need. flowtable never reads it.
type Notes struct {
	Fired   uint16 // a bit per detector type that already fired
	Pending uint8  // a bit per detector waiting for more evidence
	Ended   bool   // the connection's end was reported
	// Ext is free for the detectors: an index (+ 1) into a pool of the
	// state that only connections with something to watch need.
	Ext uint32
}

// TimerArmed reports whether the handshake timer is pending.
func (c *Conn) TimerArmed() bool { return c.bits&bitTimer != 0 }

// ClientAddr returns the client's address and port.
func (c *Conn) ClientAddr() ([16]byte, uint16) {
	if c.ClientIsA {
		return c.Key.A, c.Key.PortA
	}
	return c.Key.B, c.Key.PortB
}

// ServerAddr returns the server's address and port.
func (c *Conn) ServerAddr() ([16]byte, uint16) {
	if c.ClientIsA {
		return c.Key.B, c.Key.PortB
	}
	return c.Key.A, c.Key.PortA
}

// history letters in Zeek's order of meaning; index = bit position.
const histLetters = "shadfrtwiq"

// MaxHistory is the most history letters a Conn keeps.
const MaxHistory = 16

// histSymbols is the number of distinct history letters: each of
// histLetters, from either side.
const histSymbols = 2 * len(histLetters)

// Conn.bits: the history letters, their count, and two flags.
//
// A connection's history is a sequence of distinct symbols out of 20
// (each letter once per side), so it is stored as its Lehmer code: the
// k-th letter adds its rank among the symbols not used yet (one of 20-k)
// times histRadix[k]. Sixteen letters take less than 20!/4! < 2^57.
const (
	histValueBits = 57
	histLenShift  = histValueBits // 5 bits: 0 to 16 letters
	bitTimer      = 1 << 62
	bitPrevTold   = 1 << 63
	histValueMask = 1<<histValueBits - 1
)

// histRadix[k] is the weight of the k-th letter's rank: 20·19·…·(20-k+1).
var histRadix = func() (r [MaxHistory]uint64) {
	r[0] = 1
	for k := 1; k < MaxHistory; k++ {
		r[k] = r[k-1] * uint64(histSymbols-k+1)
	}
	return r
}()

// histSymbol numbers letter li of a side: the server's (lowercase) 0 to
// 9, the client's (uppercase) 10 to 19.
func histSymbol(li int, fromClient bool) uint {
	if fromClient {
		return uint(li + len(histLetters))
	}
	return uint(li)
}

// addHistory records letter (lowercase, from histLetters) for the
// direction once, uppercase for the client (Zeek's originator).
func (c *Conn) addHistory(li int, fromClient bool) {
	s := &c.Side[Server]
	if fromClient {
		s = &c.Side[Client]
	}
	bit := uint16(1) << li
	n := c.bits >> histLenShift & 0x1f
	if s.hist&bit != 0 || n == MaxHistory {
		return
	}
	// The symbols used so far: the letters both sides recorded.
	used := uint32(c.Side[Server].hist) | uint32(c.Side[Client].hist)<<len(histLetters)
	s.hist |= bit
	sym := histSymbol(li, fromClient)
	rank := uint64(sym) - uint64(bits.OnesCount32(used&(1<<sym-1)))
	c.bits += rank*histRadix[n] + 1<<histLenShift
}

// History returns the connection's Zeek conn.log history letters in the
// order first seen (uppercase for the client), and how many there are.
func (c *Conn) History() (h [MaxHistory]byte, n uint8) {
	n = uint8(c.bits >> histLenShift & 0x1f)
	v := c.bits & histValueMask
	var used uint32
	for k := range n {
		radix := uint64(histSymbols) - uint64(k)
		rank := v % radix
		v /= radix
		// The rank-th symbol not used yet.
		sym := 0
		for ; ; sym++ {
			if used&(1<<sym) == 0 {
				if rank == 0 {
					break
				}
				rank--
			}
		}
		used |= 1 << sym
		l := histLetters[sym%len(histLetters)]
		if sym >= len(histLetters) {
			l -= 'a' - 'A'
		}
		h[k] = l
	}
	return h, n
}
