package decode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// FuzzParse checks Parse against gopacket/layers as the oracle. An input is
// a link type and a frame. Parse must not panic, modify the frame or
// disagree with itself; whenever both decoders find a TCP segment every
// field must agree; and when only one of them does, the input must match
// one of the known differences in oracleExceptions.
func FuzzParse(f *testing.F) {
	for _, c := range parseCases(f) {
		f.Add(uint16(c.link), c.frame)
	}
	for _, c := range exceptionCases(f) {
		f.Add(uint16(c.link), c.frame)
	}
	f.Fuzz(func(t *testing.T, link uint16, frame []byte) {
		checkAgainstOracle(t, fuzzLink(link), frame)
	})
}

// fuzzLinks are the link types Parse decodes. A fuzz input's link number is
// used as is when it is one of them, so corpus files read naturally, and
// otherwise selects one, so that no mutation is wasted on BadLinkType.
var fuzzLinks = [...]int{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkIPv4, LinkIPv6, LinkNull, LinkLoop}

func fuzzLink(n uint16) int {
	for _, l := range fuzzLinks {
		if int(n) == l {
			return l
		}
	}
	return fuzzLinks[int(n)%len(fuzzLinks)]
}

// oracle is what gopacket made of a frame.
type oracle struct {
	pkt      gopacket.Packet
	ip4      *layers.IPv4 // the first IP layer
	ip6      *layers.IPv6
	vlans    []*layers.Dot1Q
	nExt     int // IPv6 extension headers and AH layers
	tcp      *layers.TCP
	frag     bool                 // stopped at a gopacket.Fragment
	foreign  []gopacket.LayerType // layers Parse does not decode, before the TCP layer
	lastGood gopacket.LayerType   // the layer before the DecodeFailure, if any
	err      bool                 // a layer failed to decode
	found    bool                 // a TCP segment, decoded without error
	samePath bool                 // found, on a path Parse decodes
}

func runOracle(link int, frame []byte) *oracle {
	var dec gopacket.Decoder
	switch link {
	case LinkEthernet:
		dec = layers.LayerTypeEthernet
	case LinkLinuxSLL:
		dec = layers.LayerTypeLinuxSLL
	case LinkLinuxSLL2:
		dec = layers.LayerTypeLinuxSLL2
	case LinkRaw:
		dec = layers.LinkTypeRaw
	case LinkIPv4:
		dec = layers.LayerTypeIPv4
	case LinkIPv6:
		dec = layers.LayerTypeIPv6
	case LinkNull, LinkLoop:
		dec = layers.LayerTypeLoopback
	default:
		panic(fmt.Sprintf("no oracle for link type %d", link))
	}
	o := &oracle{pkt: gopacket.NewPacket(frame, dec, gopacket.DecodeOptions{NoCopy: true})}
	nIP := 0
	for i, l := range o.pkt.Layers() {
		switch l := l.(type) {
		case *layers.Ethernet, *layers.LinuxSLL, *layers.LinuxSLL2, *layers.Loopback:
			if i != 0 { // a link layer inside: a tunnel, or SLL2's IPGRE guess
				o.foreign = append(o.foreign, l.LayerType())
			}
		case *layers.Dot1Q:
			o.vlans = append(o.vlans, l)
		case *layers.IPv4:
			if nIP++; nIP == 1 {
				o.ip4 = l
			} else {
				o.foreign = append(o.foreign, l.LayerType())
			}
		case *layers.IPv6:
			if nIP++; nIP == 1 {
				o.ip6 = l
			} else {
				o.foreign = append(o.foreign, l.LayerType())
			}
		case *layers.IPv6HopByHop, *layers.IPv6Destination, *layers.IPv6Routing, *layers.IPv6Fragment, *layers.IPSecAH:
			o.nExt++
		case *layers.TCP:
			if o.tcp == nil {
				o.tcp = l
			}
		case *gopacket.Fragment:
			o.frag = true
		case *gopacket.DecodeFailure:
			if i > 0 {
				o.lastGood = o.pkt.Layers()[i-1].LayerType()
			}
		case *gopacket.Payload:
		default:
			if o.tcp == nil {
				o.foreign = append(o.foreign, l.LayerType())
			}
		}
	}
	o.err = o.pkt.ErrorLayer() != nil
	o.found = o.tcp != nil && !o.err
	o.samePath = o.found && nIP == 1 && len(o.foreign) == 0
	return o
}

