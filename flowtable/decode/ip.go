package decode

import "encoding/binary"

// IP constants.
const (
	ipv4MinLen = 20
	ipv6HdrLen = 40

	protoHopByHop = 0
	protoTCP      = 6
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoNoNext   = 59
	protoDestOpts = 60

	ipv4FragOffMask = 0x1fff // offset field of IPv4 flags+fragment offset
	ipv6FragOffMask = 0xfff8 // offset field of the IPv6 fragment header

	extMinLen = 8  // smallest IPv6 extension header
	ahMinLen  = 12 // AH fixed part: next, len, reserved, SPI, sequence
	// maxExtHeaders bounds the extension header walk. Real chains hold
	// two or three; a longer one is an attack on header parsers.
	maxExtHeaders = 8
)

// ipv4 decodes the IPv4 packet at b. Options are skipped, not checked:
// nothing in them changes where the TCP header is.
func (p *Packet) ipv4(b []byte) Reason {
	if len(b) < ipv4MinLen {
		return TruncatedIP
	}
	if b[0]>>4 != 4 {
		return BadIPVersion
	}
	hl := int(b[0]&0x0f) << 2
	if hl < ipv4MinLen {
		return BadIPHeader
	}
	tot := int(binary.BigEndian.Uint16(b[2:4]))
	if tot == 0 {
		// TSO: a captured outgoing super-packet is handed to the NIC
		// before the stack fills in a length; what was captured is it.
		tot = len(b)
	}
	if tot < hl {
		return BadIPHeader
	}
	if len(b) < hl {
		return TruncatedIP
	}
	p.Family = 4
	p.TTL = b[8]
	p.IPID = binary.BigEndian.Uint16(b[4:6])
	p.IPLen = tot
	*(*[4]byte)(p.Src[:4]) = [4]byte(b[12:16])
	*(*[4]byte)(p.Dst[:4]) = [4]byte(b[16:20])
	if binary.BigEndian.Uint16(b[6:8])&ipv4FragOffMask != 0 {
		// A first fragment (offset 0, MF set) still starts with the
		// TCP header and is decoded; later ones cannot be.
		return IPFragment
	}
	// Bound the segment by the IP length: it drops Ethernet padding, and
	// when the capture was snapped the wire length still comes from tot.
	end := min(tot, len(b))
	switch b[9] {
	case protoTCP:
		return p.tcp(b[hl:end], tot-hl)
	case protoAH:
		return p.ext(b[:end], hl, tot, protoAH, false)
	}
	return NotTCP
}

// ipv6 decodes the IPv6 packet at b.
func (p *Packet) ipv6(b []byte) Reason {
	if len(b) < ipv6HdrLen {
		return TruncatedIP
	}
	if b[0]>>4 != 6 {
		return BadIPVersion
	}
	end := ipv6HdrLen + int(binary.BigEndian.Uint16(b[4:6]))
	if end == ipv6HdrLen {
		// A jumbogram (RFC 2675), or a BIG TCP/TSO super-packet captured
		// on its way out (as for IPv4): the real length is not in this
		// header, so what was captured is it.
		end = len(b)
	}
	p.Family = 6
	p.TTL = b[7]
	p.IPLen = end
	p.Src = [16]byte(b[8:24])
	p.Dst = [16]byte(b[24:40])
	nh := b[6]
	b = b[:min(end, len(b))]
	if nh == protoTCP {
		return p.tcp(b[ipv6HdrLen:], end-ipv6HdrLen)
	}
	return p.ext(b, ipv6HdrLen, end, nh, true)
}

// ext walks the header chain of the IP packet b (already cut to its IP
// length) from b[off:], where a header of protocol nh starts, to the TCP
// header; end is the IP length from the header (b may be shorter: snapped).
// IPv6 walks its extension headers; IPv4 (v6 false) only AH, the one of
// them that IPv4 also uses.
func (p *Packet) ext(b []byte, off, end int, nh uint8, v6 bool) Reason {
	bad := BadIPHeader
	if v6 {
		bad = BadIPv6ExtHeader
	}
	for n := 0; ; n++ {
		switch nh {
		case protoTCP:
			return p.tcp(b[off:], end-off)
		case protoHopByHop, protoRouting, protoDestOpts, protoFragment:
			if !v6 {
				return NotTCP
			}
		case protoAH:
		case protoESP, protoNoNext:
			// ESP hides what follows; no-next-header ends the packet.
			return NotTCP
		default:
			return NotTCP // another transport: UDP, ICMPv6, ...
		}
		if n == maxExtHeaders {
			return bad
		}
		if end-off < extMinLen {
			return bad
		}
		if len(b)-off < extMinLen {
			return TruncatedIP
		}
		h := b[off : off+extMinLen]
		var hl int
		switch nh {
		case protoFragment:
			if binary.BigEndian.Uint16(h[2:4])&ipv6FragOffMask != 0 {
				return IPFragment
			}
			hl = extMinLen
		case protoAH:
			// AH counts 4-byte units minus 2 (RFC 4302), the others
			// 8-byte units minus 1 (RFC 8200).
			hl = (int(h[1]) + 2) << 2
			if hl < ahMinLen {
				return bad
			}
		default:
			hl = (int(h[1]) + 1) << 3
		}
		if end-off < hl {
			return bad
		}
		if len(b)-off < hl {
			return TruncatedIP
		}
		nh = h[0]
		off += hl
	}
}
