package filter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/bpf"
)

// The generator turns the syntax tree into a boolean tree of tests,
// following libpcap's gencode.c function for function: the same tests,
// combined in the same order. The order matters beyond the verdict on
// whole packets: a load past the end of a truncated frame makes BPF reject
// the frame at once, so which tests run first decides what a short frame
// gets.

// Boolean tree. A test is straight-line code that leaves a value in A
// (and maybe X), then one comparison.
type (
	node  any
	nAnd  struct{ a, b node }
	nOr   struct{ a, b node }
	nNot  struct{ a node }
	nTest struct {
		stmts []bpf.Instruction
		cond  bpf.JumpTest // JumpEqual, JumpGreaterThan, JumpGreaterOrEqual or JumpBitsSet
		k     uint32
		x     bool // compare A with X, not with k
		// vn identifies a comparison of arithmetic by what it computes,
		// as libpcap's value numbers do: the same expression, the same
		// vn. Tests of plain loads leave it empty; their loads say it.
		vn string
	}
	nConst bool
)

func and(a, b node) node {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return nAnd{a, b}
}

func or(a, b node) node { return nOr{a, b} }

func not(a node) node { return nNot{a} }

// Link types Compile accepts (pcap LINKTYPE_* numbers).
const (
	linkNull     = 0   // BSD loopback, AF_ value in host byte order
	linkEthernet = 1   // Ethernet, possibly 802.1Q/802.1ad tagged
	linkRaw      = 101 // raw IPv4 or IPv6
	linkLoop     = 108 // OpenBSD loopback, AF_ value in network byte order
	linkSLL      = 113 // Linux cooked capture v1
	linkIPv4     = 228 // raw IPv4
	linkIPv6     = 229 // raw IPv6
	linkSLL2     = 276 // Linux cooked capture v2
)

// Ethernet types and IP protocol numbers the generator uses.
const (
	etherIP     = 0x0800
	etherARP    = 0x0806
	etherRARP   = 0x8035
	etherIPv6   = 0x86dd
	ether8021Q  = 0x8100
	ether8021AD = 0x88a8
	etherQinQ   = 0x9100
	etherMTU    = 1500

	protoICMP     = 1
	protoIGMP     = 2
	protoTCP      = 6
	protoIGRP     = 9
	protoUDP      = 17
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoPIM      = 103
	protoVRRP     = 112
	protoSCTP     = 132
	protoUndef    = -1 // a port of TCP, UDP or SCTP
)

// Address families in the loopback header. libpcap checks all three
// IPv6 values when reading a file, as the writer's OS is unknown.
const (
	afInet         = 2
	afInet6BSD     = 24
	afInet6FreeBSD = 28
	afInet6Darwin  = 30
)

const supportedList = "supported: ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp, igrp, pim, vrrp, carp, ah, esp, " +
	"host, net, mask, port, portrange, proto, src, dst, ether, link, broadcast, multicast, less, greater, len, vlan, " +
	"proto[expr:size], and, or, not"

const notSupported = "which tcpsentry's filter compiler does not support (" + supportedList + ")"

// compileError carries an error out of the recursive generator to
// Compile, as libpcap's bpf_error longjmps out of gencode.
type compileError struct{ err error }

func fail(format string, args ...any) {
	panic(compileError{fmt.Errorf("filter: "+format, args...)})
}

// failAt names the token the error is about.
func failAt(t token, format string, args ...any) {
	panic(compileError{fmt.Errorf("filter: %q at column %d %s", t.text, t.col(), fmt.Sprintf(format, args...))})
}

type gen struct {
	link       uint16
	kernelVLAN bool
	// Offsets of the link-layer type field (-1: the link has none) and of
	// the link-layer payload. "vlan" moves both by 4 for everything
	// compiled after it, as libpcap does.
	offLinkType int64
	offLinkPL   uint32
	vlanDepth   int
	regs        int // scratch memory words in use by arithmetic
}

