package decode

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Frames captured from the kernel (Linux 6.x, loopback, tcpdump -i lo for
// Ethernet and -i any for SLL2): a Python client sending "hello tcpsentry"
// to a server answering "pong:" + it. Checksums are wrong: offloaded.
var (
	kernV4SYN = unhex(`000000000000000000000000 0800
		4500003c208a400040061c307f0000017f000001
		d568870705cc836b00000000a002ffd7fe300000 0204ffd70402080a3aa6dbb8000000000103030a`)
	kernV4SYNACK = unhex(`000000000000000000000000 0800
		4500003c0000400040063cba7f0000017f000001
		8707d568b5befcad05cc836ca012ffcbfe300000 0204ffd70402080aa3426e403aa6dbb80103030a`)
	kernV4Data = unhex(`000000000000000000000000 0800
		45000048153c4000400627727f0000017f000001
		8707d568b5befcae05cc837b80180040fe3c0000 0101080aa3426e403aa6dbb8
		706f6e673a68656c6c6f2074637073656e747279`)
	kernV6SYN = unhex(`000000000000000000000000 86dd
		600dc301 0028 06 40 00000000000000000000000000000001 00000000000000000000000000000001
		9cd08708bc105d3100000000a002ffc400300000 0204ffc40402080a5f00a718000000000103030a`)
	kernV6Data = unhex(`000000000000000000000000 86dd
		600dc301 002f 06 40 00000000000000000000000000000001 00000000000000000000000000000001
		9cd08708bc105d320223ef8380180040003700000101080a5f00a71808263dad
		68656c6c6f2074637073656e747279`)
	kernSLL2SYN = unhex(`0800 0000 00000001 0304 00 06 0000000000000000
		4500003cc0c7400040067bf27f0000017f000001
		af9687096754d66100000000a002ffd7fe300000 0204ffd70402080ac53e13cc000000000103030a`)
	kernSLL2Data = unhex(`0800 0000 00000001 0304 00 06 0000000000000000
		45000043c0c9400040067be97f0000017f000001
		af9687096754d6629e351e2d80180040fe370000 0101080ac53e13cc8213c5f8
		68656c6c6f2074637073656e747279`)
)

var (
	lo4 = [16]byte{127, 0, 0, 1}
	lo6 = [16]byte{15: 1}
)

// kernelCases are the captured frames with what tcpdump -v printed.
func kernelCases() []parseCase {
	return []parseCase{
		{name: "kernel/v4-syn", link: LinkEthernet, frame: kernV4SYN, pkt: Packet{
			Family: 4, Src: lo4, Dst: lo4, TTL: 64, IPID: 0x208a, IPLen: 60,
			SrcPort: 54632, DstPort: 34567, Seq: 97289067, Flags: FlagSYN, Window: 65495,
			Checksum: 0xfe30, HdrLen: 40,
			Opts: OptMSS | OptSACKPerm | OptTimestamp | OptWScale, MSS: 65495, WScale: 10,
			TSval: 984013752}},
		{name: "kernel/v4-synack", link: LinkEthernet, frame: kernV4SYNACK, pkt: Packet{
			Family: 4, Src: lo4, Dst: lo4, TTL: 64, IPLen: 60,
			SrcPort: 34567, DstPort: 54632, Seq: 3049192621, Ack: 97289068,
			Flags: FlagSYN | FlagACK, Window: 65483, Checksum: 0xfe30, HdrLen: 40,
			Opts: OptMSS | OptSACKPerm | OptTimestamp | OptWScale, MSS: 65495, WScale: 10,
			TSval: 2739039808, TSecr: 984013752}},
		{name: "kernel/v4-data", link: LinkEthernet, frame: kernV4Data, pkt: Packet{
			Family: 4, Src: lo4, Dst: lo4, TTL: 64, IPID: 0x153c, IPLen: 72,
			SrcPort: 34567, DstPort: 54632, Seq: 3049192622, Ack: 97289083,
			Flags: FlagPSH | FlagACK, Window: 64, Checksum: 0xfe3c, HdrLen: 32,
			PayloadLen: 20, Payload: []byte("pong:hello tcpsentry"),
			Opts: OptTimestamp, TSval: 2739039808, TSecr: 984013752}},
		{name: "kernel/v6-syn", link: LinkEthernet, frame: kernV6SYN, pkt: Packet{
			Family: 6, Src: lo6, Dst: lo6, TTL: 64, IPLen: 80,
			SrcPort: 40144, DstPort: 34568, Seq: 3155189041, Flags: FlagSYN, Window: 65476,
			Checksum: 0x0030, HdrLen: 40,
			Opts: OptMSS | OptSACKPerm | OptTimestamp | OptWScale, MSS: 65476, WScale: 10,
			TSval: 1593878296}},
		{name: "kernel/v6-data", link: LinkEthernet, frame: kernV6Data, pkt: Packet{
			Family: 6, Src: lo6, Dst: lo6, TTL: 64, IPLen: 87,
			SrcPort: 40144, DstPort: 34568, Seq: 3155189042, Ack: 35909507,
			Flags: FlagPSH | FlagACK, Window: 64, Checksum: 0x0037, HdrLen: 32,
			PayloadLen: 15, Payload: []byte("hello tcpsentry"),
			Opts: OptTimestamp, TSval: 1593878296, TSecr: 136723885}},
		{name: "kernel/sll2-syn", link: LinkLinuxSLL2, frame: kernSLL2SYN, pkt: Packet{
			Family: 4, Src: lo4, Dst: lo4, TTL: 64, IPID: 0xc0c7, IPLen: 60,
			SrcPort: 44950, DstPort: 34569, Seq: 1733613153, Flags: FlagSYN, Window: 65495,
			Checksum: 0xfe30, HdrLen: 40,
			Opts: OptMSS | OptSACKPerm | OptTimestamp | OptWScale, MSS: 65495, WScale: 10,
			TSval: 3309179852}},
		{name: "kernel/sll2-data", link: LinkLinuxSLL2, frame: kernSLL2Data, pkt: Packet{
			Family: 4, Src: lo4, Dst: lo4, TTL: 64, IPID: 0xc0c9, IPLen: 67,
			SrcPort: 44950, DstPort: 34569, Seq: 1733613154, Ack: 2654281261,
			Flags: FlagPSH | FlagACK, Window: 64, Checksum: 0xfe37, HdrLen: 32,
			PayloadLen: 15, Payload: []byte("hello tcpsentry"),
			Opts: OptTimestamp, TSval: 3309179852, TSecr: 2182333944}},
	}
}

type parseCase struct {
	name  string
	link  int
	frame []byte
	want  Reason
	pkt   Packet // checked when want is OK, NotTCP or IPFragment
	// lenFromCapture: the IP length is taken from the capture (TSO,
	// jumbogram), so a truncated frame changes PayloadLen.
	lenFromCapture bool
}

// Modifiers of an expected packet.
type mod func(*Packet)

func vlans(n int, ids ...uint16) mod {
	return func(p *Packet) { p.NVLAN = n; copy(p.VLAN[:], ids) }
}
func hasMSS(v uint16) mod { return func(p *Packet) { p.Opts |= OptMSS; p.MSS = v } }
func hasWS(v uint8) mod   { return func(p *Packet) { p.Opts |= OptWScale; p.WScale = v } }
func hasSACKPerm() mod    { return func(p *Packet) { p.Opts |= OptSACKPerm } }
func hasMalformed() mod   { return func(p *Packet) { p.Opts |= OptMalformed } }
func hasTS(v, e uint32) mod {
	return func(p *Packet) { p.Opts |= OptTimestamp; p.TSval = v; p.TSecr = e }
}
func hasSACK(edges ...uint32) mod {
	return func(p *Packet) {
		p.Opts |= OptSACK
		p.NSACK = len(edges) / 2
		for i := 0; i+1 < len(edges); i += 2 {
			p.SACK[i/2] = [2]uint32{edges[i], edges[i+1]}
		}
	}
}
func ipLen(n int) mod { return func(p *Packet) { p.IPLen = n } }

// seg is the expected TCP part of every built segment.
func seg(p *Packet, flags uint8, hdrLen int, payload []byte) {
	p.SrcPort, p.DstPort, p.Seq, p.Ack = tSrcPort, tDstPort, tSeq, tAck
	p.Flags, p.Window, p.Checksum, p.Urgent = flags, tWindow, tCsum, tUrgent
	p.HdrLen, p.PayloadLen, p.Payload = hdrLen, len(payload), payload
}

// want4 is the packet Parse should report for ip4L + tcpL.
func want4(flags uint8, hdrLen int, payload []byte, mods ...mod) Packet {
	p := Packet{Family: 4, Src: v4Addr(v4Src), Dst: v4Addr(v4Dst), TTL: tTTL, IPID: tIPID,
		IPLen: 20 + hdrLen + len(payload)}
	seg(&p, flags, hdrLen, payload)
	for _, m := range mods {
		m(&p)
	}
	return p
}

// want6 is the packet Parse should report for ip6L (+ extLen bytes of
// extension headers) + tcpL.
func want6(flags uint8, extLen, hdrLen int, payload []byte, mods ...mod) Packet {
	p := Packet{Family: 6, Src: v6Addr(v6Src), Dst: v6Addr(v6Dst), TTL: tTTL,
		IPLen: 40 + extLen + hdrLen + len(payload)}
	seg(&p, flags, hdrLen, payload)
	for _, m := range mods {
		m(&p)
	}
	return p
}

var hello = []byte("hello, world")

// synOpts is a Linux SYN's option list: MSS, SACK-permitted, TS, NOP, WS.
func synOpts() []layers.TCPOption {
	return []layers.TCPOption{oMSS(1460), oSACKPerm(), oTS(1000, 0), oNOP(), oWS(7)}
}

func synMods() []mod {
	return []mod{hasMSS(1460), hasSACKPerm(), hasTS(1000, 0), hasWS(7)}
}

func tsOpts() []layers.TCPOption {
	return []layers.TCPOption{oNOP(), oNOP(), oTS(0x11223344, 0x55667788)}
}

// sll builds a Linux cooked v1 header (ARPHRD_ETHER, outgoing) for proto.
func sll(proto uint16) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], 4) // LINUX_SLL_OUTGOING
	binary.BigEndian.PutUint16(h[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6)
	copy(h[6:], mac1)
	binary.BigEndian.PutUint16(h[14:], proto)
	return h
}

