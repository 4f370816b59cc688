package detectors

import (
	"net/netip"
	"strconv"
)

// AppendMessage appends the event's one-sentence explanation for a person
// on call (ECS message). It runs in the publisher, not on the packet path.
func AppendMessage(dst []byte, e *Event) []byte {
	ev := func(k EvidenceKey) int64 { v, _ := e.Lookup(k); return v }
	num := func(v int64) { dst = strconv.AppendInt(dst, v, 10) }
	s := func(x string) { dst = append(dst, x...) }
	client := func() { dst = appendEndpoint(dst, e.Family, e.Client) }
	server := func() { dst = appendEndpoint(dst, e.Family, e.Server) }
	switch e.Type {
	case TypeConnectionRefused:
		s("server ")
		server()
		s(" refused a connection from client ")
		client()
		s(" with a RST/ACK: nothing listens on that port")
		if d, ok := e.Lookup(EvRstDelayMs); ok {
			if d == 0 {
				s(" (answered in under 1 ms)")
			} else {
				s(" (answered in ")
				num(d)
				s(" ms)")
			}
		}
	case TypeSynUnanswered:
		s("client ")
		client()
		s(" sent a SYN to server ")
		server()
		s(" that got neither a SYN/ACK nor a RST")
		if n, ok := e.Lookup(EvSynRetransmits); ok {
			s(" (")
			num(n)
			s(" retransmissions over ")
			num(ev(EvWaitMs))
			s(" ms)")
		}
		switch e.Cause {
		case CauseSilentDrop:
			s(": a firewall or the server's host drops them silently")
		case CauseListenQueueOverflow:
			s(" while the server answered other SYNs to that port: its listen queue is full")
		case CausePAWSNATTimestamps:
			s(": its TCP timestamp went backwards for this source (several hosts behind one NAT address), so a PAWS check drops it")
		}
	case TypeSynackRetransmitAfterAck:
		s("server ")
		server()
		s(" re-sent its SYN/ACK ")
		num(ev(EvSynackRetransmitDelayMs))
		s(" ms after client ")
		client()
		s(" completed the handshake")
		switch e.Cause {
		case CauseTCPDeferAccept:
			s("; the client's first data came ")
			num(ev(EvHandshakeToFirstDataMs))
			s(" ms after the handshake: the server waits for data before accepting (TCP_DEFER_ACCEPT)")
		case CauseAcceptQueueOverflow:
			s(" and sent ")
			num(ev(EvClientUnackedBytes))
			s(" bytes the server never acknowledged: its accept queue is full")
		case CauseAckLostBeforeServer:
			s(": the client's handshake ACK did not reach the server")
		}
	case TypeInvalidAck:
		s("a segment between client ")
		client()
		s(" and server ")
		server()
		s(" acknowledges sequence number ")
		num(ev(EvAck))
		s(", ")
		num(ev(EvAckDistance))
		s(" bytes outside anything the other side sent")
		switch e.Cause {
		case CauseSeqTranslationMiddlebox:
			s(": a middlebox is rewriting sequence or acknowledgment numbers")
		case CauseAckOfUnseenSegment:
			s(": probably a segment the capture missed")
		}
	case TypeRstAfterInvalidAck:
		s("the connection from client ")
		client()
		s(" to server ")
		server()
		s(" was reset in answer to an invalid acknowledgment number (")
		num(ev(EvAck))
		s("): a middlebox rewriting sequence numbers breaks it")
	case TypeRstIgnored:
		s("after a RST on the connection from client ")
		client()
		s(" to server ")
		server()
		s(", the other side kept sending ")
		num(ev(EvSegmentsAfterRst))
		s(" segments over ")
		num(ev(EvIgnoredMs))
		s(" ms")
		switch e.Cause {
		case CauseRstOutOfWindow:
			s(": the RST's sequence number was outside the receiver's window, so its stack rightly dropped it")
		case CauseRstInWindow:
			s(" although the RST's sequence number was inside the receiver's window")
		}
	case TypeRequestUnanswered:
		s("client ")
		client()
		s(" sent ")
		num(ev(EvBytes))
		s(" bytes to server ")
		server()
		s(" ")
		num(ev(EvRetransmits) + 1)
		s(" times over ")
		num(ev(EvWaitMs))
		s(" ms and nothing ever acknowledged them")
		switch e.Cause {
		case CauseServerDiscarding:
			s(": the server is up but discards them")
		case CausePathBlackhole:
			s(": the server went silent, the path drops them")
		}
	case TypeTSRegression:
		s("source ")
		dst = e.Client.AddrOf(e.Family).AppendTo(dst)
		s(" sent a SYN to ")
		dst = e.Server.AddrOf(e.Family).AppendTo(dst)
		s(" whose TCP timestamp is ")
		num(ev(EvRegressionTicks))
		s(" ticks behind its clock: a second host behind that address (NAT)")
	case TypePortReuseRejected:
		s("server ")
		server()
		s(" answered a new SYN from client ")
		client()
		if d, ok := e.Lookup(EvSincePreviousMs); ok {
			s(" with a bare ACK, ")
			num(d)
			s(" ms after the previous connection on that port pair ended: its TIME_WAIT rejected it")
		} else {
			// Without the old connection, TIME_WAIT is the likely
			// holder, not the only one: a connection still open answers
			// a SYN the same way (RFC 5961's challenge ACK).
			s(" with a bare ACK for an earlier connection on that port pair, which the sensor no longer knows: the server still holds it, most likely in TIME_WAIT, and rejected the SYN")
		}
		if e.Cause == CauseTimeWaitPAWS {
			s(" because the SYN's timestamp was older (PAWS; NAT reusing ports)")
		}
	case TypeFailedConnectionRate:
		num(ev(EvFailures))
		s(" connection attempts to server ")
		server()
		s(" failed within ")
		num(ev(EvWindowS))
		s(" s (")
		dst = strconv.AppendFloat(dst, float64(ev(EvRatePerS))/1000, 'f', 2, 64)
		s(" per second; ")
		num(ev(EvRefused))
		s(" refused, ")
		num(ev(EvUnanswered))
		s(" unanswered), most from ")
		dst = e.Client.AddrOf(e.Family).AppendTo(dst)
	case TypeRstStorm:
		s("host ")
		server()
		s(" ended ")
		num(ev(EvRstEndings))
		s(" connections with a RST within ")
		num(ev(EvWindowS))
		s(" s (")
		num(ev(EvRstSharePct))
		s("% of its connection endings)")
	default:
		s(e.Type.String())
		s(" between client ")
		client()
		s(" and server ")
		server()
	}
	if e.Count > 1 {
		s(" [")
		dst = strconv.AppendUint(dst, uint64(e.Count), 10)
		s(" times]")
	}
	return dst
}

// AddrOf returns the endpoint's address as a netip.Addr for the family.
func (ep Endpoint) AddrOf(family uint8) netip.Addr {
	if family == 4 {
		return netip.AddrFrom4([4]byte(ep.Addr[:4]))
	}
	return netip.AddrFrom16(ep.Addr)
}

func appendEndpoint(dst []byte, family uint8, ep Endpoint) []byte {
	return netip.AddrPortFrom(ep.AddrOf(family), ep.Port).AppendTo(dst)
}