func newGen(link uint16, opts Options) (*gen, error) {
	g := &gen{link: link, kernelVLAN: opts.KernelVLAN}
	switch link {
	case linkEthernet:
		g.offLinkType, g.offLinkPL = 12, 14
	case linkRaw, linkIPv4, linkIPv6:
		g.offLinkType, g.offLinkPL = -1, 0
	case linkNull, linkLoop:
		g.offLinkType, g.offLinkPL = 0, 4
	case linkSLL:
		g.offLinkType, g.offLinkPL = 14, 16
	case linkSLL2:
		g.offLinkType, g.offLinkPL = 0, 20
	default:
		return nil, fmt.Errorf("filter: link type %d is not supported (supported: 0 BSD loopback, 1 Ethernet, 101/228/229 raw IP, 108 OpenBSD loopback, 113 Linux SLL, 276 Linux SLL2)", link)
	}
	return g, nil
}

func linkName(link uint16) string {
	switch link {
	case linkNull:
		return "BSD loopback"
	case linkEthernet:
		return "Ethernet"
	case linkRaw:
		return "raw IP"
	case linkLoop:
		return "OpenBSD loopback"
	case linkSLL:
		return "Linux SLL"
	case linkIPv4:
		return "raw IPv4"
	case linkIPv6:
		return "raw IPv6"
	case linkSLL2:
		return "Linux SLL2"
	}
	return fmt.Sprint("link type ", link)
}

// Comparisons of packet data, as gencode.c's gen_cmp family.

func load(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }

func cmp(off uint32, size int, v uint32) node {
	return nTest{stmts: []bpf.Instruction{load(off, size)}, cond: bpf.JumpEqual, k: v}
}

// mcmp compares the masked field with v. A zero mask makes the test
// constant; libpcap's optimizer then drops the load too, so a truncated
// frame is not rejected for it.
func mcmp(off uint32, size int, v, mask uint32) node {
	switch mask {
	case 0:
		return nConst(v == 0)
	case 0xffffffff:
		return cmp(off, size, v)
	}
	return nTest{stmts: []bpf.Instruction{load(off, size), bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask}}, cond: bpf.JumpEqual, k: v}
}

func cmpOp(off uint32, size int, cond bpf.JumpTest, v uint32) node {
	return nTest{stmts: []bpf.Instruction{load(off, size)}, cond: cond, k: v}
}

func (g *gen) pl(off uint32) uint32 { return g.offLinkPL + off }

// linktype tests that the link layer carries protocol proto (an Ethernet
// type), gen_linktype.
func (g *gen) linktype(proto uint32) node {
	switch g.link {
	case linkEthernet, linkSLL, linkSLL2:
		return cmp(uint32(g.offLinkType), 2, proto)
	case linkRaw:
		switch proto {
		case etherIP:
			return mcmp(0, 1, 0x40, 0xf0)
		case etherIPv6:
			return mcmp(0, 1, 0x60, 0xf0)
		}
		return nConst(false)
	case linkIPv4:
		return nConst(proto == etherIP)
	case linkIPv6:
		return nConst(proto == etherIPv6)
	case linkNull, linkLoop:
		switch proto {
		case etherIP:
			return g.loopback(afInet)
		case etherIPv6:
			return or(or(g.loopback(afInet6Darwin), g.loopback(afInet6BSD)), g.loopback(afInet6FreeBSD))
		}
		return nConst(false)
	}
	panic("unreachable: link type checked in newGen")
}

// loopback compares the 4-byte address-family header: in network byte
// order for OpenBSD loopback, in the host's order for BSD loopback (a
// packet load reads it big-endian, so the constant is swapped to match).
func (g *gen) loopback(af uint32) node {
	v := af
	if g.link == linkNull {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], af)
		v = binary.BigEndian.Uint32(b[:])
	}
	return cmp(0, 4, v)
}

// notFragment: the IPv4 fragment offset is 0 (gen_ipfrag, negated).
func (g *gen) notFragment() node {
	return not(nTest{stmts: []bpf.Instruction{load(g.pl(6), 2)}, cond: bpf.JumpBitsSet, k: 0x1fff})
}