// sll2 builds a Linux cooked v2 header (ARPHRD_ETHER, ifindex 2) for proto.
func sll2(proto uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], proto)
	binary.BigEndian.PutUint32(h[4:], 2)
	binary.BigEndian.PutUint16(h[8:], 1)
	h[10] = 0 // PACKET_HOST
	h[11] = 6
	copy(h[12:], mac1)
	return h
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// parseCases is the table: built frames and the captured ones.
func parseCases(t testing.TB) []parseCase {
	ack := uint8(FlagACK)
	pa := uint8(FlagPSH | FlagACK)
	syn := uint8(FlagSYN)

	v4seg := func(flags uint8, payload []byte, opts ...layers.TCPOption) []byte {
		return serialize(t, ip4L(layers.IPProtocolTCP), tcpL(flags, opts...), gopacket.Payload(payload))
	}
	v6seg := func(flags uint8, payload []byte, opts ...layers.TCPOption) []byte {
		return serialize(t, ip6L(layers.IPProtocolTCP), tcpL(flags, opts...), gopacket.Payload(payload))
	}
	eth4 := func(flags uint8, payload []byte, opts ...layers.TCPOption) []byte {
		return serialize(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpL(flags, opts...), gopacket.Payload(payload))
	}

	hbh := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{
		OptionType: 5, OptionLength: 2, ActualLength: 4, OptionData: []byte{0, 0}}, // router alert
		{OptionType: 1, OptionLength: 0, ActualLength: 2}}} // PadN to 8 bytes
	hbh.NextHeader = layers.IPProtocolIPv6Destination
	dst := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{
		OptionType: 0x1e, OptionLength: 4, ActualLength: 6, OptionData: []byte{1, 2, 3, 4}}}}
	dst.NextHeader = layers.IPProtocolIPv6Fragment
	frag := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, Identification: 0xdeadbeef}
	v6ext := serialize(t, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolIPv6HopByHop), hbh, dst, frag,
		tcpL(pa, tsOpts()...), gopacket.Payload(hello))

	rt := &layers.IPv6Routing{RoutingType: 4, SegmentsLeft: 0, Reserved: make([]byte, 4), Data: make([]byte, 16)}
	rt.NextHeader = layers.IPProtocolTCP
	v6rt := serialize(t, ip6L(layers.IPProtocolIPv6Routing), rt, tcpL(ack), gopacket.Payload(hello))

	v6frag := func(off uint16, more bool) []byte {
		f := &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, FragmentOffset: off, MoreFragments: more, Identification: 7}
		return serialize(t, ip6L(layers.IPProtocolIPv6Fragment), f, tcpL(ack), gopacket.Payload(hello))
	}

	// n destination-options headers of 8 bytes each, then TCP.
	v6dests := func(n int) []byte {
		ls := []gopacket.SerializableLayer{ip6L(layers.IPProtocolIPv6Destination)}
		for i := 0; i < n; i++ {
			d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{
				OptionType: 1, OptionLength: 4, ActualLength: 6, OptionData: make([]byte, 4)}}}
			d.NextHeader = layers.IPProtocolIPv6Destination
			if i == n-1 {
				d.NextHeader = layers.IPProtocolTCP
			}
			ls = append(ls, d)
		}
		ls = append(ls, tcpL(ack))
		return serialize(t, ls...)
	}

	// AH with 12 bytes of ICV (HMAC-SHA1-96): payload length (24/4)-2 = 4.
	ah := func(next byte) []byte {
		h := make([]byte, 24)
		h[0], h[1] = next, 4
		binary.BigEndian.PutUint32(h[4:], 0x100) // SPI
		binary.BigEndian.PutUint32(h[8:], 1)     // sequence
		return h
	}
	v6ah := func() []byte {
		tcp := serialize(t, tcpL(ack), gopacket.Payload(hello))
		return serialize(t, ip6L(layers.IPProtocolAH), gopacket.Payload(cat(ah(6), tcp)))
	}()
	v4ah := func() []byte {
		tcp := serialize(t, tcpL(ack), gopacket.Payload(hello))
		return serialize(t, ip4L(layers.IPProtocolAH), gopacket.Payload(cat(ah(6), tcp)))
	}()

	v4opts := func() []byte {
		ip := ip4L(layers.IPProtocolTCP)
		ip.Options = []layers.IPv4Option{
			{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}, // router alert
			{OptionType: 0x44, OptionLength: 12, OptionData: []byte{5, 0, 0, 0, 0, 1, 0, 0, 0, 2}},
		}
		return serialize(t, ip, tcpL(ack), gopacket.Payload(hello))
	}()
	v4frag := func(off uint16, mf bool) []byte {
		ip := ip4L(layers.IPProtocolTCP)
		ip.Flags, ip.FragOffset = 0, off
		if mf {
			ip.Flags = layers.IPv4MoreFragments
		}
		return serialize(t, ip, tcpL(ack), gopacket.Payload(hello))
	}

	// TSO: the IP total length is 0 in a captured outgoing packet.
	tso := v4seg(ack, bytes.Repeat([]byte{'x'}, 3000))
	tso[2], tso[3] = 0, 0

	// Jumbogram-style IPv6 payload length 0.
	v6zero := v6seg(ack, hello)
	v6zero[4], v6zero[5] = 0, 0

	// A frame snapped at 74 bytes out of a 1514-byte segment.
	big := bytes.Repeat([]byte{'y'}, 1460-12)
	snapped := eth4(pa, big, tsOpts()...)[:74]

	// Options given byte for byte, then Ethernet/IPv4/TCP around them.
	withOpts := func(flags uint8, raw []byte) []byte {
		f := eth4(flags, hello, rawOpts(raw)...)
		return patchOpts(f, 34, raw)
	}

	nullHdr := func(af uint32, le bool) []byte {
		h := make([]byte, 4)
		if le {
			binary.LittleEndian.PutUint32(h, af)
		} else {
			binary.BigEndian.PutUint32(h, af)
		}
		return h
	}

	arp := serialize(t, ethL(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet,
		Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
		SourceHwAddress: mac1, SourceProtAddress: v4Src, DstHwAddress: mac2, DstProtAddress: v4Dst})
	udp := serialize(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 53, DstPort: 5353}, gopacket.Payload(hello))

	cases := []parseCase{
		// Link layers.
		{name: "eth/v4/syn", link: LinkEthernet, frame: eth4(syn, nil, synOpts()...),
			pkt: want4(syn, 40, nil, synMods()...)},
		{name: "eth/v4/data-ts", link: LinkEthernet, frame: eth4(pa, hello, tsOpts()...),
			pkt: want4(pa, 32, hello, hasTS(0x11223344, 0x55667788))},
		{name: "eth/v4/padded", link: LinkEthernet, frame: eth4(FlagRST|FlagACK, nil),
			pkt: want4(FlagRST|FlagACK, 20, nil)},
		{name: "eth/v4/all-flags", link: LinkEthernet, frame: eth4(0xff, hello),
			pkt: want4(0xff, 20, hello)},
		{name: "eth/dot1q", link: LinkEthernet,
			frame: serialize(t, ethL(layers.EthernetTypeDot1Q), dot1q(100, layers.EthernetTypeIPv4),
				ip4L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello)),
			pkt: want4(ack, 20, hello, vlans(1, 100))},
		{name: "eth/dot1q-pcp-dei", link: LinkEthernet,
			frame: serialize(t, ethL(layers.EthernetTypeDot1Q), &layers.Dot1Q{Priority: 7, DropEligible: true, VLANIdentifier: 0xfff,
				Type: layers.EthernetTypeIPv4}, ip4L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello)),
			pkt: want4(ack, 20, hello, vlans(1, 0xfff))},
		{name: "eth/qinq-8021ad", link: LinkEthernet,
			frame: serialize(t, ethL(layers.EthernetTypeQinQ), dot1q(10, layers.EthernetTypeDot1Q),
				dot1q(4094, layers.EthernetTypeIPv6), ip6L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello)),
			pkt: want6(ack, 0, 20, hello, vlans(2, 10, 4094))},
		{name: "eth/three-tags-9100", link: LinkEthernet,
			frame: serialize(t, ethL(0x9100), dot1q(1, layers.EthernetTypeQinQ), dot1q(2, layers.EthernetTypeDot1Q),
				dot1q(3, layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello)),
			pkt: want4(ack, 20, hello, vlans(3, 1, 2))},
		{name: "sll/v4", link: LinkLinuxSLL, frame: cat(sll(0x0800), v4seg(syn, nil, synOpts()...)),
			pkt: want4(syn, 40, nil, synMods()...)},
		{name: "sll/dot1q/v6", link: LinkLinuxSLL,
			frame: cat(sll(0x8100), []byte{0x00, 0x2a, 0x86, 0xdd}, v6seg(pa, hello, tsOpts()...)),
			pkt:   want6(pa, 0, 32, hello, vlans(1, 42), hasTS(0x11223344, 0x55667788))},
		{name: "sll/frad", link: LinkLinuxSLL, frame: func() []byte {
			h := sll(0x0800)
			h[2], h[3] = 0x03, 0x02 // ARPHRD_FRAD: protocol field is not an EtherType
			return cat(h, v4seg(ack, nil))
		}(), want: NotIP},
		{name: "sll2/v6", link: LinkLinuxSLL2, frame: cat(sll2(0x86dd), v6seg(syn, nil, synOpts()...)),
			pkt: want6(syn, 0, 40, nil, synMods()...)},
		{name: "sll2/dot1q/v4", link: LinkLinuxSLL2,
			frame: cat(sll2(0x8100), []byte{0x20, 0x07, 0x08, 0x00}, v4seg(ack, hello)),
			pkt:   want4(ack, 20, hello, vlans(1, 7))},
		{name: "sll2/addr-len-48", link: LinkLinuxSLL2, frame: func() []byte { // fuzz: gopacket rejects it
			h := sll2(0x0800)
			h[11] = 48
			return cat(h, v4seg(ack, hello))
		}(), pkt: want4(ack, 20, hello)},
		{name: "sll2/arp", link: LinkLinuxSLL2, frame: cat(sll2(0x0806), make([]byte, 28)), want: NotIP},
		{name: "raw/v4", link: LinkRaw, frame: v4seg(ack, hello), pkt: want4(ack, 20, hello)},
		{name: "raw/v6", link: LinkRaw, frame: v6seg(ack, hello), pkt: want6(ack, 0, 20, hello)},
		{name: "raw/version5", link: LinkRaw, frame: append([]byte{0x50}, v4seg(ack, nil)[1:]...), want: BadIPVersion},
		{name: "raw/empty", link: LinkRaw, frame: nil, want: TruncatedIP},
		{name: "ipv4/v4", link: LinkIPv4, frame: v4seg(ack, hello), pkt: want4(ack, 20, hello)},
		{name: "ipv4/carries-v6", link: LinkIPv4, frame: v6seg(ack, hello), want: BadIPVersion},
		{name: "ipv6/v6", link: LinkIPv6, frame: v6seg(ack, hello), pkt: want6(ack, 0, 20, hello)},
		{name: "ipv6/carries-v4", link: LinkIPv6, frame: cat(v4seg(ack, hello), make([]byte, 20)), want: BadIPVersion},
		{name: "null/le-inet", link: LinkNull, frame: cat(nullHdr(2, true), v4seg(ack, hello)), pkt: want4(ack, 20, hello)},
		{name: "null/be-inet", link: LinkNull, frame: cat(nullHdr(2, false), v4seg(ack, hello)), pkt: want4(ack, 20, hello)},
		{name: "null/le-inet6-24", link: LinkNull, frame: cat(nullHdr(24, true), v6seg(ack, hello)), pkt: want6(ack, 0, 20, hello)},
		{name: "null/be-inet6-28", link: LinkNull, frame: cat(nullHdr(28, false), v6seg(ack, hello)), pkt: want6(ack, 0, 20, hello)},
		{name: "null/le-inet6-30", link: LinkNull, frame: cat(nullHdr(30, true), v6seg(ack, hello)), pkt: want6(ack, 0, 20, hello)},
		{name: "null/linux-inet6-10", link: LinkNull, frame: cat(nullHdr(10, true), v6seg(ack, hello)), want: NotIP},
		{name: "null/inet-but-v6", link: LinkNull, frame: cat(nullHdr(2, true), v6seg(ack, hello)), want: BadIPVersion},
		{name: "loop/be-inet", link: LinkLoop, frame: cat(nullHdr(2, false), v4seg(ack, hello)), pkt: want4(ack, 20, hello)},
		{name: "loop/be-inet6", link: LinkLoop, frame: cat(nullHdr(24, false), v6seg(ack, hello)), pkt: want6(ack, 0, 20, hello)},
		{name: "loop/le-is-not-loop", link: LinkLoop, frame: cat(nullHdr(2, true), v4seg(ack, hello)), want: NotIP},
		{name: "link/unknown", link: 105, frame: eth4(ack, nil), want: BadLinkType},
		{name: "eth/short", link: LinkEthernet, frame: make([]byte, 13), want: TruncatedL2},
		{name: "eth/arp", link: LinkEthernet, frame: arp, want: NotIP},
		{name: "eth/ethertype-ffff", link: LinkEthernet, // fuzz: gopacket reads it as IPv4
			frame: cat(mac2, mac1, []byte{0xff, 0xff}, v4seg(ack, hello)), want: NotIP},
		{name: "eth/802.3-llc", link: LinkEthernet, frame: cat(mac2, mac1, []byte{0, 46}, make([]byte, 46)), want: NotIP},

		// IPv4.
		{name: "v4/options", link: LinkIPv4, frame: v4opts, pkt: want4(ack, 20, hello, ipLen(36+20+len(hello)))},
		{name: "v4/first-fragment", link: LinkIPv4, frame: v4frag(0, true), pkt: want4(ack, 20, hello)},
		{name: "v4/non-first-fragment", link: LinkIPv4, frame: v4frag(185, true), want: IPFragment,
			pkt: Packet{Family: 4, Src: v4Addr(v4Src), Dst: v4Addr(v4Dst), TTL: tTTL, IPID: tIPID, IPLen: 20 + 20 + len(hello)}},
		{name: "v4/last-fragment", link: LinkIPv4, frame: v4frag(185, false), want: IPFragment,
			pkt: Packet{Family: 4, Src: v4Addr(v4Src), Dst: v4Addr(v4Dst), TTL: tTTL, IPID: tIPID, IPLen: 20 + 20 + len(hello)}},
		{name: "v4/tso-zero-length", link: LinkIPv4, frame: tso, pkt: want4(ack, 20, bytes.Repeat([]byte{'x'}, 3000)),
			lenFromCapture: true},
		{name: "v4/snapped", link: LinkEthernet, frame: snapped,
			pkt: func() Packet {
				p := want4(pa, 32, big[:74-14-20-32], hasTS(0x11223344, 0x55667788))
				p.IPLen, p.PayloadLen = 20+32+len(big), len(big)
				return p
			}()},
		{name: "v4/ah", link: LinkIPv4, frame: v4ah, pkt: want4(ack, 20, hello, ipLen(20+24+20+len(hello)))},
		{name: "v4/udp", link: LinkEthernet, frame: udp, want: NotTCP,
			pkt: Packet{Family: 4, Src: v4Addr(v4Src), Dst: v4Addr(v4Dst), TTL: tTTL, IPID: tIPID, IPLen: 20 + 8 + len(hello)}},
		{name: "v4/ihl-4", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, nil); f[0] = 0x44; return f }(), want: BadIPHeader},
		{name: "v4/total-below-ihl", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, nil); f[3] = 19; return f }(), want: BadIPHeader},
		{name: "v4/ihl-past-capture", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, nil)[:23]; f[0] = 0x46; return f }(), want: TruncatedIP},
		{name: "v4/short", link: LinkIPv4, frame: v4seg(ack, nil)[:19], want: TruncatedIP},
		{name: "v4/ah-past-end", link: LinkIPv4, frame: func() []byte {
			f := append([]byte(nil), v4ah...)
			f[21] = 200 // AH length far past the packet
			return f
		}(), want: BadIPHeader},

		// IPv6.
		{name: "v6/hbh-dest-frag", link: LinkEthernet, frame: v6ext,
			pkt: want6(pa, 8+8+8, 32, hello, hasTS(0x11223344, 0x55667788))},
		{name: "v6/routing", link: LinkIPv6, frame: v6rt, pkt: want6(ack, 24, 20, hello)},
		{name: "v6/first-fragment", link: LinkIPv6, frame: v6frag(0, true), pkt: want6(ack, 8, 20, hello)},
		{name: "v6/non-first-fragment", link: LinkIPv6, frame: v6frag(1, true), want: IPFragment,
			pkt: Packet{Family: 6, Src: v6Addr(v6Src), Dst: v6Addr(v6Dst), TTL: tTTL, IPLen: 40 + 8 + 20 + len(hello)}},
		{name: "v6/ah", link: LinkIPv6, frame: v6ah, pkt: want6(ack, 24, 20, hello)},
		{name: "v6/8-ext-headers", link: LinkIPv6, frame: v6dests(8), pkt: want6(ack, 64, 20, nil)},
		{name: "v6/9-ext-headers", link: LinkIPv6, frame: v6dests(9), want: BadIPv6ExtHeader},
		{name: "v6/ext-past-payload", link: LinkIPv6, frame: func() []byte {
			f := v6dests(1)
			f[41] = 10 // 88 bytes claimed in a 28-byte payload
			return f
		}(), want: BadIPv6ExtHeader},
		{name: "v6/ext-truncated", link: LinkIPv6, frame: v6dests(2)[:50], want: TruncatedIP},
		{name: "v6/esp", link: LinkIPv6, frame: serialize(t, ip6L(layers.IPProtocolESP), gopacket.Payload(make([]byte, 32))),
			want: NotTCP, pkt: Packet{Family: 6, Src: v6Addr(v6Src), Dst: v6Addr(v6Dst), TTL: tTTL, IPLen: 72}},
		{name: "v6/no-next-header", link: LinkIPv6, frame: serialize(t, ip6L(layers.IPProtocolNoNextHeader)),
			want: NotTCP, pkt: Packet{Family: 6, Src: v6Addr(v6Src), Dst: v6Addr(v6Dst), TTL: tTTL, IPLen: 40}},
		{name: "v6/zero-payload-length", link: LinkIPv6, frame: v6zero, pkt: want6(ack, 0, 20, hello),
			lenFromCapture: true},
		{name: "v6/short", link: LinkIPv6, frame: v6seg(ack, nil)[:39], want: TruncatedIP},

		// TCP header and options.
		{name: "tcp/sack-1", link: LinkEthernet, frame: eth4(ack, nil, oNOP(), oNOP(), oSACK(1, 2)),
			pkt: want4(ack, 32, nil, hasSACK(1, 2))},
		{name: "tcp/sack-2", link: LinkEthernet, frame: eth4(ack, nil, oNOP(), oNOP(), oSACK(1, 2, 3, 4)),
			pkt: want4(ack, 40, nil, hasSACK(1, 2, 3, 4))},
		{name: "tcp/sack-3-ts", link: LinkEthernet, frame: eth4(ack, nil, oNOP(), oNOP(), oTS(9, 8), oNOP(), oNOP(), oSACK(1, 2, 3, 4, 5, 6)),
			pkt: want4(ack, 60, nil, hasTS(9, 8), hasSACK(1, 2, 3, 4, 5, 6))},
		{name: "tcp/sack-4", link: LinkEthernet, frame: eth4(ack, nil, oNOP(), oNOP(), oSACK(1, 2, 3, 4, 5, 6, 0xfffffff0, 0x10)),
			pkt: want4(ack, 56, nil, hasSACK(1, 2, 3, 4, 5, 6, 0xfffffff0, 0x10))},
		{name: "tcp/sack-bad-length", link: LinkEthernet, frame: withOpts(ack, []byte{5, 6, 0, 0, 0, 1, 1, 1}),
			pkt: want4(ack, 28, hello)},
		{name: "tcp/unknown-options", link: LinkEthernet,
			frame: eth4(syn, nil, oRaw(19, make([]byte, 16)...), oRaw(254, 0xf9, 0x89, 1, 2), oMSS(536)),
			pkt:   want4(syn, 20+18+6+4, nil, hasMSS(536))},
		{name: "tcp/eol-stops", link: LinkEthernet, frame: withOpts(syn, []byte{2, 4, 5, 0xb4, 0, 3, 3, 7}),
			pkt: want4(syn, 28, hello, hasMSS(1460))},
		{name: "tcp/len-0", link: LinkEthernet, frame: withOpts(syn, []byte{2, 4, 5, 0xb4, 30, 0, 3, 3, 7, 1, 1, 1}),
			pkt: want4(syn, 32, hello, hasMSS(1460), hasMalformed())},
		{name: "tcp/len-1", link: LinkEthernet, frame: withOpts(syn, []byte{4, 1, 2, 4, 5, 0xb4, 1, 1}),
			pkt: want4(syn, 28, hello, hasMalformed())},
		{name: "tcp/past-header", link: LinkEthernet, frame: withOpts(syn, []byte{4, 2, 8, 10, 0, 0, 0, 1}),
			pkt: want4(syn, 28, hello, hasSACKPerm(), hasMalformed())},
		{name: "tcp/kind-without-length", link: LinkEthernet, frame: withOpts(syn, []byte{1, 1, 1, 2}),
			pkt: want4(syn, 24, hello, hasMalformed())},
		{name: "tcp/wrong-lengths-ignored", link: LinkEthernet,
			frame: withOpts(syn, []byte{2, 3, 5, 3, 4, 0, 0, 4, 3, 0, 8, 6, 0, 0, 0, 1, 3, 3, 14, 1}),
			pkt:   want4(syn, 40, hello, hasWS(14))},
		{name: "tcp/last-wins", link: LinkEthernet, frame: eth4(syn, nil, oMSS(1000), oMSS(1400), oWS(2), oWS(9), oNOP(), oNOP(), oTS(1, 2), oNOP(), oNOP(), oTS(3, 4)),
			pkt: want4(syn, 60, nil, hasMSS(1400), hasWS(9), hasTS(3, 4))},
		{name: "tcp/doff-4", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, hello); f[32] = 0x40; return f }(), want: BadTCPHeader},
		{name: "tcp/doff-past-ip", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, nil); f[32] = 0x60; return cat(f, make([]byte, 8)) }(), want: BadTCPHeader},
		{name: "tcp/ip-too-short", link: LinkIPv4, frame: func() []byte { f := v4seg(ack, nil); f[3] = 30; return f }(), want: BadTCPHeader},
		{name: "tcp/truncated", link: LinkIPv4, frame: v4seg(ack, hello)[:39], want: TruncatedTCP},
		{name: "tcp/options-truncated", link: LinkIPv4, frame: v4seg(syn, nil, synOpts()...)[:50], want: TruncatedTCP},
	}
	return append(cases, kernelCases()...)
}

