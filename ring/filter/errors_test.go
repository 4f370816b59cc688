package filter

import (
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	const sup = " is not supported by tcpsentry's filter compiler (" + supportedList + ")"
	for _, tc := range []struct {
		expr string
		link uint16
		want string
	}{
		{"gateway foo", linkEthernet, `filter: "gateway" at column 1` + sup},
		{"tcp and decnet host 1.2", linkEthernet, `filter: "decnet" at column 9` + sup},
		{"wlan host 00:11:22:33:44:55", linkEthernet, `filter: "wlan" at column 1` + sup},
		{"mpls", linkEthernet, `filter: "mpls" at column 1` + sup},
		{"pppoes and tcp", linkEthernet, `filter: "pppoes" at column 1` + sup},
		{"geneve", linkEthernet, `filter: "geneve" at column 1` + sup},
		{"port", linkEthernet, `filter: unexpected end of expression after "port"`},
		{"tcp and", linkEthernet, `filter: unexpected end of expression after "and"`},
		{"(tcp", linkEthernet, `filter: unexpected end of expression after "tcp"`},
		{"tcp)", linkEthernet, `filter: unexpected ")" at column 4`},
		{"tcp port 80 80", linkEthernet, `filter: unexpected "80" at column 13`},
		{"ip proto tcp", linkEthernet, `filter: unexpected "tcp" at column 10`},
		{"tcp @ 1", linkEthernet, `filter: unexpected character '@' at column 5`},
		{"tcp or 443", linkEthernet, `filter: "443" at column 8 has no qualifier to inherit (write it as e.g. "host 443" or "port 443")`},
		{"host foo.example", linkEthernet, `filter: "foo.example" at column 6 is a name; tcpsentry's filter compiler needs numeric addresses (it does no DNS or /etc/hosts, /etc/networks, /etc/ethers look-ups)`},
		{"port http", linkEthernet, `filter: "http" at column 6 is not a port number (service names are not supported)`},
		{"port 70000", linkEthernet, `filter: "70000" at column 6 is not a port number (at most 65535)`},
		{"portrange 1-70000", linkEthernet, `filter: "1-70000" at column 11 has a port number over 65535`},
		{"port 08", linkEthernet, `filter: number "08" at column 6 has a digit that is not octal`},
		{"port 99999999999", linkEthernet, `filter: number "99999999999" at column 6 does not fit in 32 bits`},
		{"ip6 host 1.2.3.4", linkEthernet, `filter: "ip6" at column 1 cannot qualify IPv4 address "1.2.3.4" (ip, arp and rarp can)`},
		{"ip host ::1", linkEthernet, `filter: "ip" at column 1 cannot qualify IPv6 address "::1" (only ip6 can)`},
		{"ether host 1.2.3.4", linkEthernet, `filter: "1.2.3.4" at column 12 is not a MAC address (ether host needs one)`},
		{"host 00:11:22:33:44:55", linkEthernet, `filter: "00:11:22:33:44:55" at column 6 is a MAC address; write it as "ether host 00:11:22:33:44:55" (or ether src/dst)`},
		{"ether host 00:11:22:33:44:55", linkSLL, `filter: "00:11:22:33:44:55" at column 12 is a MAC address; Linux SLL frames have none`},
		{"ether host 1:2:3:", linkEthernet, `filter: bogus Ethernet address "1:2:3:" at column 12`},
		{"host 10.0.0.0/8", linkEthernet, `filter: "10.0.0.0" at column 6 has a mask, which only "net" takes`},
		{"net 10.0.0.1/8", linkEthernet, `filter: "10.0.0.1" at column 5 has bits outside its /8 prefix`},
		{"net 10.0.0.0/33", linkEthernet, `filter: "33" at column 14 is not an IPv4 prefix length (at most 32)`},
		{"ip6 net 2001:db8::1/32", linkEthernet, `filter: "2001:db8::1" at column 9 has bits outside its /32 prefix`},
		{"host 1.2.3.256", linkEthernet, `filter: "1.2.3.256" at column 6 is not an IPv4 address (a part is over 255)`},
		{"vlan 100", linkSLL2, `filter: "vlan" at column 1 needs Ethernet frames; Linux SLL2 frames have no VLAN tags`},
		{"vlan 4096", linkEthernet, `filter: "4096" at column 6 is not a VLAN ID (at most 4095)`},
		{"tcp[13:3] = 1", linkEthernet, `filter: "3" at column 8 is not a load size (1, 2 or 4)`},
		{"ip[0] / 0 = 1", linkEthernet, `filter: "/" at column 7 divides by zero`},
		{"ip[0] << 32 = 1", linkEthernet, `filter: "<<" at column 7 shifts by more than 31 bits`},
		{"ah[0] = 1", linkEthernet, `filter: "ah" at column 1 cannot be indexed (ether, ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp, igrp, pim, vrrp and carp can)`},
		{`ip proto \foo`, linkEthernet, `filter: "foo" at column 10 is not a protocol name this compiler knows (use the number)`},
		{"tcp proto 6", linkEthernet, `filter: "tcp" at column 1 cannot qualify proto 6 (ip, ip6 and ether can)`},
		{"ether proto 100", linkEthernet, `filter: "100" at column 13 asks for Ethernet type 100: 802.2 LLC SAP values and AppleTalk types are not supported`},
		{"icmp6 port 80", linkEthernet, `filter: "icmp6" at column 1 cannot qualify port (tcp, udp and sctp can)`},
		{"ip broadcast", linkEthernet, `filter: "broadcast" at column 4 after ip needs the capture's netmask, which a filter compiled here does not have`},
		{"broadcast", linkIPv4, `filter: "broadcast" at column 1 needs Ethernet frames (raw IPv4 frames have no link-layer destination)`},
		{"ether", linkEthernet, `filter: "ether" at column 1 needs something after it (ether host, ether src, ether dst, ether proto, ether[...])`},
		{"$1f", linkEthernet, `filter: "$1f" at column 1 is an ARCnet address, which tcpsentry's filter compiler does not support (` + supportedList + `)`},
		{"tcp", 105, `filter: link type 105 is not supported (supported: 0 BSD loopback, 1 Ethernet, 101/228/229 raw IP, 108 OpenBSD loopback, 113 Linux SLL, 276 Linux SLL2)`},
		{strings.Repeat("(", 101) + "tcp" + strings.Repeat(")", 101), linkEthernet, `filter: brackets at column 101 nested more than 100 deep`},
	} {
		prog, err := Compile(tc.expr, tc.link, Options{})
		if err == nil {
			t.Errorf("Compile(%q, %d) = %d instructions, want error %q", tc.expr, tc.link, len(prog), tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Compile(%q, %d):\n got %s\nwant %s", tc.expr, tc.link, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Compile(%q): error is not one line", tc.expr)
		}
	}
}

