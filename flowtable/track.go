package flowtable

import (
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Seg describes what a segment did to its connection, for the detectors.
type Seg uint32

const (
	SegFromClient    Seg = 1 << iota // sent by the client
	SegNew                           // created the connection (or took over its 4-tuple)
	SegSYN                           // the client's first SYN
	SegSYNRetrans                    // the client's SYN again (same ISN)
	SegSYNACK                        // the server's first SYN/ACK
	SegSYNACKRetrans                 // the server's SYN/ACK again (same ISN)
	SegHandshakeAck                  // the client's ACK that completes the handshake
	SegData                          // payload with new sequence space
	SegDataRetrans                   // payload entirely below the side's highest sequence sent
	SegFIN                           // the side's first FIN
	SegRST                           // a RST
	SegRSTToSYN                      // the server's RST/ACK answering the client's SYN (ack = ISN+1) before any SYN/ACK
	SegMidstream                     // created without seeing the handshake
	SegAckToSYN                      // the server answered the client's SYN with a bare ACK, not a SYN/ACK (an old connection's TIME_WAIT, a challenge ACK)
	SegRSTToAck                      // the client's RST to such an ACK while its SYN is pending (RFC 9293 3.10.7.3): the attempt goes on
)

// Has reports whether all bits of f are set.
func (s Seg) Has(f Seg) bool { return s&f == f }

// Packet runs the packet clock to ts, finds or creates p's connection,
// tracks the segment and returns the connection and what the segment did.
// It allocates nothing. The *Conn is valid until the next call.
func (t *Table) Packet(p *decode.Packet, ts int64) (*Conn, Seg) {
	var pr Probe
	t.Probe(p, &pr)
	return t.Track(p, &pr, ts)
}

// Track is Packet for a packet whose Probe (pr) is filled already.
func (t *Table) Track(p *decode.Packet, pr *Probe, ts int64) (*Conn, Seg) {
	t.Advance(ts)
	k, fromA := &pr.key, pr.fromA
	c, slot, created := t.upsert(k, pr.hash)
	var seg Seg
	var replaced Prev // the connection a new SYN replaced (EndTS != 0)
	syn := p.Flags&decode.FlagSYN != 0
	ack := p.Flags&decode.FlagACK != 0
	rst := p.Flags&decode.FlagRST != 0

	// A new SYN (not its retransmission) on a 4-tuple that holds a
	// finished or still-unanswered connection starts a new connection:
	// port reuse. The old one leaves the table as if idle.
	if !created && syn && !ack && !rst {
		cl := &c.Side[Client]
		fromClient := fromA == c.ClientIsA
		if !fromClient || !cl.Has(SideISN) || cl.ISN != Seq(p.Seq) {
			if c.Stage >= StageClosing || c.Stage == StageSynSent || c.Midstream || !fromClient {
				prev := Prev{EndTS: c.EndTS}
				if prev.EndTS == 0 {
					prev.EndTS = c.LastTS
				}
				if cl.Has(SideTS) && fromClient {
					prev.TSval, prev.HasTS = cl.TSval, true
				}
				t.stats.Reused++
				t.leave(c, slot, EvictReused)
				c, slot, _ = t.upsert(k, pr.hash)
				replaced, created = prev, true
			}
		}
	}
	if created {
		t.open(c, p, fromA, ts)
		if replaced.EndTS != 0 {
			// Handed on now, not kept in the table's memory of ended
			// ones, where another 4-tuple with the same set could push
			// it out before the server answers.
			c.bits |= bitPrevTold
			t.h.Previous(c, replaced)
		}
		seg |= SegNew
		if c.Midstream {
			seg |= SegMidstream
		}
	}

	fromClient := fromA == c.ClientIsA
	dir, other := Server, Client
	if fromClient {
		dir, other = Client, Server
		seg |= SegFromClient
	}
	s, o := &c.Side[dir], &c.Side[other]
	seq := Seq(p.Seq)
	s.Pkts++
	s.Flags |= SideSent
	c.LastTS = ts
	prevStage := c.Stage

	switch {
	case rst && fromClient && prevStage == StageSynSent:
		// A client in SYN-SENT resets an unacceptable ACK and keeps
		// trying (RFC 9293 3.10.7.3); an abandoned connect sends nothing.
		seg |= SegRSTToAck
		ack = false // its sequence number is the ACK's ack: not ours
	case rst:
		// RFC 793: a RST answering a SYN carries the SYN's seq+1 as ack.
		if !fromClient && prevStage == StageSynSent && ack && o.Has(SideISN) && Seq(p.Ack) == o.ISN+1 {
			seg |= SegRSTToSYN
		}
		s.Flags |= SideRST
		seg |= SegRST
		if c.EndTS == 0 {
			c.EndTS = ts
		}
		c.Stage = StageClosed
		if c.bits&bitTimer != 0 && !fromClient {
			t.unlinkTimer(c, slot)
		}
	case syn && !ack:
		switch {
		case fromClient && !s.Has(SideISN):
			s.ISN, s.NextSeq = seq, seq+1
			s.Flags |= SideISN | SideSeq
			s.Syns = 1
			c.SynTS, c.LastSynTS = ts, ts
			if c.Stage == StageNone {
				c.Stage = StageSynSent
			}
			seg |= SegSYN
			takeSynOptions(s, p)
			t.armTimer(c, slot)
		case fromClient && s.ISN == seq:
			s.Syns++
			c.LastSynTS = ts
			seg |= SegSYNRetrans
		}
	case syn && ack:
		switch {
		case !fromClient && !s.Has(SideISN):
			s.ISN, s.NextSeq = seq, seq+1
			s.Flags |= SideISN | SideSeq
			s.Syns = 1
			if c.Stage <= StageSynSent {
				c.Stage = StageSynRcvd
			}
			seg |= SegSYNACK
			takeSynOptions(s, p)
			if c.bits&bitTimer != 0 {
				t.unlinkTimer(c, slot)
			}
		case !fromClient && s.ISN == seq:
			s.Syns++
			seg |= SegSYNACKRetrans
		}
	}

	if ack && !rst {
		a := Seq(p.Ack)
		if !s.Has(SideAcked) || s.MaxAck.LessThan(a) {
			s.MaxAck = a
			s.Flags |= SideAcked
		}
		switch {
		case fromClient && !syn && c.Stage == StageSynRcvd && o.Has(SideISN) && a == o.ISN+1:
			c.Stage = StageEstablished
			c.EstTS = ts
			seg |= SegHandshakeAck
		case !fromClient && !syn && c.Stage == StageSynSent && o.Has(SideISN) && a != o.ISN+1:
			// Not an answer to this SYN: the server holds an older
			// connection on the 4-tuple (TIME_WAIT) and acknowledges
			// that one. The SYN was answered, so no handshake timeout.
			seg |= SegAckToSYN
			if c.bits&bitTimer != 0 {
				t.unlinkTimer(c, slot)
			}
			if c.bits&bitPrevTold == 0 {
				if prev, ok := t.recall(c); ok {
					c.bits |= bitPrevTold
					t.h.Previous(c, prev)
				}
			}
		case fromClient && !syn && c.Stage == StageSynSent:
			// The client acknowledges a SYN/ACK the sensor never saw: the
			// capture misses the server's direction (one-sided SPAN) or
			// lost it. The SYN was answered; do not time it out.
			c.Stage = StageEstablished
			c.EstTS = ts
			c.SynAckUnseen = true
			if c.bits&bitTimer != 0 {
				t.unlinkTimer(c, slot)
			}
		}
	}

	// Sequence space: payload, then FIN.
	end := seq
	if syn {
		end++
	}
	if n := p.PayloadLen; n > 0 && !rst {
		end = end.Add(uint32(n))
		if s.Has(SideSeq) && end.LessThanEq(s.NextSeq) {
			s.Retrans++
			seg |= SegDataRetrans
			c.addHistory(histT, fromClient)
		} else {
			seg |= SegData
		}
		if !s.Has(SideData) {
			s.Flags |= SideData
			if fromClient {
				c.FirstDataTS = ts
			}
		}
		c.addHistory(histD, fromClient)
	}
	if p.Flags&decode.FlagFIN != 0 && !rst {
		if !s.Has(SideFIN) {
			s.Flags |= SideFIN
			seg |= SegFIN
			if c.EndTS == 0 {
				c.EndTS = ts
			}
			if o.Has(SideFIN) {
				c.Stage = StageClosed
			} else if c.Stage < StageClosing {
				c.Stage = StageClosing
			}
		}
		end++
	}
	if !rst && (!s.Has(SideSeq) || s.NextSeq.LessThan(end)) {
		s.NextSeq = end
		s.Flags |= SideSeq
	}
	if !rst {
		s.Window = p.Window // a RST's window means nothing (Linux sends 0)
	}
	if p.Opts&decode.OptTimestamp != 0 {
		s.TSval = p.TSval
		s.Flags |= SideTS
	}
	c.history(p, fromClient)

	// Keep the connection in the idle list of its stage; move a busy one
	// to the tail at most once per relinkGranularity.
	if cl := classOf(c.Stage); created {
		t.link(c, slot, cl)
	} else if cl != c.class || t.now-c.linkTS >= relinkGranularity {
		t.unlink(c, slot)
		t.link(c, slot, cl)
	}
	return c, seg
}

// open initialises a new connection from its first segment: who is the
// client, and whether the handshake was missed.
func (t *Table) open(c *Conn, p *decode.Packet, fromA bool, ts int64) {
	c.LastTS = ts
	// Unseeded, so the id of a connection is the same in every run and
	// with any number of workers.
	c.ID = flowID(idHash(&c.Key) ^ uint64(ts))
	c.Side[Client].WScale, c.Side[Server].WScale = -1, -1
	switch {
	case p.Flags&(decode.FlagSYN|decode.FlagACK|decode.FlagRST) == decode.FlagSYN:
		c.ClientIsA = fromA // the SYN's sender is the client
	case p.Flags&(decode.FlagSYN|decode.FlagACK) == decode.FlagSYN|decode.FlagACK:
		c.ClientIsA = !fromA // SYN/ACK: the receiver is the client
		c.Midstream = true
	default:
		// Midstream: the lower port is taken as the server.
		c.Midstream = true
		c.Stage = StageEstablished
		if c.Key.PortA == c.Key.PortB {
			c.ClientIsA = fromA
		} else {
			c.ClientIsA = c.Key.PortA > c.Key.PortB
		}
	}
}

// flowID mixes h to 53 bits, so JSON consumers that read numbers as
// doubles keep it exact.
func flowID(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h & (1<<53 - 1)
}

func takeSynOptions(s *Side, p *decode.Packet) {
	if p.Opts&decode.OptWScale != 0 {
		ws := p.WScale
		if ws > 14 { // RFC 7323 section 2.3: clamp to 14
			ws = 14
		}
		s.WScale = int8(ws)
	}
}

func classOf(s Stage) uint8 {
	switch s {
	case StageSynSent, StageSynRcvd, StageNone:
		return classHalfOpen
	case StageEstablished:
		return classEstablished
	}
	return classClosed
}

// history letter indexes into histLetters.
const (
	histS = iota
	histH
	histA
	histD
	histF
	histR
	histT
	histW
	histI
	histQ
)

// history records the Zeek history letters of a segment.
func (c *Conn) history(p *decode.Packet, fromClient bool) {
	f := p.Flags
	syn, fin, rst, ack := f&decode.FlagSYN != 0, f&decode.FlagFIN != 0, f&decode.FlagRST != 0, f&decode.FlagACK != 0
	switch {
	case syn && (fin || rst):
		c.addHistory(histQ, fromClient)
	case fin && rst:
		c.addHistory(histI, fromClient)
	case syn && ack:
		c.addHistory(histH, fromClient)
	case syn:
		c.addHistory(histS, fromClient)
	}
	if fin {
		c.addHistory(histF, fromClient)
	}
	if rst {
		c.addHistory(histR, fromClient)
	}
	if ack && !syn && !fin && !rst && p.PayloadLen == 0 {
		c.addHistory(histA, fromClient)
	}
	if p.Window == 0 && !rst && !syn {
		c.addHistory(histW, fromClient)
	}
}
