package decode

import "encoding/binary"

// TCP constants.
const (
	tcpMinLen = 20

	optEOL       = 0
	optNOP       = 1
	optMSS       = 2
	optWScale    = 3
	optSACKPerm  = 4
	optSACK      = 5
	optTimestamp = 8

	lenMSS       = 4
	lenWScale    = 3
	lenSACKPerm  = 2
	lenTimestamp = 10
	sackBlockLen = 8

	// nopNopTS is how Linux (and most stacks) lead every segment's options
	// after the handshake: NOP, NOP, kind 8, length 10.
	nopNopTS = optNOP<<24 | optNOP<<16 | optTimestamp<<8 | lenTimestamp
	// A Linux SYN or SYN/ACK: MSS, SACK-permitted, timestamps, NOP, window
	// scale, 20 bytes; matched by the words around the values.
	linuxSYNLen = 20
	linuxSYN0   = optMSS<<8 | lenMSS                                                 // bytes 0-1
	linuxSYN4   = optSACKPerm<<24 | lenSACKPerm<<16 | optTimestamp<<8 | lenTimestamp // bytes 4-7
	linuxSYN16  = optNOP<<16 | optWScale<<8 | lenWScale                              // bytes 16-18
)

// tcp decodes the TCP header at seg, which holds what was captured of the
// segment; wireLen is the segment's length according to the IP header.
func (p *Packet) tcp(seg []byte, wireLen int) Reason {
	if len(seg) < tcpMinLen {
		if wireLen < tcpMinLen {
			return BadTCPHeader // the IP header leaves no room for it
		}
		return TruncatedTCP
	}
	hl := int(seg[12]>>4) << 2
	if hl < tcpMinLen || hl > wireLen {
		return BadTCPHeader
	}
	if hl > len(seg) {
		return TruncatedTCP
	}
	p.SrcPort = binary.BigEndian.Uint16(seg[0:2])
	p.DstPort = binary.BigEndian.Uint16(seg[2:4])
	if p.portsOnly {
		return OK
	}
	p.Seq = binary.BigEndian.Uint32(seg[4:8])
	p.Ack = binary.BigEndian.Uint32(seg[8:12])
	p.Flags = seg[13]
	p.Window = binary.BigEndian.Uint16(seg[14:16])
	p.Checksum = binary.BigEndian.Uint16(seg[16:18])
	p.Urgent = binary.BigEndian.Uint16(seg[18:20])
	p.HdrLen = hl
	p.PayloadLen = wireLen - hl
	// Cap the view so that nothing after the segment (padding, the next
	// frame of a ring block) can be reached by reslicing it.
	p.Payload = seg[hl:len(seg):len(seg)]
	if hl > tcpMinLen {
		p.options(seg[tcpMinLen:hl])
	}
	return OK
}

// options parses the TCP options o as the kernel does (tcp_parse_options):
// a known option of the wrong length is ignored, an option whose length is
// below 2 or runs past the header ends parsing (OptMalformed), and a
// repeated option overrides the earlier one.
//
// The two layouts Linux sends are matched first: they are most segments.
func (p *Packet) options(o []byte) {
	switch len(o) {
	case 12:
		if binary.BigEndian.Uint32(o[0:4]) == nopNopTS {
			p.Opts = OptTimestamp
			p.TSval = binary.BigEndian.Uint32(o[4:8])
			p.TSecr = binary.BigEndian.Uint32(o[8:12])
			return
		}
	case linuxSYNLen:
		if binary.BigEndian.Uint16(o[0:2]) == linuxSYN0 &&
			binary.BigEndian.Uint32(o[4:8]) == linuxSYN4 &&
			binary.BigEndian.Uint32(o[16:20])>>8 == linuxSYN16 {
			p.Opts = OptMSS | OptSACKPerm | OptTimestamp | OptWScale
			p.MSS = binary.BigEndian.Uint16(o[2:4])
			p.TSval = binary.BigEndian.Uint32(o[8:12])
			p.TSecr = binary.BigEndian.Uint32(o[12:16])
			p.WScale = o[19]
			return
		}
	}
	p.parseOptions(o)
}

// parseOptions is the general option walk behind options' fast paths.
func (p *Packet) parseOptions(o []byte) {
	for len(o) > 0 {
		kind := o[0]
		if kind == optEOL {
			return
		}
		if kind == optNOP {
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			p.Opts |= OptMalformed
			return
		}
		n := int(o[1])
		if n < 2 || n > len(o) {
			p.Opts |= OptMalformed
			return
		}
		switch kind {
		case optMSS:
			if n == lenMSS {
				p.Opts |= OptMSS
				p.MSS = binary.BigEndian.Uint16(o[2:4])
			}
		case optWScale:
			if n == lenWScale {
				p.Opts |= OptWScale
				p.WScale = o[2]
			}
		case optSACKPerm:
			if n == lenSACKPerm {
				p.Opts |= OptSACKPerm
			}
		case optSACK:
			if n > 2 && (n-2)%sackBlockLen == 0 {
				// 40 bytes of options hold at most 4 blocks, so
				// MaxSACK never cuts a real option short.
				blocks := o[2:n]
				p.SACK = [MaxSACK][2]uint32{} // a repeated SACK replaces the blocks
				k := 0
				for ; k < MaxSACK && len(blocks) >= sackBlockLen; k++ {
					p.SACK[k][0] = binary.BigEndian.Uint32(blocks[0:4])
					p.SACK[k][1] = binary.BigEndian.Uint32(blocks[4:8])
					blocks = blocks[sackBlockLen:]
				}
				p.Opts |= OptSACK
				p.NSACK = k
			}
		case optTimestamp:
			if n == lenTimestamp {
				p.Opts |= OptTimestamp
				p.TSval = binary.BigEndian.Uint32(o[2:6])
				p.TSecr = binary.BigEndian.Uint32(o[6:10])
			}
		}
		o = o[n:]
	}
}
