package filter

import (
	"fmt"
	"strconv"
	"strings"
)

// kind is a token's kind. Keywords have their own kinds; the libpcap
// keywords this compiler does not implement are all kUnsupported, so the
// lexer can name them in its error.
type kind uint8

const (
	kEOF kind = iota
	kNum
	kID   // a name, or a backslash-escaped word
	kHID  // dotted IPv4 address or prefix: 10.1, 10.1.2.3
	kHID6 // IPv6 address
	kEID  // MAC address
	kUnsupported

	// Operators.
	kLParen
	kRParen
	kLBrack
	kRBrack
	kColon
	kNot // "!" or "not"
	kAnd // "and" or "&&"
	kOr  // "or" or "||"
	kPlus
	kMinus
	kStar
	kSlash
	kPercent
	kAmp
	kPipe
	kCaret
	kShl
	kShr
	kGT
	kGE
	kLT
	kLE
	kEQ // "=" or "=="
	kNE

	// Keywords.
	kSrc
	kDst
	kLink // "ether" or "link"
	kIP
	kIP6
	kARP
	kRARP
	kTCP
	kUDP
	kSCTP
	kICMP
	kICMP6
	kIGMP
	kIGRP
	kPIM
	kVRRP
	kCARP
	kAH
	kESP
	kHost
	kNet
	kMask
	kPort
	kPortrange
	kProto
	kLess
	kGreater
	kLen
	kBroadcast
	kMulticast
	kVLAN
)

// keywords are the words with a meaning of their own, as in libpcap's
// scanner.l. A keyword is matched only when the whole word is it: "hostx"
// is a name.
var keywords = map[string]kind{
	"src": kSrc, "dst": kDst,
	"ether": kLink, "link": kLink,
	"ip": kIP, "ip6": kIP6, "arp": kARP, "rarp": kRARP,
	"tcp": kTCP, "udp": kUDP, "sctp": kSCTP, "icmp": kICMP, "icmp6": kICMP6,
	"igmp": kIGMP, "igrp": kIGRP, "pim": kPIM, "vrrp": kVRRP, "carp": kCARP,
	"ah": kAH, "esp": kESP,
	"host": kHost, "net": kNet, "mask": kMask, "port": kPort, "portrange": kPortrange,
	"proto": kProto,
	"less":  kLess, "greater": kGreater, "len": kLen, "length": kLen,
	"broadcast": kBroadcast, "multicast": kMulticast,
	"vlan": kVLAN,
	"and":  kAnd, "or": kOr, "not": kNot,
}

