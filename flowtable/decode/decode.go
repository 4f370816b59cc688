package decode

import "encoding/binary"

// Link-layer constants.
const (
	ethHdrLen  = 14
	sllHdrLen  = 16
	sll2HdrLen = 20
	nullHdrLen = 4
	vlanTagLen = 4

	etIPv4   = 0x0800
	etIPv6   = 0x86dd
	etDot1Q  = 0x8100 // 802.1Q C-tag
	etDot1AD = 0x88a8 // 802.1ad S-tag (QinQ)
	etQinQ   = 0x9100 // pre-802.1ad QinQ S-tag, still sent by some switches

	// ARPHRD_ types for which the SLL protocol field is not an EtherType
	// (libpcap LINKTYPE_LINUX_SLL/SLL2): Frame Relay carries LAPF and
	// radiotap carries 802.11 frames, whatever the field says.
	arphrdFRAD     = 770
	arphrdRadiotap = 803

	// Address families in a LINKTYPE_NULL/LOOP header: AF_INET is 2
	// everywhere; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD) or 30
	// (macOS), so a capture file from any BSD decodes anywhere.
	afInet      = 2
	afInet6BSD  = 24
	afInet6FBSD = 28
	afInet6OSX  = 30
)

// Parse decodes frame, captured on a link of type link (a Link* value),
// down to its TCP segment and fills p. It returns OK when p holds a TCP
// segment and otherwise the first reason the frame could not be used.
//
// Parse resets p first. On OK every field is set (option values only with
// their Opt* bit). On NotTCP and IPFragment the L2 and L3 fields are set as
// well; on other reasons the fields are unspecified. p.Payload is a view
// into frame, capped at its own length, valid as long as frame is.
//
// Parse never allocates, copies or panics, reads nothing past len(frame)
// and does not verify checksums: on locally generated traffic they are
// left to the NIC (offload) and so are wrong in any capture.
func Parse(frame []byte, link int, p *Packet) Reason {
	*p = Packet{}
	return p.link(frame, link)
}

// Endpoints decodes frame as Parse does down to the TCP ports only: it
// fills p's L2 and L3 fields and its ports, and skips the rest of the TCP
// header and its options. For every frame Parse decodes it returns OK
// with the same addresses and ports, at a fraction of the cost: a replay
// deals frames out to its workers by them. (It may return OK for a frame
// whose TCP header Parse then finds bad.)
func Endpoints(frame []byte, link int, p *Packet) Reason {
	*p = Packet{portsOnly: true}
	return p.link(frame, link)
}

// link decodes frame from its link-layer header on.
func (p *Packet) link(frame []byte, link int) Reason {
	switch link {
	case LinkEthernet:
		if len(frame) < ethHdrLen {
			return TruncatedL2
		}
		et := binary.BigEndian.Uint16(frame[12:14])
		if et == etIPv4 { // most frames: skip the VLAN walk
			return p.ipv4(frame[ethHdrLen:])
		}
		return p.l2(frame, ethHdrLen, et)
	case LinkLinuxSLL:
		if len(frame) < sllHdrLen {
			return TruncatedL2
		}
		if !sllEtherType(binary.BigEndian.Uint16(frame[2:4])) {
			return NotIP
		}
		return p.l2(frame, sllHdrLen, binary.BigEndian.Uint16(frame[14:16]))
	case LinkLinuxSLL2:
		if len(frame) < sll2HdrLen {
			return TruncatedL2
		}
		if !sllEtherType(binary.BigEndian.Uint16(frame[8:10])) {
			return NotIP
		}
		return p.l2(frame, sll2HdrLen, binary.BigEndian.Uint16(frame[0:2]))
	case LinkRaw:
		if len(frame) == 0 {
			return TruncatedIP
		}
		switch frame[0] >> 4 {
		case 4:
			return p.ipv4(frame)
		case 6:
			return p.ipv6(frame)
		}
		return BadIPVersion
	case LinkIPv4:
		return p.ipv4(frame)
	case LinkIPv6:
		return p.ipv6(frame)
	case LinkNull, LinkLoop:
		if len(frame) < nullHdrLen {
			return TruncatedL2
		}
		// NULL is in the capturing host's byte order, LOOP in network
		// order (OpenBSD); a file may come from a host of either order.
		fam := afFamily(binary.BigEndian.Uint32(frame))
		if fam == 0 && link == LinkNull {
			fam = afFamily(binary.LittleEndian.Uint32(frame))
		}
		switch fam {
		case 4:
			return p.ipv4(frame[nullHdrLen:])
		case 6:
			return p.ipv6(frame[nullHdrLen:])
		}
		return NotIP
	}
	return BadLinkType
}

// OuterVLAN records a VLAN tag that the capture took out of the frame
// before Parse saw it (a live ring on Ethernet: the kernel reports the tag
// beside the frame). tci is the tag's TCI; it becomes the outermost tag,
// before any still in the frame, as if Parse had read it there. Call it
// after Parse.
func (p *Packet) OuterVLAN(tci uint16) {
	copy(p.VLAN[1:], p.VLAN[:MaxVLAN-1])
	p.VLAN[0] = tci & 0x0fff
	p.NVLAN++
}

// l2 walks the VLAN tags starting at frame[off:] (et is the EtherType
// that precedes them) and hands the IP packet to its decoder. SLL and
// SLL2 share it: libpcap re-inserts the tag the kernel stripped there too.
func (p *Packet) l2(frame []byte, off int, et uint16) Reason {
	for et == etDot1Q || et == etDot1AD || et == etQinQ {
		if len(frame)-off < vlanTagLen {
			return TruncatedL2
		}
		tag := frame[off : off+vlanTagLen]
		if p.NVLAN < MaxVLAN {
			p.VLAN[p.NVLAN] = binary.BigEndian.Uint16(tag[0:2]) & 0x0fff
		}
		p.NVLAN++
		et = binary.BigEndian.Uint16(tag[2:4])
		off += vlanTagLen
	}
	switch et {
	case etIPv4:
		return p.ipv4(frame[off:])
	case etIPv6:
		return p.ipv6(frame[off:])
	}
	return NotIP
}

// sllEtherType reports whether an SLL header with this ARPHRD_ type
// carries an EtherType in its protocol field.
func sllEtherType(hatype uint16) bool {
	return hatype != arphrdFRAD && hatype != arphrdRadiotap
}

// afFamily maps a NULL/LOOP address family to 4, 6, or 0 for anything else.
func afFamily(af uint32) uint8 {
	switch af {
	case afInet:
		return 4
	case afInet6BSD, afInet6FBSD, afInet6OSX:
		return 6
	}
	return 0
}