// in is one fuzz input with both decodings.
type in struct {
	link  int
	frame []byte
	r     Reason
	p     *Packet
	o     *oracle
}

// ipOff is where Parse found the IP header (only meaningful when it did).
func (x *in) ipOff() int {
	switch x.link {
	case LinkEthernet:
		return ethHdrLen + vlanTagLen*x.p.NVLAN
	case LinkLinuxSLL:
		return sllHdrLen + vlanTagLen*x.p.NVLAN
	case LinkLinuxSLL2:
		return sll2HdrLen + vlanTagLen*x.p.NVLAN
	case LinkNull, LinkLoop:
		return nullHdrLen
	}
	return 0
}

// etherType is the last EtherType Parse read (after any VLAN tags), for
// the links that have one.
func (x *in) etherType() uint16 {
	off := x.ipOff() - 2
	switch {
	case x.link == LinkLinuxSLL2 && x.p.NVLAN == 0:
		off = 0
	case x.link != LinkEthernet && x.link != LinkLinuxSLL && x.link != LinkLinuxSLL2:
		return 0
	}
	if off+2 > len(x.frame) {
		return 0
	}
	return binary.BigEndian.Uint16(x.frame[off:])
}

// tcpOff is where Parse found the TCP header (only for a frame it decoded).
func (x *in) tcpOff() int {
	ipOff := x.ipOff()
	ip := x.frame[ipOff:]
	if x.p.Family == 4 {
		off, nh := int(ip[0]&0xf)*4, ip[9]
		for nh == protoAH {
			nh, off = ip[off], off+(int(ip[off+1])+2)*4
		}
		return ipOff + off
	}
	off := ipv6HdrLen
	for _, e := range x.v6Exts() {
		off += len(e.b)
	}
	return ipOff + off
}

// v6Ext is one IPv6 extension header: its protocol number and bytes.
type v6Ext struct {
	proto uint8
	b     []byte
}

// v6Exts lists the IPv6 extension headers Parse walked to reach TCP (only
// for a frame Parse decoded).
func (x *in) v6Exts() (exts []v6Ext) {
	ip := x.frame[x.ipOff():]
	nh, off := ip[6], ipv6HdrLen
	for nh != protoTCP {
		var n int
		switch nh {
		case protoAH:
			n = (int(ip[off+1]) + 2) * 4
		case protoFragment:
			n = 8
		default:
			n = (int(ip[off+1]) + 1) * 8
		}
		exts = append(exts, v6Ext{nh, ip[off : off+n]})
		nh, off = ip[off], off+n
	}
	return exts
}

