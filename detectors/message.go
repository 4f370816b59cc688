package detectors

import (
	"net/netip"
	"strconv"
)

// AppendMessage appends the event's one-sentence explanation for a person
// on call (ECS message). It runs in the publisher, not on the packet path.
func AppendMessage(dst []byte, e *Event) []byte {
	switch e.Type {
	case TypeConnectionRefused:
		dst = append(dst, "server "...)
		dst = appendEndpoint(dst, e.Family, e.Server)
		dst = append(dst, " refused a connection from client "...)
		dst = appendEndpoint(dst, e.Family, e.Client)
		dst = append(dst, " with a RST/ACK: nothing listens on that port"...)
		if d, ok := e.Lookup(EvRstDelayMs); ok {
			if d == 0 {
				dst = append(dst, " (answered in under 1 ms)"...)
			} else {
				dst = append(dst, " (answered in "...)
				dst = strconv.AppendInt(dst, d, 10)
				dst = append(dst, " ms)"...)
			}
		}
	case TypeSynUnanswered:
		dst = append(dst, "client "...)
		dst = appendEndpoint(dst, e.Family, e.Client)
		dst = append(dst, " sent a SYN to server "...)
		dst = appendEndpoint(dst, e.Family, e.Server)
		dst = append(dst, " that got neither a SYN/ACK nor a RST"...)
		if n, ok := e.Lookup(EvSynRetransmits); ok {
			dst = append(dst, " ("...)
			dst = strconv.AppendInt(dst, n, 10)
			dst = append(dst, " retransmissions over "...)
			w, _ := e.Lookup(EvWaitMs)
			dst = strconv.AppendInt(dst, w, 10)
			dst = append(dst, " ms)"...)
		}
		switch e.Cause {
		case CauseSilentDrop:
			dst = append(dst, ": a firewall or the server's host drops them silently"...)
		}
	default:
		dst = append(dst, e.Type.String()...)
		dst = append(dst, " between client "...)
		dst = appendEndpoint(dst, e.Family, e.Client)
		dst = append(dst, " and server "...)
		dst = appendEndpoint(dst, e.Family, e.Server)
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
