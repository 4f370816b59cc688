package detectors

import (
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// checkAck: a segment's ACK must lie in [peer ISN+1, peer's highest
// sequence sent] (mod 2^32) once both ISNs are known. An ACK outside
// acknowledges what the peer never sent: far outside, something
// rewrote it (a middlebox translating sequence numbers, seeds/000);
// just past the end, the capture missed the peer's segment.
func (s *Set) checkAck(c *flowtable.Conn, p *decode.Packet, dir, other int, ts, at int64) {
	o := &c.Side[other]
	a := flowtable.Seq(p.Ack)
	lo := o.ISN + 1
	if a.InRange(lo, o.NextSeq+1) {
		return
	}
	if n := s.notes(c); n != nil {
		n.BadAck, n.BadAckTS, n.BadAckFrom = p.Ack, ts, uint8(dir+1)
	}
	var e Event
	if !s.begin(&e, c, TypeInvalidAck, at) {
		return
	}
	// Distance to the nearer end of the valid range.
	d := int64(o.NextSeq.Distance(a))
	if d < 0 {
		d = int64(a.Distance(lo))
	}
	e.Start, e.End = ts, ts
	if d > s.cfg.LargeAckDistance || d < 0 {
		e.Cause = CauseSeqTranslationMiddlebox
		e.Severity = SeverityWarning
	} else {
		e.Cause = CauseAckOfUnseenSegment
		e.Severity = SeverityNotice
		e.Capture |= CaptureLossSuspected
	}
	e.AddEvidence(EvAck, int64(p.Ack))
	e.AddEvidence(EvExpectedAckMin, int64(uint32(lo)))
	e.AddEvidence(EvExpectedAckMax, int64(uint32(o.NextSeq)))
	e.AddEvidence(EvAckDistance, d)
	if dir == flowtable.Server {
		// A server acknowledging what the client never sent: name it in
		// the evidence rather than swapping the roles.
		e.AddEvidence(EvSeq, int64(p.Seq))
	}
	s.emit(&e)
}

// rst handles a RST (not a refusal): the answer to an invalid ACK
// (rst_after_invalid_ack), and the start of rst_ignored.
func (s *Set) rst(c *flowtable.Conn, p *decode.Packet, dir int, ts, at int64) {
	other := 1 - dir
	n := s.peek(c)
	// RFC 793: a RST answering a segment with an ACK takes its seq from
	// that ACK, which is how it is matched to the invalid ACK.
	if n != nil && int(n.BadAckFrom) == other+1 && p.Seq == n.BadAck && ts-n.BadAckTS <= 1e9 {
		var e Event
		if s.begin(&e, c, TypeRstAfterInvalidAck, at) {
			e.Cause = CauseSeqTranslationMiddlebox
			e.Severity = SeverityWarning
			e.Start, e.End = n.BadAckTS, ts
			e.AddEvidence(EvRstSeq, int64(p.Seq))
			e.AddEvidence(EvAck, int64(n.BadAck))
			e.AddEvidence(EvRstDelayMs, ms(ts-n.BadAckTS))
			s.emit(&e)
		}
	}
	if n != nil && n.RSTFrom != 0 {
		return
	}
	if n = s.notes(c); n == nil {
		return
	}
	n.RSTFrom = uint8(dir + 1)
	c.Watch |= watchRST
	n.RSTSeq = p.Seq
	n.RSTTS = ts
	n.RSTInWindow = -1
	// The receiver's next expected sequence: its highest ACK, unless that
	// ACK is itself outside what the RST's sender sent (mangled), then
	// what the sender sent.
	snd, rcv := &c.Side[dir], &c.Side[other]
	if !snd.Has(flowtable.SideSeq) {
		return
	}
	next := snd.NextSeq
	if rcv.Has(flowtable.SideAcked) && snd.Has(flowtable.SideISN) && rcv.MaxAck.InRange(snd.ISN+1, snd.NextSeq+1) {
		next = rcv.MaxAck
	}
	wnd := uint32(rcv.Window)
	if rcv.WScale >= 0 && snd.WScale >= 0 {
		wnd <<= uint(rcv.WScale)
	}
	n.RSTRcvNext = uint32(next)
	n.RSTRcvWnd = wnd
	if flowtable.Seq(p.Seq) == next || flowtable.Seq(p.Seq).InRange(next, next.Add(wnd)) {
		n.RSTInWindow = 1
	} else {
		n.RSTInWindow = 0
	}
}

// rstIgnoredSegments and rstIgnoredAfter: the other side keeps sending
// after a RST when it sends this many segments, or one this long after.
const (
	rstIgnoredSegments = 2
	rstIgnoredAfter    = int64(200e6)
)

// afterRST: the receiver of the connection's first RST sent a segment.
func (s *Set) afterRST(c *flowtable.Conn, n *connNotes, ts, at int64) {
	if n.AfterRST < 1<<15 {
		n.AfterRST++
	}
	if n.AfterRST < rstIgnoredSegments && ts-n.RSTTS < rstIgnoredAfter {
		return
	}
	var e Event
	if !s.begin(&e, c, TypeRstIgnored, at) {
		return
	}
	e.Severity = SeverityWarning
	e.Start, e.End = n.RSTTS, ts
	switch n.RSTInWindow {
	case 1:
		e.Cause = CauseRstInWindow
	case 0:
		e.Cause = CauseRstOutOfWindow
	}
	e.AddEvidence(EvRstSeq, int64(n.RSTSeq))
	if n.RSTInWindow >= 0 {
		e.AddEvidence(EvRstInWindow, int64(n.RSTInWindow))
		e.AddEvidence(EvReceiverNextSeq, int64(n.RSTRcvNext))
		e.AddEvidence(EvReceiverWindow, int64(n.RSTRcvWnd))
	}
	e.AddEvidence(EvSegmentsAfterRst, int64(n.AfterRST))
	e.AddEvidence(EvIgnoredMs, ms(ts-n.RSTTS))
	s.emit(&e)
}

// retransmitted: the client sent data again. Track the segment sent most
// often until the server acknowledges it. A probe into a zero window is
// not a retransmission of an unanswered request.
func (s *Set) retransmitted(c *flowtable.Conn, p *decode.Packet, ts int64) {
	const cl = flowtable.Client
	sv := &c.Side[flowtable.Server]
	if sv.Has(flowtable.SideSent) && sv.Window == 0 {
		return
	}
	n := s.peek(c)
	if n != nil && n.RtxN > 0 && p.Seq == n.RtxSeq {
		if n.RtxN < 1<<15 {
			n.RtxN++
		}
		n.RtxLastTS = ts
		return
	}
	if n != nil && n.RtxN > 0 && !rtxAcked(c, n) {
		return // an older segment is still unanswered: keep counting that one
	}
	if n = s.notes(c); n == nil {
		return
	}
	n.RtxSeq, n.RtxLen, n.RtxN = p.Seq, uint32(p.PayloadLen), 1
	c.Watch |= watchRtx
	n.RtxFirstTS, n.RtxLastTS = ts, ts
	n.PeerAfter = 0
}

// rtxAcked reports whether the server acknowledged the tracked segment.
func rtxAcked(c *flowtable.Conn, n *connNotes) bool {
	sv := &c.Side[flowtable.Server]
	return sv.Has(flowtable.SideAcked) && flowtable.Seq(n.RtxSeq).LessThan(sv.MaxAck)
}

// peerSpoke: the server sent a segment while a client segment was being
// retransmitted.
func (s *Set) peerSpoke(c *flowtable.Conn, n *connNotes) {
	if rtxAcked(c, n) {
		n.RtxN = 0
		c.Watch &^= watchRtx
		return
	}
	if n.PeerAfter < 1<<15 {
		n.PeerAfter++
	}
}

// requestEnded: the connection ends (client FIN, a RST, or it leaves the
// table) with a client segment retransmitted RequestRetransmits times and
// never acknowledged. A server that still sent segments meanwhile
// discards the request; one that fell silent is behind a black hole —
// unless the Correlator sees it answer other connections meanwhile.
func (s *Set) requestEnded(c *flowtable.Conn, at int64) {
	n := s.peek(c)
	if n == nil || int(n.RtxN) < s.cfg.RequestRetransmits || rtxAcked(c, n) || c.SynAckUnseen ||
		!c.Side[flowtable.Server].Has(flowtable.SideSent) {
		return
	}
	var e Event
	if !s.begin(&e, c, TypeRequestUnanswered, at) {
		return
	}
	e.Severity = SeverityWarning
	if n.PeerAfter > 0 {
		e.Cause = CauseServerDiscarding
	} else {
		e.Cause = CausePathBlackhole
	}
	first := c.FirstDataTS
	if first == 0 || first > n.RtxFirstTS {
		first = n.RtxFirstTS
	}
	e.Start, e.End = first, n.RtxLastTS
	if c.LastTS > e.End && at >= c.LastTS {
		e.End = c.LastTS
	}
	e.AddEvidence(EvRetransmits, int64(n.RtxN))
	e.AddEvidence(EvSeq, int64(n.RtxSeq))
	e.AddEvidence(EvBytes, int64(n.RtxLen))
	e.AddEvidence(EvWaitMs, ms(n.RtxLastTS-first))
	s.emit(&e)
}

// Previous keeps what the flow table knew of the connection c replaced on
// its 4-tuple, for portReuseRejected (flowtable.Handler).
func (s *Set) Previous(c *flowtable.Conn, p flowtable.Prev) {
	if n := s.notes(c); n != nil {
		n.Prev = p
	}
}

// portReuseRejected: a SYN on a 4-tuple whose previous connection ended
// less than portReuseWindow before was answered by a bare ACK — the old
// connection's TIME_WAIT — instead of a SYN/ACK (seeds/001 as today's
// kernels show it). A TSval below the old connection's last one is the
// PAWS reject of a NAT reusing ports.
//
// The sensor may no longer know the old connection: it left the table 10 s
// after its end and its place in the table's memory of ended connections
// was taken, or the capture began after it. The bare ACK itself is then
// the evidence: a server acknowledges something other than the SYN only
// for a connection it still holds on the 4-tuple, and its TSecr echoes the
// last TSval it took from that connection's client (Linux's tw_ts_recent,
// what its PAWS check compares the SYN with; testdata/seed001.pcap #84).
func (s *Set) portReuseRejected(c *flowtable.Conn, p *decode.Packet, ts, at int64) {
	var prev flowtable.Prev
	if n := s.peek(c); n != nil {
		prev = n.Prev
	}
	known := prev.EndTS != 0
	if known && c.SynTS-prev.EndTS >= portReuseWindow {
		return
	}
	var e Event
	if !s.begin(&e, c, TypePortReuseRejected, at) {
		return
	}
	e.Severity = SeverityWarning
	e.Start, e.End = c.SynTS, ts
	cl := &c.Side[flowtable.Client]
	prevTS, hasPrevTS := prev.TSval, prev.HasTS
	if !known && p.Opts&decode.OptTimestamp != 0 {
		prevTS, hasPrevTS = p.TSecr, true
	}
	e.Cause = CauseTimeWaitSeq
	if cl.Has(flowtable.SideTS) && hasPrevTS {
		if int32(cl.TSval-prevTS) < 0 {
			e.Cause = CauseTimeWaitPAWS
		}
		e.AddEvidence(EvTSval, int64(cl.TSval))
		e.AddEvidence(EvPreviousTSval, int64(prevTS))
	}
	if known {
		e.AddEvidence(EvSincePreviousMs, ms(c.SynTS-prev.EndTS))
	}
	e.AddEvidence(EvAck, int64(p.Ack))
	s.emit(&e)
}

// portReuseWindow: how long after a connection ended a SYN on its
// 4-tuple may meet its TIME_WAIT (Linux holds TIME_WAIT 60 s).
const portReuseWindow = int64(60e9)
