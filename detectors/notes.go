package detectors

import "github.com/tcpsentry/tcpsentry/flowtable"

// connNotes is what the per-connection detectors remember of a connection
// that gave them something to watch: a RST, a retransmitted request, an
// invalid ACK, a SYN/ACK re-sent after the handshake. Most connections
// never need it, so it is not in the Conn (whose every byte is paid per
// table slot) but in the Set's pool, found through Conn.Notes.Ext.
type connNotes struct {
	SynAckRtxTS int64 // the first SYN/ACK re-sent after the handshake ACK
	BadAckTS    int64
	RSTTS       int64
	RtxFirstTS  int64
	RtxLastTS   int64
	// port_reuse_rejected: the 4-tuple's previous connection
	// (flowtable.Handler.Previous); Prev.EndTS != 0 when known.
	Prev flowtable.Prev

	BadAck     uint32
	RSTSeq     uint32
	RSTRcvNext uint32 // the RST receiver's next expected sequence
	RSTRcvWnd  uint32 // and its window, scaled
	// request_unanswered: the client segment retransmitted most.
	RtxSeq uint32
	RtxLen uint32

	// rst_ignored: segments from the other side after the first RST.
	AfterRST uint16
	// synack_retransmit_after_ack: SYN/ACKs re-sent after the handshake ACK.
	SynAckRtx uint16
	// request_unanswered: how often the segment was sent, and how many
	// segments the server sent meanwhile.
	RtxN      uint16
	PeerAfter uint16

	RSTFrom     uint8 // side + 1 of the first RST; 0 = none
	RSTInWindow int8  // -1 unknown, 0 no, 1 yes
	// invalid_ack: the side (+ 1) that sent the last invalid ACK.
	BadAckFrom uint8

	next uint32 // free list (index + 1)
}

// notePool holds connNotes for as many connections as the worker's flow
// table: a connection takes one at most, and gives it back when it leaves
// the table (Set.Evicted), so the pool cannot run dry. It is allocated
// whole at start and touched only as it is used, like the table's slab:
// its resident size follows the most connections that needed notes at
// once, not the table's size. (The Correlator's slab, which grows in
// chunks, would do as well, reserved whole; measured at a million slots
// that took 480 more allocations and 7-8 MB more resident memory.)
type notePool struct {
	items []connNotes
	fresh uint32 // items ever used
	free  uint32 // free list through connNotes.next (index + 1)
	inUse int
	// Full counts notes a connection needed and did not get: never, with
	// a pool as large as the table.
	Full uint64
}

func newNotePool(n int) notePool { return notePool{items: make([]connNotes, n)} }

// take returns a zeroed item's index + 1, or 0 when none is left.
func (p *notePool) take() uint32 {
	i := p.free
	switch {
	case i != 0:
		n := &p.items[i-1]
		p.free = n.next
		*n = connNotes{}
	case int(p.fresh) < len(p.items):
		p.fresh++
		i = p.fresh
	default:
		p.Full++
		return 0
	}
	p.inUse++
	return i
}

func (p *notePool) give(i uint32) {
	p.items[i-1].next = p.free
	p.free = i
	p.inUse--
}

// notes returns c's notes, taking them from the pool if c has none yet;
// nil if the pool is empty.
func (s *Set) notes(c *flowtable.Conn) *connNotes {
	if c.Notes.Ext == 0 {
		if c.Notes.Ext = s.pool.take(); c.Notes.Ext == 0 {
			return nil
		}
	}
	return &s.pool.items[c.Notes.Ext-1]
}

// peek returns c's notes, or nil if it has none: for readers, to whom no
// notes means nothing was seen.
func (s *Set) peek(c *flowtable.Conn) *connNotes {
	if c.Notes.Ext == 0 {
		return nil
	}
	return &s.pool.items[c.Notes.Ext-1]
}

// release gives c's notes back to the pool.
func (s *Set) release(c *flowtable.Conn) {
	if c.Notes.Ext != 0 {
		s.pool.give(c.Notes.Ext)
		c.Notes.Ext = 0
	}
}

// notesInUse returns how many connections hold notes now, and how often
// one needed them and found the pool empty.
func (s *Set) notesInUse() (inUse int, full uint64) { return s.pool.inUse, s.pool.Full }