// oracleExceptions are the known, justified differences between Parse
// and gopacket. Each applies to a disagreement on whether the frame holds a
// TCP segment (or, where said, on fields) and says why we differ.
var oracleExceptions = []struct {
	name    string
	applies func(x *in) bool
}{
	// gopacket stops at any fragment; a first fragment (offset 0, MF
	// set) still starts with the TCP header, and a sensor that skipped
	// it would miss the SYNs and RSTs of a path that fragments.
	{"first_fragment", func(x *in) bool { return x.r == OK && x.o.frag }},

	// gopacket rejects an IPv4 packet whose options are malformed. Parse
	// skips options unread: they cannot move the TCP header, and the
	// segment is evidence whatever the receiver made of it.
	{"ipv4_options_unchecked", func(x *in) bool {
		if x.r != OK || x.p.Family != 4 || x.o.lastGood != layers.LayerTypeIPv4 {
			return false
		}
		ip := x.frame[x.ipOff():]
		return badTLVs(ip[ipv4MinLen:int(ip[0]&0xf)*4], true)
	}},

	// gopacket rejects a hop-by-hop or destination options header with
	// a malformed option; Parse skips the header by its length only.
	{"ipv6_tlv_unchecked", func(x *in) bool {
		if x.r != OK || x.p.Family != 6 || !x.o.err {
			return false
		}
		for _, h := range x.v6Exts() {
			if (h.proto == protoHopByHop || h.proto == protoDestOpts) && badTLVs(h.b[2:], false) {
				return true
			}
		}
		return false
	}},

	// IPv6 payload length 0: gopacket accepts it only as a jumbogram
	// (with the hop-by-hop jumbo option, whose length it then uses);
	// Parse takes the captured length, as for IPv4 TSO. Applies to the
	// length fields too.
	{"ipv6_zero_length", func(x *in) bool {
		return x.r == OK && x.p.Family == 6 && binary.BigEndian.Uint16(x.frame[x.ipOff()+4:]) == 0
	}},

	// 0x9100 is the pre-802.1ad QinQ TPID that switches still send;
	// gopacket does not know it.
	{"vlan_9100", func(x *in) bool {
		if x.r != OK {
			return false
		}
		base := x.ipOff() - vlanTagLen*x.p.NVLAN - 2
		for i := 0; i < x.p.NVLAN; i++ {
			if binary.BigEndian.Uint16(x.frame[base+i*vlanTagLen:]) == etQinQ {
				return true
			}
		}
		return false
	}},

	// gopacket rejects an SLL or SLL2 header whose address length is
	// above 8; Parse never reads the address.
	{"sll_addr_len", func(x *in) bool {
		return x.r == OK && (x.link == LinkLinuxSLL && binary.BigEndian.Uint16(x.frame[4:6]) > 8 ||
			x.link == LinkLinuxSLL2 && x.frame[11] > 8)
	}},

	// For ARPHRD_FRAD and ARPHRD_IEEE80211_RADIOTAP the SLL protocol
	// field is not an EtherType (libpcap LINKTYPE_LINUX_SLL); gopacket
	// decodes it as one for SLL v1.
	{"sll_hatype", func(x *in) bool {
		return x.r == NotIP && x.link == LinkLinuxSLL && !sllEtherType(binary.BigEndian.Uint16(x.frame[2:4]))
	}},

	// For ARPHRD_IPGRE the SLL2 protocol field is the GRE protocol type,
	// an EtherType (libpcap LINKTYPE_LINUX_SLL2); gopacket guesses an
	// Ethernet header instead.
	{"sll2_ipgre", func(x *in) bool {
		return x.link == LinkLinuxSLL2 && len(x.frame) >= sll2HdrLen && binary.BigEndian.Uint16(x.frame[8:10]) == 778
	}},

	// NULL/LOOP: Parse takes the documented AF values (2; 24, 28, 30)
	// in either byte order for NULL and network order for LOOP; gopacket
	// guesses the order for both and also takes Linux's AF_INET6 (10),
	// which no LINKTYPE_NULL writer uses.
	{"null_loop_family", func(x *in) bool {
		return x.r == NotIP && (x.link == LinkNull || x.link == LinkLoop)
	}},

	// gopacket decodes by the link's or EtherType's word without looking
	// at the version nibble; the kernel drops such packets (ip_rcv,
	// ipv6_rcv), so Parse does.
	{"ip_version_mismatch", func(x *in) bool {
		return x.r == BadIPVersion &&
			(x.o.ip4 != nil && x.o.ip4.Version != 4 || x.o.ip6 != nil && x.o.ip6.Version != 6)
	}},

	// Parse walks at most maxExtHeaders extension headers; gopacket has
	// no bound.
	{"ipv6_ext_chain_limit", func(x *in) bool {
		return x.r == BadIPv6ExtHeader && x.o.nExt > maxExtHeaders
	}},

	// gopacket decodes the reserved EtherType 0xffff as IPv4 (its own
	// "raw IP" convention); no link carries IP that way.
	{"ethertype_ffff", func(x *in) bool {
		return x.r == NotIP && x.etherType() == 0xffff
	}},

	// gopacket reached TCP through a layer Parse does not decode (LLC/
	// SNAP, MPLS, PPPoE, GRE, IP in IP, ...): the sensor watches the
	// outer TCP only.
	{"foreign_path", func(x *in) bool {
		return (x.r == NotIP || x.r == NotTCP) && len(x.o.foreign) > 0
	}},
}