func TestParse(t *testing.T) {
	for _, c := range parseCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			// Stale state from an earlier packet must not leak through.
			p.Opts, p.MSS, p.NVLAN, p.PayloadLen = 0xff, 9, 3, 99
			if got := Parse(c.frame, c.link, &p); got != c.want {
				t.Fatalf("Parse = %v, want %v", got, c.want)
			}
			if c.want != OK && c.want != NotTCP && c.want != IPFragment {
				return
			}
			if d := diffPacket(&p, &c.pkt); d != "" {
				t.Errorf("packet differs:\n%s", d)
			}
			if len(p.Payload) > 0 {
				// A view into the frame, not a copy, and capped.
				if !inside(p.Payload, c.frame) {
					t.Errorf("Payload is not a view into the frame")
				}
				if cap(p.Payload) != len(p.Payload) {
					t.Errorf("cap(Payload) = %d, want %d", cap(p.Payload), len(p.Payload))
				}
			}
		})
	}
}

// inside reports whether sub's bytes lie within b's.
func inside(sub, b []byte) bool {
	if len(sub) == 0 {
		return false
	}
	for i := range b {
		if &b[i] == &sub[0] {
			return i+len(sub) <= len(b)
		}
	}
	return false
}

// TestTruncation cuts every decodable frame at every length: Parse must not
// panic, must reject a cut inside the headers and, for a cut inside the
// payload, report the same packet with only the captured payload shorter.
func TestTruncation(t *testing.T) {
	for _, c := range parseCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var full Packet
			fr := Parse(c.frame, c.link, &full)
			hdrEnd := len(c.frame)
			if fr == OK {
				hdrEnd = payloadOffset(c.frame, &full)
			}
			for n := 0; n < len(c.frame); n++ {
				var p Packet
				r := Parse(c.frame[:n:n], c.link, &p)
				if fr != OK {
					continue // only "no panic" for frames that are not a segment
				}
				if n < hdrEnd {
					if r == OK {
						t.Fatalf("frame[:%d] (headers end at %d) = OK", n, hdrEnd)
					}
					continue
				}
				if r != OK {
					t.Fatalf("frame[:%d] (headers end at %d) = %v, want OK", n, hdrEnd, r)
				}
				if c.lenFromCapture {
					continue
				}
				want := full
				want.Payload = full.Payload[:min(len(full.Payload), n-hdrEnd)]
				if d := diffPacket(&p, &want); d != "" {
					t.Fatalf("frame[:%d] differs:\n%s", n, d)
				}
			}
		})
	}
}

