package detectors

import (
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Pending bits in Conn.Notes.Pending.
const (
	pendSynAck = 1 << iota // a SYN/ACK came again after the handshake ACK; the cause waits for data
)

// Watch bits in Conn.Watch: what Segment must look at in the Conn's
// notes. watchRST and watchRtx are set only on a Conn that has notes.
const (
	watchPending = 1 << iota // Conn.Notes.Pending != 0
	watchRST                 // connNotes.RSTFrom != 0
	watchRtx                 // connNotes.RtxN > 0
)

// Segment runs the per-connection detectors on a segment the table
// tracked. It is on the per-packet path: everything but a few compares is
// behind the segment's bits or the connection's notes.
func (s *Set) Segment(c *flowtable.Conn, p *decode.Packet, seg flowtable.Seg, ts int64) {
	if ts > s.clock {
		s.clock = ts
	}
	at := s.clock
	dir, other := flowtable.Server, flowtable.Client
	if seg&flowtable.SegFromClient != 0 {
		dir, other = flowtable.Client, flowtable.Server
	}
	const control = flowtable.SegSYN | flowtable.SegSYNRetrans | flowtable.SegSYNACK |
		flowtable.SegSYNACKRetrans | flowtable.SegRSTToSYN | flowtable.SegAckToSYN |
		flowtable.SegRST | flowtable.SegFIN
	if seg&control != 0 {
		s.control(c, p, seg, ts, at, dir)
	}
	w := c.Watch
	if w&watchPending != 0 && c.Notes.Pending&pendSynAck != 0 && seg&(flowtable.SegData|flowtable.SegDataRetrans) != 0 {
		s.synAckResolved(c, dir, ts, at)
	}
	rst := p.Flags&decode.FlagRST != 0
	if p.Flags&decode.FlagACK != 0 && !rst && c.Side[flowtable.Client].Has(flowtable.SideISN) &&
		c.Side[flowtable.Server].Has(flowtable.SideISN) {
		s.checkAck(c, p, dir, other, ts, at)
	}
	if w&watchRST != 0 && !rst {
		if n := s.peek(c); n != nil && int(n.RSTFrom)-1 == other {
			s.afterRST(c, n, ts, at)
		}
	}
	if seg&flowtable.SegDataRetrans != 0 && dir == flowtable.Client {
		s.retransmitted(c, p, ts)
	}
	if w&watchRtx != 0 && dir == flowtable.Server {
		if n := s.peek(c); n != nil {
			s.peerSpoke(c, n)
		}
	}
	// The client gives up (a server's RST need not end it: seeds/000's
	// client ignores them); a connection that just stops leaves the
	// table and ends there (Evicted).
	if w&watchRtx != 0 && dir == flowtable.Client && (seg&flowtable.SegFIN != 0 || rst) {
		s.requestEnded(c, at)
	}
}

// control handles handshake and teardown segments.
func (s *Set) control(c *flowtable.Conn, p *decode.Packet, seg flowtable.Seg, ts, at int64, dir int) {
	n := &c.Notes
	switch {
	case seg&flowtable.SegRSTToSYN != 0:
		s.connectionRefused(c, ts, at)
	case seg&flowtable.SegSYN != 0:
		if p.Opts&decode.OptTimestamp != 0 {
			f := s.fact(c, FactSYN, at)
			f.TSval = p.TSval
			s.out.Fact(&f)
		}
	case seg&flowtable.SegSYNRetrans != 0:
		if c.Stage == flowtable.StageSynSent && int(c.Side[flowtable.Client].Syns)-1 >= s.cfg.SynRetransmits {
			s.synUnanswered(c, ts, at)
		}
	case seg&flowtable.SegAckToSYN != 0:
		s.portReuseRejected(c, p, ts, at)
	}
	if seg&(flowtable.SegSYNACK|flowtable.SegSYNACKRetrans) != 0 {
		s.synAckFact(c, at)
		if seg&flowtable.SegSYNACKRetrans != 0 && c.EstTS != 0 && !c.SynAckUnseen && ts >= c.EstTS {
			s.synAckAfterAck(c, ts, at)
		}
	}
	if seg&flowtable.SegRST != 0 && seg&flowtable.SegRSTToSYN == 0 {
		s.rst(c, p, dir, ts, at)
	}
	if seg&(flowtable.SegRST|flowtable.SegFIN) != 0 && seg&flowtable.SegRSTToSYN == 0 && !n.Ended &&
		c.Side[flowtable.Server].Has(flowtable.SideSent) && (c.EstTS != 0 || c.Midstream) {
		n.Ended = true
		f := s.fact(c, FactEnd, at)
		f.RST = seg&flowtable.SegRST != 0 && dir == flowtable.Server
		s.out.Fact(&f)
	}
}

// fact starts a Fact about c.
func (s *Set) fact(c *flowtable.Conn, k FactKind, at int64) Fact {
	f := Fact{At: at, FlowID: c.ID, Kind: k, Family: c.Key.Family}
	f.Client.Addr, f.Client.Port = c.ClientAddr()
	f.Server.Addr, f.Server.Port = c.ServerAddr()
	for i, v := range c.Key.VLAN {
		if v != 0 {
			f.VLAN[i] = v
			f.NVLAN = uint8(i + 1)
		}
	}
	return f
}

// synAckFact reports that the server answered a SYN, at most once per
// server:port and second of capture time per worker: the Correlator only
// asks whether a server answered any SYN in a given second, and the
// first answer of each second from each worker settles that whatever the
// number of workers.
func (s *Set) synAckFact(c *flowtable.Conn, at int64) {
	a, port := c.ServerAddr()
	h := mixAddr(&a, port)
	sec := at / 1e9
	e := &s.synacks[h&(synackCache-1)]
	if e.h == h && e.sec == sec {
		return
	}
	e.h, e.sec = h, sec
	f := s.fact(c, FactSynAck, at)
	s.out.Fact(&f)
}

// mixAddr is a cheap hash of an address and port for the dedup cache
// (collisions only cost an extra fact).
func mixAddr(a *[16]byte, port uint16) uint64 {
	var x, y uint64
	for i := 0; i < 8; i++ {
		x = x<<8 | uint64(a[i])
		y = y<<8 | uint64(a[8+i])
	}
	h := x*0x9e3779b97f4a7c15 ^ y*0xc2b2ae3d27d4eb4f ^ uint64(port)*0x165667b19e3779f9
	h ^= h >> 29
	return h | 1
}

// connectionRefused: the server answered the client's SYN with a RST/ACK
// (ack = ISN+1) before any SYN/ACK: nothing listens on the port
// (seeds/002). The table flags the segment as SegRSTToSYN.
func (s *Set) connectionRefused(c *flowtable.Conn, ts, at int64) {
	var e Event
	if !s.begin(&e, c, TypeConnectionRefused, at) {
		return
	}
	e.Cause = CauseNoListener
	e.Severity = SeverityNotice
	e.Start, e.End = c.SynTS, ts
	e.AddEvidence(EvSynRetransmits, int64(c.Side[flowtable.Client].Syns)-1)
	e.AddEvidence(EvRstDelayMs, ms(ts-c.LastSynTS))
	s.emit(&e)
}

// synUnanswered: a SYN got neither SYN/ACK nor RST within the handshake
// timeout, by its SynRetransmits-th retransmission, or before the flow
// left the table (end of replay, eviction). end is when the evidence was
// complete: the retransmission's time, the timer's deadline, or the
// connection's last packet. The cause is provisional: the Correlator
// decides between paws_nat_timestamps, listen_queue_overflow and
// silent_drop.
func (s *Set) synUnanswered(c *flowtable.Conn, end, at int64) {
	var e Event
	if !s.begin(&e, c, TypeSynUnanswered, at) {
		return
	}
	if end < c.LastSynTS {
		end = c.LastSynTS
	}
	e.Cause = CauseSilentDrop
	e.Severity = SeverityWarning
	e.Start, e.End = c.SynTS, end
	cl := &c.Side[flowtable.Client]
	e.AddEvidence(EvSynRetransmits, int64(cl.Syns)-1)
	e.AddEvidence(EvWaitMs, ms(end-c.SynTS))
	if cl.Has(flowtable.SideTS) {
		e.AddEvidence(EvTSval, int64(cl.TSval))
	}
	s.emit(&e)
}

// HandshakeTimeout is the table's handshake timer: the SYN waited too long.
func (s *Set) HandshakeTimeout(c *flowtable.Conn, end, when int64) {
	if c.Stage == flowtable.StageSynSent && c.Notes.Fired&firedBit(TypeSynUnanswered) == 0 &&
		c.Side[flowtable.Server].Pkts == 0 {
		s.synUnanswered(c, end, when)
	}
}

// Evicted ends what waits for the connection's end, and gives its notes
// back.
func (s *Set) Evicted(c *flowtable.Conn, why flowtable.Evict, when int64) {
	if c.Watch&watchPending != 0 && c.Notes.Pending&pendSynAck != 0 {
		s.synAckEnd(c, when)
	}
	if c.Watch&watchRtx != 0 {
		s.requestEnded(c, when)
	}
	s.release(c)
}

// synAckAfterAck: the server re-sent its SYN/ACK after the client's
// handshake-completing ACK (seeds/000). Client data sent and not
// acknowledged means the server dropped the ACK and the data for want of
// room in its accept queue; no client data yet means the server waits for
// data (TCP_DEFER_ACCEPT) — confirmed when the client's data comes — or
// never got the ACK.
func (s *Set) synAckAfterAck(c *flowtable.Conn, ts, at int64) {
	if x := s.notes(c); x != nil {
		if x.SynAckRtx < 1<<15 {
			x.SynAckRtx++
		}
		if x.SynAckRtx == 1 {
			x.SynAckRtxTS = ts
		}
	}
	n := &c.Notes
	if n.Fired&firedBit(TypeSynackRetransmitAfterAck) != 0 || n.Pending&pendSynAck != 0 {
		return
	}
	cl, sv := &c.Side[flowtable.Client], &c.Side[flowtable.Server]
	if !cl.Has(flowtable.SideData) {
		n.Pending |= pendSynAck
		c.Watch |= watchPending
		return
	}
	var e Event
	s.begin(&e, c, TypeSynackRetransmitAfterAck, at)
	e.Severity = SeverityWarning
	e.Start, e.End = c.EstTS, ts
	unacked := !sv.Has(flowtable.SideAcked) || sv.MaxAck.LessThan(cl.NextSeq)
	if unacked {
		e.Cause = CauseAcceptQueueOverflow
	} else {
		e.Cause = CauseAckLostBeforeServer
	}
	s.synAckEvidence(&e, c)
	if unacked {
		acked := c.Side[flowtable.Client].ISN + 1
		if sv.Has(flowtable.SideAcked) && acked.LessThan(sv.MaxAck) {
			acked = sv.MaxAck
		}
		e.AddEvidence(EvClientUnackedBytes, int64(acked.Distance(cl.NextSeq)))
	}
	s.emit(&e)
}

func (s *Set) synAckEvidence(e *Event, c *flowtable.Conn) {
	if n := s.peek(c); n != nil { // (always: synAckAfterAck took them)
		e.AddEvidence(EvSynackRetransmitsAfterAck, int64(n.SynAckRtx))
		e.AddEvidence(EvSynackRetransmitDelayMs, ms(n.SynAckRtxTS-c.EstTS))
	}
}

// synAckResolved: data came while the SYN/ACK cause waited. The client's
// first: the server was waiting for it (TCP_DEFER_ACCEPT). The server's
// first: it had been waiting for the handshake ACK.
func (s *Set) synAckResolved(c *flowtable.Conn, dir int, ts, at int64) {
	c.Notes.Pending &^= pendSynAck
	c.Watch &^= watchPending
	var e Event
	if !s.begin(&e, c, TypeSynackRetransmitAfterAck, at) {
		return
	}
	e.Severity = SeverityWarning
	e.Start, e.End = c.EstTS, ts
	if dir == flowtable.Client {
		e.Cause = CauseTCPDeferAccept
	} else {
		e.Cause = CauseAckLostBeforeServer
	}
	s.synAckEvidence(&e, c)
	if dir == flowtable.Client {
		e.AddEvidence(EvHandshakeToFirstDataMs, ms(c.FirstDataTS-c.EstTS))
	}
	s.emit(&e)
}

// synAckEnd: the connection ended with the cause still waiting: neither
// side sent data, so nothing shows the server waited for data.
func (s *Set) synAckEnd(c *flowtable.Conn, at int64) {
	c.Notes.Pending &^= pendSynAck
	c.Watch &^= watchPending
	var e Event
	if !s.begin(&e, c, TypeSynackRetransmitAfterAck, at) {
		return
	}
	e.Severity = SeverityWarning
	e.Start, e.End = c.EstTS, c.LastTS
	e.Cause = CauseAckLostBeforeServer
	s.synAckEvidence(&e, c)
	s.emit(&e)
}