// proto tests the protocol above the network layer, gen_proto. at is
// the number or name, q says which layer.
func (g *gen) proto(v uint32, q qual, at token) node {
	switch q.proto {
	case pDefault:
		return or(g.proto(v, qual{proto: pIP}, at), g.proto(v, qual{proto: pIP6}, at))
	case pLink:
		if v <= etherMTU || v == 0x809b || v == 0x80f3 {
			failAt(at, "asks for Ethernet type %d: 802.2 LLC SAP values and AppleTalk types are not supported", v)
		}
		return g.linktype(v)
	case pIP:
		return and(g.linktype(etherIP), cmp(g.pl(9), 1, v))
	case pIP6:
		// The next header, or the one after a fragment header.
		return and(g.linktype(etherIPv6),
			or(cmp(g.pl(6), 1, v), and(cmp(g.pl(6), 1, protoFragment), cmp(g.pl(40), 1, v))))
	}
	failAt(*q.protoTok, "cannot qualify proto %s (ip, ip6 and ether can)", at.text)
	return nil
}

// abbrev is a protocol name on its own, gen_proto_abbrev.
func (g *gen) abbrev(t token) node {
	switch pnames[t.kind] {
	case pTCP:
		return g.proto(protoTCP, qual{proto: pDefault}, t)
	case pUDP:
		return g.proto(protoUDP, qual{proto: pDefault}, t)
	case pSCTP:
		return g.proto(protoSCTP, qual{proto: pDefault}, t)
	case pICMP:
		return g.proto(protoICMP, qual{proto: pIP}, t)
	case pIGMP:
		return g.proto(protoIGMP, qual{proto: pIP}, t)
	case pIGRP:
		return g.proto(protoIGRP, qual{proto: pIP}, t)
	case pPIM:
		return g.proto(protoPIM, qual{proto: pDefault}, t)
	case pVRRP, pCARP:
		return g.proto(protoVRRP, qual{proto: pIP}, t)
	case pAH:
		return g.proto(protoAH, qual{proto: pDefault}, t)
	case pESP:
		return g.proto(protoESP, qual{proto: pDefault}, t)
	case pIP:
		return g.linktype(etherIP)
	case pARP:
		return g.linktype(etherARP)
	case pRARP:
		return g.linktype(etherRARP)
	case pIP6:
		return g.linktype(etherIPv6)
	case pICMP6:
		return g.proto(protoICMPv6, qual{proto: pIP6}, t)
	}
	failAt(t, "needs something after it (ether host, ether src, ether dst, ether proto, ether[...])")
	return nil
}

// host tests an IPv4 address under a mask, gen_host.
func (g *gen) host(addr, mask uint32, q qual, at token) node {
	switch q.proto {
	case pDefault:
		return or(or(g.host(addr, mask, qual{proto: pIP, dir: q.dir}, at),
			g.host(addr, mask, qual{proto: pARP, dir: q.dir}, at)),
			g.host(addr, mask, qual{proto: pRARP, dir: q.dir}, at))
	case pIP:
		return g.hostop(addr, mask, q.dir, etherIP, 12, 16)
	case pARP:
		return g.hostop(addr, mask, q.dir, etherARP, 14, 24)
	case pRARP:
		return g.hostop(addr, mask, q.dir, etherRARP, 14, 24)
	case pLink:
		failAt(at, "is an IPv4 address; ether host needs a MAC address")
	}
	failAt(*q.protoTok, "cannot qualify IPv4 address %q (ip, arp and rarp can)", at.text)
	return nil
}

func (g *gen) hostop(addr, mask uint32, dir qdir, ll uint32, src, dst uint32) node {
	switch dir {
	case dSrc, dDst:
		off := src
		if dir == dDst {
			off = dst
		}
		return and(g.linktype(ll), mcmp(g.pl(off), 4, addr, mask))
	case dAnd:
		return and(g.hostop(addr, mask, dSrc, ll, src, dst), g.hostop(addr, mask, dDst, ll, src, dst))
	}
	return or(g.hostop(addr, mask, dSrc, ll, src, dst), g.hostop(addr, mask, dDst, ll, src, dst))
}