// disagree reports whether Parse and gopacket differ on whether the frame
// holds a TCP segment, or found one by different paths.
func (x *in) disagree() bool {
	return (x.r == OK) != x.o.found || x.r == OK && !x.o.samePath
}

// exception returns the name of the first exception that explains the
// input, or "".
func exception(x *in) string {
	for _, e := range oracleExceptions {
		if e.applies(x) {
			return e.name
		}
	}
	return ""
}

// badTLVs reports whether options in TLV form (IPv4 options, or the
// options of an IPv6 hop-by-hop/destination header) are malformed by
// gopacket's rules, which Parse does not apply.
func badTLVs(b []byte, v4 bool) bool {
	for len(b) > 0 {
		if b[0] == 0 { // IPv4 EOL ends the list; IPv6 Pad1 is one byte
			if v4 {
				return false
			}
			b = b[1:]
			continue
		}
		if v4 && b[0] == 1 {
			b = b[1:]
			continue
		}
		if len(b) < 2 {
			return true
		}
		n := int(b[1])
		if v4 {
			if n < 2 || n > len(b) {
				return true
			}
		} else {
			if n += 2; n > len(b) {
				return true
			}
		}
		b = b[n:]
	}
	return false
}

func checkAgainstOracle(t *testing.T, link int, frame []byte) {
	t.Helper()
	orig := bytes.Clone(frame)
	var p Packet
	r := Parse(frame, link, &p)
	if !bytes.Equal(frame, orig) {
		t.Fatalf("Parse modified the frame")
	}
	var again Packet
	if r2 := Parse(frame, link, &again); r2 != r || diffPacket(&again, &p) != "" {
		t.Fatalf("Parse is not deterministic: %v then %v", r, r2)
	}
	checkInvariants(t, frame, r, &p)
	if r == OK {
		// A replay deals frames out by Endpoints: it must see the
		// flow Parse sees.
		var e Packet
		if re := Endpoints(frame, link, &e); re != OK || e.Family != p.Family || e.Src != p.Src || e.Dst != p.Dst ||
			e.SrcPort != p.SrcPort || e.DstPort != p.DstPort || e.NVLAN != p.NVLAN || e.VLAN != p.VLAN {
			t.Fatalf("Endpoints = %v, %+v; Parse found %+v", re, e, p)
		}
	}
	x := &in{link: link, frame: frame, r: r, p: &p, o: runOracle(link, frame)}
	if r == OK && p.HdrLen > tcpMinLen {
		// The fast paths for Linux's layouts must agree with the walk.
		off := x.tcpOff()
		opts := frame[off+tcpMinLen : off+p.HdrLen]
		var slow Packet
		slow.parseOptions(opts)
		if slow.Opts != p.Opts || slow.MSS != p.MSS || slow.WScale != p.WScale || slow.TSval != p.TSval ||
			slow.TSecr != p.TSecr || slow.NSACK != p.NSACK || slow.SACK != p.SACK {
			t.Fatalf("options fast path %+v, walk %+v", p, slow)
		}
	}

	if x.disagree() {
		if exception(x) == "" {
			t.Fatalf("Parse = %v, gopacket found TCP = %v (foreign %v, err %v), no known difference explains it\n%s",
				r, x.o.found, x.o.foreign, x.o.pkt.ErrorLayer(), x.o.pkt.Dump())
		}
		return
	}
	if r != OK {
		return
	}
	if d := compareFields(x); d != "" {
		t.Fatalf("Parse and gopacket disagree:\n%s\n%s", d, x.o.pkt.Dump())
	}
}