// unsupportedWords are libpcap keywords with no code here. They are
// refused by name as soon as they are read, whatever surrounds them.
var unsupportedWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
		ppp slip fddi tr wlan radio
		atalk aarp decnet lat sca moprc mopdl iso esis es-is isis is-is
		l1 l2 iih lsp snp csnp psnp clnp stp ipx netbeui
		gateway protochain type subtype direction dir
		address1 addr1 address2 addr2 address3 addr3 address4 addr4 ra ta
		byte inbound outbound ifindex mpls pppoed pppoes geneve
		lane llc metac bcc sc ilmic oamf4ec oamf4sc oam oamf4 connectmsg metaconnect
		on ifname rnr rset reason rulenum ruleset srnr subrulenum action
		fisu lssu lsu sio hfisu hlssu hmsu hsio sls dpc opc hsls hdpc hopc`) {
		m[w] = true
	}
	return m
}()

// namedNumbers are the words libpcap's scanner turns into numbers.
var namedNumbers = map[string]uint32{
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,

	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133, "icmp6-routeradvert": 134,
	"icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136, "icmp6-redirect": 137,
	"icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
	"icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
	"icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
	"icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
	"icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
	"icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
	"icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
	"icmp6-multicastrouterterm": 153,

	"tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

type token struct {
	kind kind
	text string // as written (for kID from a backslash escape: without the backslash)
	pos  int    // byte offset in the expression
	num  uint32 // kNum
}

// col is the token's 1-based column, the position errors name.
func (t token) col() int { return t.pos + 1 }

// lex splits expr into tokens the way libpcap's flex scanner does: at each
// position the longest match wins, and among equally long matches the rule
// listed first in scanner.l (keywords, MAC, number, IPv4, IPv6, named
// numbers, names). So "80-90" is one name (portrange reads it), "1.2.3.4"
// an address, "tcp-syn" the number 2, and "tcp[0]+1-1" has the name "1-1".
func lex(expr string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		if i == len(expr) {
			return append(toks, token{kind: kEOF, pos: i}), nil
		}
		t, n, err := lexOne(expr, i)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		i += n
	}
}

var operators = []struct {
	s string
	k kind
}{
	// Two-character operators first: the longest match wins.
	{">=", kGE}, {"<=", kLE}, {"!=", kNE}, {"==", kEQ}, {"<<", kShl}, {">>", kShr},
	{"&&", kAnd}, {"||", kOr},
	{"+", kPlus}, {"-", kMinus}, {"*", kStar}, {"/", kSlash}, {"%", kPercent},
	{":", kColon}, {"[", kLBrack}, {"]", kRBrack}, {"!", kNot}, {"<", kLT}, {">", kGT},
	{"(", kLParen}, {")", kRParen}, {"&", kAmp}, {"|", kPipe}, {"^", kCaret}, {"=", kEQ},
}

func lexOne(expr string, i int) (token, int, error) {
	s := expr[i:]
	lID := matchID(s)
	lMAC := matchMAC(s)
	lNum := matchNum(s)
	lHID := matchHID(s)
	lV6 := matchV6(s)
	lBogus := matchBogusMAC(s)
	best := max(lID, lMAC, lNum, lHID, lV6, lBogus)
	// Operators come before the address and number rules in scanner.l, so
	// they win ties; "::1" is still an address, being longer than ":".
	for _, op := range operators {
		if strings.HasPrefix(s, op.s) && len(op.s) >= best {
			return token{kind: op.k, text: op.s, pos: i}, len(op.s), nil
		}
	}
	switch s[0] {
	case '$':
		// ARCnet address ($B): a libpcap token this compiler has no use for.
		n := 1 + hexRun(s[1:], 2)
		return token{}, 0, fmt.Errorf("filter: %q at column %d is an ARCnet address, %s", s[:n], i+1, notSupported)
	case '\\':
		n := 1
		for n < len(s) && strings.IndexByte(" !()\n\t", s[n]) < 0 {
			n++
		}
		if n == 1 {
			return token{}, 0, fmt.Errorf("filter: lone backslash at column %d", i+1)
		}
		return token{kind: kID, text: s[1:n], pos: i}, n, nil
	}

	if best == 0 {
		return token{}, 0, fmt.Errorf("filter: unexpected character %q at column %d", rune(s[0]), i+1)
	}
	text := s[:best]
	// Rule order breaks ties: keywords, MAC, number, IPv4, IPv6, bogus MAC,
	// named numbers, names.
	if lID == best {
		if k, ok := keywords[text]; ok {
			return token{kind: k, text: text, pos: i}, best, nil
		}
		if unsupportedWords[text] {
			return token{kind: kUnsupported, text: text, pos: i}, best, nil
		}
	}
	switch best {
	case lMAC:
		return token{kind: kEID, text: text, pos: i}, best, nil
	case lNum:
		v, err := parseNum(text)
		if err != nil {
			return token{}, 0, fmt.Errorf("filter: number %q at column %d %v", text, i+1, err)
		}
		return token{kind: kNum, text: text, pos: i, num: v}, best, nil
	case lHID:
		return token{kind: kHID, text: text, pos: i}, best, nil
	case lV6:
		return token{kind: kHID6, text: text, pos: i}, best, nil
	case lBogus:
		return token{}, 0, fmt.Errorf("filter: bogus Ethernet address %q at column %d", text, i+1)
	}
	if v, ok := namedNumbers[text]; ok {
		return token{kind: kNum, text: text, pos: i, num: v}, best, nil
	}
	return token{kind: kID, text: text, pos: i}, best, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// hexRun is the number of hex digits at the start of s, at most max.
func hexRun(s string, max int) int {
	n := 0
	for n < len(s) && n < max && isHex(s[n]) {
		n++
	}
	return n
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

// matchID: [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?
func matchID(s string) int {
	if len(s) == 0 || !isAlnum(s[0]) {
		return 0
	}
	end, n := 1, 1
	for n < len(s) && (isAlnum(s[n]) || s[n] == '-' || s[n] == '_' || s[n] == '.') {
		n++
		if s[n-1] != '-' && s[n-1] != '_' {
			end = n
		}
	}
	return end
}

// matchNum: [0-9]+ or 0[xX][0-9A-Fa-f]+
func matchNum(s string) int {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		if n := hexRun(s[2:], len(s)); n > 0 {
			return 2 + n
		}
	}
	return digitRun(s)
}

// matchHID: N.N, N.N.N or N.N.N.N.
func matchHID(s string) int {
	n := matchNum(s)
	if n == 0 {
		return 0
	}
	best := 0
	for parts := 1; parts < 4; parts++ {
		if n >= len(s) || s[n] != '.' {
			break
		}
		m := matchNum(s[n+1:])
		if m == 0 {
			break
		}
		n += 1 + m
		best = n
	}
	return best
}

// matchMAC: B:B:B:B:B:B, B-B-B-B-B-B, B.B.B.B.B.B (B one or two hex
// digits), HHHH.HHHH.HHHH or twelve hex digits.
func matchMAC(s string) int {
	best := 0
	for _, sep := range []byte{':', '-', '.'} {
		n := 0
		ok := true
		for g := 0; g < 6; g++ {
			if g > 0 {
				if n >= len(s) || s[n] != sep {
					ok = false
					break
				}
				n++
			}
			m := hexRun(s[n:], 2)
			if m == 0 {
				ok = false
				break
			}
			n += m
		}
		if ok {
			best = max(best, n)
		}
	}
	if len(s) >= 14 && hexRun(s, 4) == 4 && s[4] == '.' && hexRun(s[5:], 4) == 4 && s[9] == '.' && hexRun(s[10:], 4) == 4 {
		best = max(best, 14)
	}
	if hexRun(s, 12) == 12 {
		best = max(best, 12)
	}
	return best
}

// matchBogusMAC: B:+(B:+)+, a colon-separated run libpcap rejects.
func matchBogusMAC(s string) int {
	groups, n, best := 0, 0, 0
	for {
		m := hexRun(s[n:], 2)
		if m == 0 || n+m >= len(s) || s[n+m] != ':' {
			return best
		}
		n += m
		for n < len(s) && s[n] == ':' {
			n++
		}
		groups++
		if groups >= 2 {
			best = n
		}
	}
}

// maxV6Text is the longest textual IPv6 address:
// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
const maxV6Text = 45

// matchV6 is the length of the longest prefix of s that is an IPv6
// address in one of the textual forms of libpcap's scanner: eight groups
// of one to four hex digits, or fewer around one "::", the last two groups
// possibly written as a dotted IPv4 address.
func matchV6(s string) int {
	// No address is longer than maxV6Text, so no longer prefix is tried:
	// unbounded, each position of a long run of colons or hex digits
	// tried every prefix of the rest (cubic in the run's length: a
	// filter of 2,814 colons took two minutes to be refused).
	n := 0
	for n < len(s) && n < maxV6Text && (isHex(s[n]) || s[n] == ':' || s[n] == '.') {
		n++
	}
	for ; n > 1; n-- {
		if isV6(s[:n]) {
			return n
		}
	}
	return 0
}

func isV6(s string) bool {
	if strings.Count(s, "::") > 1 || strings.Contains(s, ":::") || !strings.Contains(s, ":") {
		return false
	}
	countGroups := func(part string, last bool) (int, bool) {
		if part == "" {
			return 0, true
		}
		gs := strings.Split(part, ":")
		n := 0
		for i, g := range gs {
			if last && i == len(gs)-1 && strings.Contains(g, ".") {
				if !isDottedQuad(g) {
					return 0, false
				}
				n += 2
				continue
			}
			if len(g) == 0 || len(g) > 4 || hexRun(g, 4) != len(g) {
				return 0, false
			}
			n++
		}
		return n, true
	}
	if head, tail, ok := strings.Cut(s, "::"); ok {
		h, ok1 := countGroups(head, false)
		t, ok2 := countGroups(tail, true)
		return ok1 && ok2 && h+t <= 7
	}
	g, ok := countGroups(s, true)
	return ok && g == 8
}

func isDottedQuad(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || digitRun(p) != len(p) {
			return false
		}
	}
	return true
}

// parseNum reads a number as libpcap does: 0x hex, a leading 0 octal,
// else decimal, and at most 32 bits.
func parseNum(s string) (uint32, error) {
	base := 10
	digits := s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
		if strings.ContainsAny(digits, "89") {
			return 0, fmt.Errorf("has a digit that is not octal")
		}
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, fmt.Errorf("does not fit in 32 bits")
	}
	return uint32(v), nil
}