// host6 tests an IPv6 address under a mask, gen_host6.
func (g *gen) host6(addr, mask [16]byte, q qual, at token) node {
	switch q.proto {
	case pDefault, pIP6:
		return g.hostop6(addr, mask, q.dir)
	case pLink:
		failAt(at, "is an IPv6 address; ether host needs a MAC address")
	}
	failAt(*q.protoTok, "cannot qualify IPv6 address %q (only ip6 can)", at.text)
	return nil
}

func (g *gen) hostop6(addr, mask [16]byte, dir qdir) node {
	switch dir {
	case dSrc, dDst:
		off := uint32(8)
		if dir == dDst {
			off = 24
		}
		var words node
		for i := 3; i >= 0; i-- {
			a := binary.BigEndian.Uint32(addr[4*i:])
			m := binary.BigEndian.Uint32(mask[4*i:])
			w := mcmp(g.pl(off+4*uint32(i)), 4, a, m)
			if words == nil {
				words = w
			} else {
				words = and(w, words)
			}
		}
		return and(g.linktype(etherIPv6), words)
	case dAnd:
		return and(g.hostop6(addr, mask, dSrc), g.hostop6(addr, mask, dDst))
	}
	return or(g.hostop6(addr, mask, dSrc), g.hostop6(addr, mask, dDst))
}

// Ports, gen_port and gen_port6: IPv4 checks the protocol and that the
// packet is not a later fragment, then reads the port behind the IHL;
// IPv6 reads the port at a fixed 40 bytes when the next header is the
// protocol.

func (g *gen) portAtom(off uint32, cond bpf.JumpTest, v uint32) node {
	return nTest{stmts: []bpf.Instruction{bpf.LoadMemShift{Off: g.pl(0)}, bpf.LoadIndirect{Off: g.pl(off), Size: 2}}, cond: cond, k: v}
}

// portTest is the comparison of one port field: equality for port,
// lo <= p <= hi for portrange.
type portTest func(v6 bool, off uint32) node

func (g *gen) portEq(port uint32) portTest {
	return func(v6 bool, off uint32) node {
		if v6 {
			return cmp(g.pl(40+off), 2, port)
		}
		return g.portAtom(off, bpf.JumpEqual, port)
	}
}

func (g *gen) portRange(lo, hi uint32) portTest {
	if lo > hi {
		lo, hi = hi, lo
	}
	return func(v6 bool, off uint32) node {
		if v6 {
			return and(cmpOp(g.pl(40+off), 2, bpf.JumpGreaterOrEqual, lo), not(cmpOp(g.pl(40+off), 2, bpf.JumpGreaterThan, hi)))
		}
		return and(g.portAtom(off, bpf.JumpGreaterOrEqual, lo), not(g.portAtom(off, bpf.JumpGreaterThan, hi)))
	}
}

func portDir(t portTest, v6 bool, dir qdir) node {
	switch dir {
	case dSrc:
		return t(v6, 0)
	case dDst:
		return t(v6, 2)
	case dAnd:
		return and(t(v6, 0), t(v6, 2))
	}
	return or(t(v6, 0), t(v6, 2))
}

// port is "port" or "portrange" for IPv6, then IPv4, as gen_ncode ors them.
func (g *gen) port(t portTest, ipproto int, dir qdir) node {
	op4 := func(p uint32) node {
		return and(and(cmp(g.pl(9), 1, p), g.notFragment()), portDir(t, false, dir))
	}
	op6 := func(p uint32) node {
		return and(cmp(g.pl(6), 1, p), portDir(t, true, dir))
	}
	each := func(op func(uint32) node) node {
		if ipproto != protoUndef {
			return op(uint32(ipproto))
		}
		return or(op(protoSCTP), or(op(protoTCP), op(protoUDP)))
	}
	v6 := and(g.linktype(etherIPv6), each(op6))
	v4 := and(g.linktype(etherIP), each(op4))
	return or(v6, v4)
}