func TestEmptyExpression(t *testing.T) {
	for _, e := range []string{"", " ", "\t \n"} {
		prog, err := Compile(e, linkEthernet, Options{})
		if prog != nil || err != nil {
			t.Errorf("Compile(%q) = %v, %v; want nil, nil", e, prog, err)
		}
	}
	p, err := New(nil)
	if err != nil || !p.Match(nil, 0) || !p.Match([]byte{1, 2, 3}, 3) {
		t.Errorf("New(nil) must match everything (err %v)", err)
	}
}

// TestCompileLongRuns: long runs of the characters addresses are made of
// are lexed in time linear in their length. FuzzCompile found a filter of
// 2,814 colons that took two minutes to be refused: every position of the
// run tried every longer prefix as an IPv6 address. Here each run is
// 20,000 characters, which the old lexer would have taken about an hour
// over (the test then fails by its timeout), and each must still give
// one line of error.
func TestCompileLongRuns(t *testing.T) {
	for _, base := range []string{":", "a:", "ab:", "1", "1.", "a-", "0x", "f"} {
		expr := strings.Repeat(base, 20000/len(base))
		for _, e := range []string{expr, "d" + expr + "st((((((((", "host " + expr} {
			_, err := Compile(e, 1, Options{})
			if err == nil || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q x %d: error %v; want one line", base, 20000/len(base), err)
			}
		}
	}
}
