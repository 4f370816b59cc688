package filter

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

var randomExprs = flag.Int("filter.random", 30, "random expressions per link type in TestDifferentialRandom")

// randomExpr writes a random expression from the supported grammar, with
// the values the corpus holds, so matches happen.
func randomExpr(r *rand.Rand, depth int) string {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	v4 := func() string { return pick("10.0.0.1", "10.0.0.2", "192.168.1.1", "127.0.0.1", "1.2.3.4", "224.0.0.1") }
	v6 := func() string { return pick("::1", "2001:db8::1", "2001:db8::2", "fe80::1", "ff02::1") }
	port := func() string { return pick("22", "53", "80", "443", "1024", "8080", "65535", "0") }
	mac := func() string {
		return pick("00:11:22:33:44:55", "02:00:00:00:00:02", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01")
	}
	dir := func() string { return pick("", "", "src ", "dst ", "src or dst ", "src and dst ") }
	num := func() string {
		return pick("0", "1", "2", "4", "6", "13", "17", "20", "40", "64", "0x45", "0x12", "255", "1500")
	}
	arith := func() string {
		proto := pick("ether", "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "arp", "sctp")
		idx := pick("0", "1", "2", "6", "8", "9", "12", "13", "tcpflags", "icmptype", "20", "40", "53", "100")
		if r.IntN(6) == 0 {
			idx = fmt.Sprintf("%s[%s] & 0xf", pick("tcp", "ip", "udp"), pick("0", "12", "13"))
		}
		size := pick("", "", ":1", ":2", ":4")
		a := fmt.Sprintf("%s[%s%s]", proto, idx, size)
		if r.IntN(3) == 0 {
			a += " " + pick("&", "|", "+", "-", "*", "/", ">>", "<<", "^", "%") + " " + pick("1", "2", "4", "0xf", "0x12", "3")
		}
		if r.IntN(8) == 0 {
			a = pick("len", "len - 14", "-"+a)
		}
		return a + " " + pick("=", "==", "!=", "<", ">", "<=", ">=") + " " + num()
	}
	if depth > 0 && r.IntN(3) > 0 {
		a, b := randomExpr(r, depth-1), randomExpr(r, depth-1)
		e := a + " " + pick("and", "or", "&&", "||") + " " + b
		switch r.IntN(4) {
		case 0:
			e = "(" + e + ")"
		case 1:
			e = pick("not ", "!") + "(" + e + ")"
		}
		return e
	}
	switch r.IntN(16) {
	case 0:
		return pick("ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "pim", "esp", "ah")
	case 1:
		return dir() + "host " + v4() + pick("", "", " or "+v4(), " and not "+v4())
	case 2:
		return pick("", "ip6 ") + dir() + "host " + v6() + pick("", " or "+v6())
	case 3:
		return pick("", "ip ", "arp ", "rarp ") + dir() + "net " + pick("10.0.0.0/8", "192.168", "127", "10.0.0.0 mask 255.255.255.0", "0.0.0.0/0", "224.0.0.0/4")
	case 4:
		return dir() + "net " + pick("2001:db8::/32", "fe80::/10", "::/0", "::1/128", "ff00::/8")
	case 5:
		return pick("", "tcp ", "udp ", "sctp ") + dir() + "port " + port() + pick("", "", " or "+port(), " and not "+port())
	case 6:
		return pick("", "tcp ", "udp ") + dir() + "portrange " + pick("1-1024", "80-90", "1024-65535", "53-53", "443-80")
	case 7:
		return "ether " + pick("host", "src", "dst", "src and dst", "src or dst") + " " + mac()
	case 8:
		return pick("ether broadcast", "ether multicast", "ip multicast", "ip6 multicast", "broadcast", "multicast")
	case 9:
		return pick("less ", "greater ") + pick("54", "60", "64", "100", "1500")
	case 10, 11:
		return arith()
	case 12:
		return "tcp[tcpflags] & (" + pick("tcp-syn", "tcp-rst", "tcp-fin", "tcp-ack", "tcp-syn|tcp-ack", "tcp-push|tcp-urg", "tcp-ece|tcp-cwr") + ") " + pick("!= 0", "= 0", "== tcp-syn")
	case 13:
		return pick("vlan", "vlan 100", "vlan 200", "vlan 1")
	case 14:
		return pick("ip proto ", "ip6 proto ", "proto ") + pick("6", "17", "1", "58", "132", `\tcp`, `\udp`, `\icmp`)
	default:
		return "ether proto " + pick(`\ip`, `\ip6`, `\arp`, `\rarp`, "0x88cc", "0x8100")
	}
}

// TestDifferentialRandom compares random combinations with libpcap, as
// TestDifferential does for the fixed list (-filter.random=N for more),
// on whole frames only. On a truncated frame a random combination can
// meet a part of libpcap's optimizer this package does not copy: where it
// proves a test constant it drops the test's load, so the short frame is
// not rejected for it (see the package doc).
func TestDifferentialRandom(t *testing.T) {
	requireTcpdump(t)
	for _, link := range allLinks {
		t.Run(linkName(link), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(uint64(link), 1))
			var frames []frame
			for _, f := range corpus(t, link) {
				if !strings.Contains(f.name, " [:") {
					frames = append(frames, f)
				}
			}
			for range *randomExprs {
				expr := randomExpr(r, 2)
				for link != linkEthernet && strings.Contains(expr, "vlan") {
					expr = randomExpr(r, 2) // only Ethernet has VLAN tags
				}
				compareWithLibpcap(t, expr, link, frames)
			}
		})
	}
}