// portProto maps the protocol qualifier of port/portrange to an IP protocol.
func portProto(q qual, what string) int {
	switch q.proto {
	case pDefault:
		return protoUndef
	case pTCP:
		return protoTCP
	case pUDP:
		return protoUDP
	case pSCTP:
		return protoSCTP
	}
	failAt(*q.protoTok, "cannot qualify %s (tcp, udp and sctp can)", what)
	return 0
}

// ether host/src/dst, gen_ehostop: 6 bytes as a word at +2, then a half
// word at +0.
func (g *gen) ehost(mac [6]byte, dir qdir) node {
	switch dir {
	case dSrc, dDst:
		off := uint32(6)
		if dir == dDst {
			off = 0
		}
		return and(cmp(off+2, 4, binary.BigEndian.Uint32(mac[2:])), cmp(off, 2, uint32(binary.BigEndian.Uint16(mac[:]))))
	case dAnd:
		return and(g.ehost(mac, dSrc), g.ehost(mac, dDst))
	}
	return or(g.ehost(mac, dSrc), g.ehost(mac, dDst))
}

// Walk of the syntax tree. q is the qualifier a bare id would inherit at
// this point (yacc's $<blk>0); each case returns the qualifier it leaves
// for the next bare id.
func (g *gen) walk(n sx, q qual) (node, qual) {
	switch n := n.(type) {
	case sAnd:
		a, q1 := g.walk(n.l, q)
		b, q2 := g.walk(n.r, q1)
		return and(a, b), q2
	case sOr:
		a, q1 := g.walk(n.l, q)
		b, q2 := g.walk(n.r, q1)
		return or(a, b), q2
	case sNot:
		a, q1 := g.walk(n.x, q)
		return not(a), q1
	case sHeadID:
		b, _ := g.walk(n.id, n.q)
		return b, n.q
	case sParen:
		b, _ := g.walk(n.x, q)
		return b, q
	case sPname:
		return g.abbrev(n.tok), qerr
	case sRel:
		return g.relation(n), qerr
	case sOther:
		return g.other(n), qerr
	case sNum:
		return g.ncode(n.tok, "", n.tok.num, q), q
	case sHID:
		return g.hid(n, q), q
	case sHID6:
		return g.hid6(n, q), q
	case sEID:
		return g.eid(n.tok, q), q
	case sName:
		return g.name(n.tok, q), q
	}
	panic(fmt.Sprintf("filter: unexpected syntax node %T", n))
}

// needQual refuses a bare id that has no qualifier to inherit.
func needQual(t token, q qual) {
	if q.addr == aUndef {
		failAt(t, "has no qualifier to inherit (write it as e.g. \"host %s\" or \"port %s\")", t.text, t.text)
	}
}

// ncode is a number or a dotted IPv4 address (s) under q, gen_ncode.
func (g *gen) ncode(t token, s string, v uint32, q qual) node {
	needQual(t, q)
	vlen := 32
	if s != "" {
		v, vlen = atoin(t, s)
	}
	switch q.addr {
	case aDefault, aHost, aNet:
		if q.proto == pLink {
			failAt(t, "is not a MAC address (ether host needs one)")
		}
		mask := uint32(0xffffffff)
		if s == "" && q.addr == aNet {
			// "net 10" is 10.0.0.0/8.
			for v != 0 && v&0xff000000 == 0 {
				v <<= 8
				mask <<= 8
			}
		} else {
			v <<= 32 - vlen
			mask <<= 32 - vlen
		}
		return g.host(v, mask, q, t)
	case aPort:
		p := portProto(q, "port")
		if v > 65535 {
			failAt(t, "is not a port number (at most 65535)")
		}
		return g.port(g.portEq(v), p, q.dir)
	case aPortrange:
		p := portProto(q, "portrange")
		if v > 65535 {
			failAt(t, "is not a port number (at most 65535)")
		}
		return g.port(g.portRange(v, v), p, q.dir)
	case aProto:
		return g.proto(v, q, t)
	}
	panic("unreachable: qualifier kinds are exhaustive")
}