// checkInvariants holds for every result of Parse.
func checkInvariants(t *testing.T, frame []byte, r Reason, p *Packet) {
	t.Helper()
	if r >= NumReasons {
		t.Fatalf("reason %d out of range", r)
	}
	if r != OK {
		return
	}
	switch {
	case p.Family != 4 && p.Family != 6:
		t.Fatalf("Family = %d", p.Family)
	case p.HdrLen < 20 || p.HdrLen > 60 || p.HdrLen%4 != 0:
		t.Fatalf("HdrLen = %d", p.HdrLen)
	case p.PayloadLen < len(p.Payload):
		t.Fatalf("PayloadLen %d < captured payload %d", p.PayloadLen, len(p.Payload))
	case p.NSACK < 0 || p.NSACK > MaxSACK || (p.NSACK > 0) != (p.Opts&OptSACK != 0):
		t.Fatalf("NSACK = %d, Opts = %b", p.NSACK, p.Opts)
	case p.NVLAN < 0 || p.NVLAN > len(frame)/vlanTagLen:
		t.Fatalf("NVLAN = %d", p.NVLAN)
	case cap(p.Payload) != len(p.Payload):
		t.Fatalf("Payload not capped")
	case len(p.Payload) > 0 && !inside(p.Payload, frame):
		t.Fatalf("Payload is not a view into the frame")
	}
}

// compareFields lists the fields in which Parse and gopacket differ.
func compareFields(x *in) string {
	p, o := x.p, x.o
	want := Packet{NVLAN: len(o.vlans)}
	for i, v := range o.vlans {
		if i < MaxVLAN {
			want.VLAN[i] = v.VLANIdentifier
		}
	}
	zeroLen := exception(x) == "ipv6_zero_length"
	switch {
	case o.ip4 != nil:
		want.Family, want.TTL, want.IPID = 4, o.ip4.TTL, o.ip4.Id
		copy(want.Src[:], o.ip4.SrcIP)
		copy(want.Dst[:], o.ip4.DstIP)
		want.IPLen = int(o.ip4.Length)
		if binary.BigEndian.Uint16(x.frame[x.ipOff()+2:]) == 0 {
			want.IPLen = p.IPLen // TSO: gopacket clamps the captured length to 16 bits
			if int(o.ip4.Length) != min(p.IPLen, 0xffff) {
				return fmt.Sprintf("TSO IPLen = %d, gopacket %d", p.IPLen, o.ip4.Length)
			}
		}
	case o.ip6 != nil:
		want.Family, want.TTL = 6, o.ip6.HopLimit
		copy(want.Src[:], o.ip6.SrcIP)
		copy(want.Dst[:], o.ip6.DstIP)
		want.IPLen = ipv6HdrLen + int(o.ip6.Length)
	}
	tcp := o.tcp
	want.SrcPort, want.DstPort = uint16(tcp.SrcPort), uint16(tcp.DstPort)
	want.Seq, want.Ack, want.Window = tcp.Seq, tcp.Ack, tcp.Window
	want.Checksum, want.Urgent = tcp.Checksum, tcp.Urgent
	want.HdrLen = int(tcp.DataOffset) * 4
	for i, f := range []bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR} {
		if f {
			want.Flags |= 1 << i
		}
	}
	want.Payload = tcp.Payload
	if len(want.Payload) == 0 {
		want.Payload = nil
	}
	// Wire payload length: the IP length less everything up to the end of
	// the TCP header, located in the frame by the views' capacities.
	ipOff := x.ipOff()
	tcpOff := cap(x.frame) - cap(tcp.Contents)
	if tcpOff != x.tcpOff() {
		return fmt.Sprintf("TCP header at %d, gopacket %d", x.tcpOff(), tcpOff)
	}
	want.PayloadLen = want.IPLen - (tcpOff - ipOff) - want.HdrLen
	if zeroLen {
		want.IPLen, want.PayloadLen, want.Payload = p.IPLen, p.PayloadLen, p.Payload
	}
	if len(p.Payload) > 0 && len(tcp.Payload) > 0 && &p.Payload[0] != &tcp.Payload[0] {
		return "Payload starts elsewhere in the frame"
	}

	opts := x.frame[tcpOff+tcpMinLen : tcpOff+want.HdrLen]
	stopAt := wantOptions(tcp, opts, &want)
	got := *p
	if stopAt >= 0 && opts[stopAt] == 30 && stopAt+1 < len(opts) &&
		opts[stopAt+1] >= 2 && stopAt+int(opts[stopAt+1]) <= len(opts) {
		// MPTCP (kind 30): gopacket checks each subtype's length and stops
		// at a mismatch; to Parse it is an unknown option, skipped by its
		// length as the kernel's tcp_parse_options does. Compare what
		// both parsed before it.
		var q Packet
		q.options(opts[:stopAt])
		got.Opts, got.MSS, got.WScale, got.TSval, got.TSecr, got.NSACK, got.SACK =
			q.Opts, q.MSS, q.WScale, q.TSval, q.TSecr, q.NSACK, q.SACK
		want.Opts &^= OptMalformed
	}
	// Option values are only meaningful under their bits.
	for _, pk := range []*Packet{&got, &want} {
		if pk.Opts&OptMSS == 0 {
			pk.MSS = 0
		}
		if pk.Opts&OptWScale == 0 {
			pk.WScale = 0
		}
		if pk.Opts&OptTimestamp == 0 {
			pk.TSval, pk.TSecr = 0, 0
		}
	}
	return diffPacket(&got, &want)
}