// payloadOffset finds where the payload of p starts in frame: at the view
// if there is one, else HdrLen after the TCP header, found by its ports,
// seq and ack.
func payloadOffset(frame []byte, p *Packet) int {
	if len(p.Payload) > 0 {
		for i := range frame {
			if &frame[i] == &p.Payload[0] {
				return i
			}
		}
	}
	var h [12]byte
	binary.BigEndian.PutUint16(h[0:], p.SrcPort)
	binary.BigEndian.PutUint16(h[2:], p.DstPort)
	binary.BigEndian.PutUint32(h[4:], p.Seq)
	binary.BigEndian.PutUint32(h[8:], p.Ack)
	return bytes.Index(frame, h[:]) + p.HdrLen
}

var sinkReason Reason

func TestNoAllocs(t *testing.T) {
	var frames [][]byte
	var links []int
	for _, c := range parseCases(t) {
		frames = append(frames, c.frame)
		links = append(links, c.link)
	}
	var p Packet
	allocs := testing.AllocsPerRun(100, func() {
		for i, f := range frames {
			sinkReason = Parse(f, links[i], &p)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates: %v per run of %d frames", allocs, len(frames))
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Reason(%d).String() = %q: missing or repeated", r, s)
		}
		seen[s] = true
	}
	if got := NumReasons.String(); got != "unknown" {
		t.Errorf("NumReasons.String() = %q", got)
	}
}

func TestAddr(t *testing.T) {
	var p Packet
	if Parse(kernV6SYN, LinkEthernet, &p) != OK || p.SrcAddr().String() != "::1" || p.DstAddr().String() != "::1" {
		t.Errorf("v6: %v %v", p.SrcAddr(), p.DstAddr())
	}
	if Parse(kernV4SYN, LinkEthernet, &p) != OK || p.SrcAddr().String() != "127.0.0.1" || !p.DstAddr().Is4() {
		t.Errorf("v4: %v %v", p.SrcAddr(), p.DstAddr())
	}
	if Parse(nil, LinkEthernet, &p) == OK || p.SrcAddr().IsValid() {
		t.Errorf("empty: %v", p.SrcAddr())
	}
}

// TestOuterVLAN: a tag taken out of the frame becomes the outermost, the
// ones Parse read move in, and only MaxVLAN ids are kept.
func TestOuterVLAN(t *testing.T) {
	var p Packet
	p.OuterVLAN(0xe000 | 7) // priority bits dropped
	if p.NVLAN != 1 || p.VLAN != [MaxVLAN]uint16{7, 0} {
		t.Fatalf("one tag: %d %v", p.NVLAN, p.VLAN)
	}
	p = Packet{NVLAN: 2, VLAN: [MaxVLAN]uint16{100, 200}}
	p.OuterVLAN(300)
	if p.NVLAN != 3 || p.VLAN != [MaxVLAN]uint16{300, 100} {
		t.Fatalf("under two tags: %d %v", p.NVLAN, p.VLAN)
	}
}