// atoin reads a dotted decimal IPv4 address or prefix ("10.1" is 16
// bits), __pcap_atoin: the value and its length in bits.
func atoin(t token, s string) (uint32, int) {
	var v uint32
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if digitRun(p) != len(p) {
			failAt(t, "is not a dotted decimal IPv4 address")
		}
		n := 0
		for _, c := range p {
			n = n*10 + int(c-'0')
			if n > 255 {
				failAt(t, "is not an IPv4 address (a part is over 255)")
			}
		}
		v = v<<8 | uint32(n)
	}
	return v, 8 * len(parts)
}

func (g *gen) hid(n sHID, q qual) node {
	if n.mask == nil && n.bits == nil {
		switch q.addr {
		case aPort, aPortrange, aProto:
			failAt(n.tok, "is an IPv4 address, not a %s", q.addrTok.text)
		}
		return g.ncode(n.tok, n.tok.text, 0, q)
	}
	// gen_mcode: address with a mask or a prefix length.
	needQual(n.tok, q)
	a, alen := atoin(n.tok, n.tok.text)
	a <<= 32 - alen
	var m uint32
	if n.mask != nil {
		var mlen int
		m, mlen = atoin(*n.mask, n.mask.text)
		m <<= 32 - mlen
		if a&^m != 0 {
			failAt(n.tok, "has bits outside mask %s", n.mask.text)
		}
	} else {
		if n.bits.num > 32 {
			failAt(*n.bits, "is not an IPv4 prefix length (at most 32)")
		}
		m = uint32(uint64(0xffffffff) << (32 - n.bits.num))
		if a&^m != 0 {
			failAt(n.tok, "has bits outside its /%d prefix", n.bits.num)
		}
	}
	if q.addr != aNet {
		failAt(n.tok, "has a mask, which only \"net\" takes")
	}
	return g.host(a, m, q, n.tok)
}

func (g *gen) hid6(n sHID6, q qual) node {
	needQual(n.tok, q)
	addr, err := netip.ParseAddr(n.tok.text)
	if err != nil || !addr.Is6() {
		failAt(n.tok, "is not an IPv6 address")
	}
	bitsLen := uint32(128)
	if n.bits != nil {
		bitsLen = n.bits.num
		if bitsLen > 128 {
			failAt(*n.bits, "is not an IPv6 prefix length (at most 128)")
		}
	}
	a := addr.As16()
	var m [16]byte
	for i := range m {
		switch {
		case uint32(8*i+8) <= bitsLen:
			m[i] = 0xff
		case uint32(8*i) < bitsLen:
			m[i] = byte(0xff << (8 - bitsLen%8))
		}
		if a[i]&^m[i] != 0 {
			failAt(n.tok, "has bits outside its /%d prefix", bitsLen)
		}
	}
	switch q.addr {
	case aDefault, aHost:
		if bitsLen != 128 {
			failAt(n.tok, "has a prefix length, which only \"net\" takes")
		}
	case aNet:
	default:
		failAt(n.tok, "is an IPv6 address, not a %s", q.addrTok.text)
	}
	return g.host6(a, m, q, n.tok)
}

func (g *gen) eid(t token, q qual) node {
	if (q.addr == aHost || q.addr == aDefault) && q.proto == pLink {
		if g.link != linkEthernet {
			failAt(t, "is a MAC address; %s frames have none", linkName(g.link))
		}
		return g.ehost(etherAton(t.text), q.dir)
	}
	failAt(t, "is a MAC address; write it as \"ether host %s\" (or ether src/dst)", t.text)
	return nil
}