// wantOptions fills the option fields of want from gopacket's options with
// the kernel's rules (known kinds only at their length, last one wins) and
// returns the offset in opts where gopacket stopped at a malformed option,
// or -1.
func wantOptions(tcp *layers.TCP, opts []byte, want *Packet) int {
	pos, eol := 0, false
	for _, op := range tcp.Options {
		d := op.OptionData
		switch op.OptionType {
		case layers.TCPOptionKindEndList:
			pos, eol = pos+1, true
			continue
		case layers.TCPOptionKindNop:
			pos++
			continue
		case layers.TCPOptionKindMSS:
			if len(d) == 2 {
				want.Opts |= OptMSS
				want.MSS = binary.BigEndian.Uint16(d)
			}
		case layers.TCPOptionKindWindowScale:
			if len(d) == 1 {
				want.Opts |= OptWScale
				want.WScale = d[0]
			}
		case layers.TCPOptionKindSACKPermitted:
			if len(d) == 0 {
				want.Opts |= OptSACKPerm
			}
		case layers.TCPOptionKindSACK:
			if len(d) > 0 && len(d)%8 == 0 {
				want.Opts |= OptSACK
				want.NSACK = 0
				want.SACK = [MaxSACK][2]uint32{}
				for i := 0; i+8 <= len(d) && want.NSACK < MaxSACK; i += 8 {
					want.SACK[want.NSACK] = [2]uint32{binary.BigEndian.Uint32(d[i:]), binary.BigEndian.Uint32(d[i+4:])}
					want.NSACK++
				}
			}
		case layers.TCPOptionKindTimestamps:
			if len(d) == 8 {
				want.Opts |= OptTimestamp
				want.TSval, want.TSecr = binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
			}
		}
		pos += int(op.OptionLength)
	}
	if !eol && pos < len(opts) {
		want.Opts |= OptMalformed
		return pos
	}
	return -1
}

// exceptionCases holds one input for each oracle exception.
func exceptionCases(t testing.TB) []parseCase {
	ack := uint8(FlagACK)
	v4 := func() []byte {
		return serialize(t, ip4L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello))
	}
	v6 := func() []byte {
		return serialize(t, ip6L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello))
	}
	v4opt := func() []byte {
		// IHL 6 with an option of length 1.
		f := v4()
		f = cat(f[:20], []byte{0x44, 0x01, 0, 0}, f[20:])
		f[0], f[3] = 0x46, f[3]+4
		return f
	}()
	v6tlv := func() []byte {
		d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{
			OptionType: 0x1e, OptionLength: 4, ActualLength: 6, OptionData: []byte{1, 2, 3, 4}}}}
		d.NextHeader = layers.IPProtocolTCP
		f := serialize(t, ip6L(layers.IPProtocolIPv6Destination), d, tcpL(ack))
		f[43] = 9 // the option now runs past its header
		return f
	}()
	v6zero := v6()
	v6zero[4], v6zero[5] = 0, 0
	sllBig := cat(sll(0x0800), v4())
	sllBig[5] = 9 // address length 9
	sll2Big := cat(sll2(0x0800), v4())
	sll2Big[11] = 48 // fuzz: address length 48
	sllRadiotap := cat(sll(0x0800), v4())
	sllRadiotap[2], sllRadiotap[3] = 0x03, 0x23 // ARPHRD_IEEE80211_RADIOTAP
	gre := cat(sll2(0x0800), v4())
	gre[8], gre[9] = 0x03, 0x0a // ARPHRD_IPGRE
	v5 := v4()
	v5[0] = 0x55
	ipip := serialize(t, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolIPv4), ip4L(layers.IPProtocolTCP),
		tcpL(ack), gopacket.Payload(hello))
	mpls := serialize(t, ethL(layers.EthernetTypeMPLSUnicast), &layers.MPLS{Label: 16, StackBottom: true, TTL: 9},
		ip4L(layers.IPProtocolTCP), tcpL(ack), gopacket.Payload(hello))
	c := parseCases(t)
	byName := func(name string) []byte {
		for _, k := range c {
			if k.name == name {
				return k.frame
			}
		}
		t.Fatalf("no case %q", name)
		return nil
	}
	return []parseCase{
		{name: "first_fragment", link: LinkIPv4, frame: byName("v4/first-fragment")},
		{name: "first_fragment", link: LinkIPv6, frame: byName("v6/first-fragment")},
		{name: "ipv4_options_unchecked", link: LinkIPv4, frame: v4opt},
		{name: "ipv6_tlv_unchecked", link: LinkIPv6, frame: v6tlv},
		{name: "ipv6_zero_length", link: LinkIPv6, frame: v6zero},
		{name: "vlan_9100", link: LinkEthernet, frame: byName("eth/three-tags-9100")},
		{name: "sll_addr_len", link: LinkLinuxSLL, frame: sllBig},
		{name: "sll_addr_len", link: LinkLinuxSLL2, frame: sll2Big},
		{name: "sll_hatype", link: LinkLinuxSLL, frame: sllRadiotap},
		{name: "sll2_ipgre", link: LinkLinuxSLL2, frame: gre},
		{name: "null_loop_family", link: LinkNull, frame: byName("null/linux-inet6-10")},
		{name: "null_loop_family", link: LinkLoop, frame: byName("loop/le-is-not-loop")},
		{name: "ip_version_mismatch", link: LinkIPv4, frame: v5},
		{name: "ipv6_ext_chain_limit", link: LinkIPv6, frame: byName("v6/9-ext-headers")},
		{name: "ethertype_ffff", link: LinkEthernet, frame: byName("eth/ethertype-ffff")},
		{name: "foreign_path", link: LinkEthernet, frame: ipip},
		{name: "foreign_path", link: LinkEthernet, frame: mpls},
	}
}

// TestOracleExceptions shows each known difference on an example: the two
// decoders disagree, and exactly that exception explains it.
func TestOracleExceptions(t *testing.T) {
	used := map[string]bool{}
	for _, c := range exceptionCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var p Packet
			x := &in{link: c.link, frame: c.frame, p: &p, o: runOracle(c.link, c.frame)}
			x.r = Parse(c.frame, c.link, &p)
			if !x.disagree() {
				t.Fatalf("no disagreement: Parse = %v, gopacket found TCP = %v", x.r, x.o.found)
			}
			if got := exception(x); got != c.name {
				t.Fatalf("exception = %q, want %q (Parse = %v)", got, c.name, x.r)
			}
			used[c.name] = true
		})
	}
	for _, e := range oracleExceptions {
		if !used[e.name] {
			t.Errorf("exception %q has no example", e.name)
		}
	}
}