// etherAton reads a MAC address the way pcap_ether_aton does: one or two
// hex digits per byte, separators optional.
func etherAton(s string) [6]byte {
	var mac [6]byte
	n := 0
	for i := 0; i < len(s) && n < 6; {
		if s[i] == ':' || s[i] == '.' || s[i] == '-' {
			i++
			continue
		}
		d := hexVal(s[i])
		i++
		if i < len(s) && isHex(s[i]) {
			d = d<<4 | hexVal(s[i])
			i++
		}
		mac[n] = d
		n++
	}
	return mac
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// name is a word under q, gen_scode: a host or network name (refused: no
// DNS here), a port range "A-B", or a protocol name.
func (g *gen) name(t token, q qual) node {
	needQual(t, q)
	switch q.addr {
	case aDefault, aHost, aNet:
		failAt(t, "is a name; tcpsentry's filter compiler needs numeric addresses (it does no DNS or /etc/hosts, /etc/networks, /etc/ethers look-ups)")
	case aPort:
		failAt(t, "is not a port number (service names are not supported)")
	case aPortrange:
		p := portProto(q, "portrange")
		lo, hi, ok := portRangeNums(t.text)
		if !ok {
			failAt(t, "is not a port range (write it as LOW-HIGH with numbers)")
		}
		if lo > 65535 || hi > 65535 {
			failAt(t, "has a port number over 65535")
		}
		return g.port(g.portRange(lo, hi), p, q.dir)
	case aProto:
		v, ok := protoByName(q.proto, t.text)
		if !ok {
			failAt(t, "is not a protocol name this compiler knows (use the number)")
		}
		return g.proto(v, q, t)
	}
	panic("unreachable: qualifier kinds are exhaustive")
}

// portRangeNums reads "A-B" as libpcap's sscanf("%d-%d") does: decimal
// digits, a dash, decimal digits, anything after ignored.
func portRangeNums(s string) (lo, hi uint32, ok bool) {
	num := func(s string) (uint32, string, bool) {
		n := digitRun(s)
		if n == 0 {
			return 0, s, false
		}
		var v uint64
		for _, c := range s[:n] {
			v = min(v*10+uint64(c-'0'), 1<<32)
		}
		return uint32(min(v, 0xffffffff)), s[n:], true
	}
	lo, rest, ok := num(s)
	if !ok || rest == "" || rest[0] != '-' {
		return 0, 0, false
	}
	hi, _, ok = num(rest[1:])
	return lo, hi, ok
}

// protoByName knows the names of /etc/protocols (netbase) for ip, ip6 and
// proto, and libpcap's Ethernet type names for ether proto.
func protoByName(p qproto, name string) (uint32, bool) {
	if p == pLink {
		v, ok := etherProtoNames[name]
		return v, ok
	}
	v, ok := ipProtoNames[name]
	return v, ok
}

var etherProtoNames = map[string]uint32{
	"ip": etherIP, "ip6": etherIPv6, "arp": etherARP, "rarp": etherRARP,
	"decnet": 0x6003, "lat": 0x6004, "loopback": 0x9000, "mopdl": 0x6001, "moprc": 0x6002, "sca": 0x6007,
	// LLC SAP and AppleTalk names, refused by proto like their numbers.
	"atalk": 0x809b, "aarp": 0x80f3, "iso": 0xfe, "stp": 0x42, "ipx": 0xe0, "netbeui": 0xf0,
}

var ipProtoNames = map[string]uint32{
	"ip": 0, "IP": 0, "hopopt": 0, "HOPOPT": 0, "icmp": 1, "ICMP": 1, "igmp": 2, "IGMP": 2,
	"tcp": 6, "TCP": 6, "egp": 8, "EGP": 8, "igp": 9, "IGP": 9, "udp": 17, "UDP": 17,
	"dccp": 33, "DCCP": 33, "ipv6": 41, "IPv6": 41, "ipv6-route": 43, "IPv6-Route": 43,
	"ipv6-frag": 44, "IPv6-Frag": 44, "rsvp": 46, "RSVP": 46, "gre": 47, "GRE": 47,
	"esp": 50, "IPSEC-ESP": 50, "ah": 51, "IPSEC-AH": 51, "ipv6-icmp": 58, "IPv6-ICMP": 58,
	"ipv6-nonxt": 59, "IPv6-NoNxt": 59, "ipv6-opts": 60, "IPv6-Opts": 60,
	"eigrp": 88, "EIGRP": 88, "ospf": 89, "OSPFIGP": 89, "ipip": 94, "IPIP": 94,
	"pim": 103, "PIM": 103, "vrrp": 112, "VRRP": 112, "l2tp": 115, "L2TP": 115,
	"sctp": 132, "SCTP": 132, "udplite": 136, "UDPLite": 136,
}

// other is less, greater, vlan, broadcast and multicast.
func (g *gen) other(n sOther) node {
	switch n.tok.kind {
	case kLess:
		return not(nTest{stmts: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtLen}}, cond: bpf.JumpGreaterThan, k: n.arg.num})
	case kGreater:
		return nTest{stmts: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtLen}}, cond: bpf.JumpGreaterOrEqual, k: n.arg.num}
	case kVLAN:
		return g.vlan(n)
	case kBroadcast, kMulticast:
		return g.cast(n)
	}
	panic("unreachable: parser makes sOther only for these keywords")
}

// vlan matches a VLAN tag, gen_vlan. In frames the tag is in the data:
// test its TPID (and VID) where the type field is now, then move the type
// and payload offsets 4 bytes on for everything compiled after it, so
// "vlan 100 and ip" reads the inner type. With KernelVLAN the outer tag
// is in packet metadata: read it with the ancillary loads and move
// nothing, as libpcap does for the first vlan on a live Linux socket.
func (g *gen) vlan(n sOther) node {
	if g.link != linkEthernet {
		failAt(n.tok, "needs Ethernet frames; %s frames have no VLAN tags", linkName(g.link))
	}
	var vid uint32
	if n.arg != nil {
		vid = n.arg.num
		if vid > 0xfff {
			failAt(*n.arg, "is not a VLAN ID (at most 4095)")
		}
	}
	defer func() { g.vlanDepth++ }()
	if g.kernelVLAN && g.vlanDepth == 0 {
		b := node(nTest{stmts: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}}, cond: bpf.JumpEqual, k: 1})
		if n.arg != nil {
			b = and(b, nTest{stmts: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtVLANTag}, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff}}, cond: bpf.JumpEqual, k: vid})
		}
		return b
	}
	b := or(or(g.linktype(ether8021Q), g.linktype(ether8021AD)), g.linktype(etherQinQ))
	if n.arg != nil {
		b = and(b, mcmp(g.pl(0), 2, vid, 0xfff))
	}
	g.offLinkType += 4
	g.offLinkPL += 4
	return b
}

// cast is [ether|ip|ip6] broadcast|multicast, gen_broadcast and
// gen_multicast.
func (g *gen) cast(n sOther) node {
	p := pDefault
	if n.pqual != nil {
		p = pnames[n.pqual.kind]
	}
	switch p {
	case pDefault, pLink:
		if g.link != linkEthernet {
			failAt(n.tok, "needs Ethernet frames (%s frames have no link-layer destination)", linkName(g.link))
		}
		if n.tok.kind == kBroadcast {
			return g.ehost([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, dDst)
		}
		return nTest{stmts: []bpf.Instruction{load(0, 1)}, cond: bpf.JumpBitsSet, k: 1}
	case pIP:
		if n.tok.kind == kMulticast {
			return and(g.linktype(etherIP), cmpOp(g.pl(16), 1, bpf.JumpGreaterOrEqual, 224))
		}
		failAt(n.tok, "after ip needs the capture's netmask, which a filter compiled here does not have")
	case pIP6:
		if n.tok.kind == kMulticast {
			return and(g.linktype(etherIPv6), cmp(g.pl(24), 1, 255))
		}
		failAt(n.tok, "does not exist in IPv6")
	}
	failAt(*n.pqual, "cannot qualify %s (ether, ip and ip6 can)", n.tok.text)
	return nil
}
