package filter

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// differentialExprs covers every primitive, the qualifier rules and the
// arithmetic, alone and combined. Each runs on every link type.
var differentialExprs = []string{
	// Protocols.
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp", "igrp", "pim", "vrrp", "carp", "ah", "esp",
	`ether proto 0x800`, `ether proto \ip`, `ether proto \ip6`, `ether proto \arp`, `ether proto 0x88cc`, `link proto \rarp`,
	`ip proto 6`, `ip proto \tcp`, `ip proto \udp`, `ip proto \icmp`, `ip6 proto 17`, `ip6 proto 58`, `proto 6`, `proto \udp`,
	`ip6 proto \ipv6-icmp`, `ip proto 256`,
	// Hosts and nets, v4 and v6.
	"host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "src or dst host 10.0.0.1", "src and dst host 127.0.0.1",
	"host 10.0.0.1 or 10.0.0.2", "host 10.0.0.1 and not 10.0.0.2", "ip host 192.168.1.1", "arp host 10.0.0.1",
	"rarp dst host 10.0.0.2", "src 10.0.0.1", "host 80", "host 10.0",
	"host ::1", "host 2001:db8::1", "ip6 src host 2001:db8::1", "dst host fe80::1", "ip6 dst ff02::1", "src or dst host ::1",
	"net 10.0.0.0/8", "net 192.168.1", "net 10", "src net 192.168.0.0 mask 255.255.0.0", "dst net 127.0.0.0/8",
	"net 2001:db8::/32", "ip6 net fe80::/10", "net ::/0", "net 0.0.0.0/0", "net 10.0.0.0/8 or 192.168.0.0/16", "net 2001:db8::2/127",
	// Ports.
	"port 80", "port 80 or 443", "port 80 or port 443", "src port 80", "dst port 443", "tcp port 80", "udp port 53",
	"tcp src port 80", "udp dst port 53", "sctp port 80", "src or dst port 22", "src and dst port 22", "port 0x50", "port 0120",
	"portrange 80-90", "tcp portrange 1-1024", "udp portrange 1024-65535", "portrange 90-80", "portrange 80", "src portrange 80-85",
	"tcp and not port 22", "tcp port 80 and not port 22", "not port 22", "port 80 and not 443", "not port 80 or 443",
	// Link layer.
	"ether host 00:11:22:33:44:55", "ether src 00:11:22:33:44:55", "ether dst ff:ff:ff:ff:ff:ff", "ether src host 02-00-00-00-00-02",
	"ether dst 0011.2233.4455", "ether host 001122334455", "ether src and dst 0:11:22:33:44:55",
	"ether broadcast", "ether multicast", "broadcast", "multicast", "ip multicast", "ip6 multicast",
	// Lengths.
	"less 60", "greater 100", "len > 60", "len <= 54", "less 60 and tcp", "length >= 80 and not greater 200",
	// TCP flags and other fields.
	"tcp[tcpflags] & (tcp-rst) != 0",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] & 2 != 0", "tcp[13] = 0x12",
	"tcp[tcpflags] & tcp-fin != 0 or tcp[tcpflags] & tcp-rst != 0", "tcp[tcpflags] & (tcp-ece|tcp-cwr) != 0",
	"tcp[tcpflags] & tcp-urg != 0 and tcp[tcpflags] & tcp-push != 0", "tcp[tcpflags] & tcp-ack = 0",
	"tcp[0:2] = 80", "tcp[2:2] > 1023", "tcp[4:4] = 1000", "udp[0:2] = 53", "udp[8:2] = 0", "udp[4:2] < 9",
	"icmp[icmptype] = icmp-echo", "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply", "icmp[icmpcode] = 3",
	"icmp6[icmp6type] = icmp6-echo", "icmp6[0] = 135", "icmp6[icmp6code] > 0",
	"ip[0] & 0xf != 5", "ip[0] & 0xf > 5", "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[8] < 64", "ip[2:2] > 100",
	"ip[9] = 6", "ip6[6] = 6", "ip6[7] = 64", "ether[12:2] = 0x8100", "ether[0] & 1 = 1", "arp[7] = 2", "ether[6:4] = 0x00112233",
	"ip[16] >= 224", "ip[-1] = 1", "ip[100] & 0 = 0 or tcp",
	// Arithmetic.
	"tcp[((tcp[12] & 0xf0) >> 2)] = 0x47", "tcp[(tcp[12] >> 4) * 4:4] = 0x47455420",
	"ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0",
	"len - 14 = ip[2:2]", "ip[2:2] / 2 > 20", "ip[2:2] % 7 = 3", "tcp[0:2] ^ tcp[2:2] = 0", "tcp[13] | 1 = 0x13",
	"-ip[0] = 0xffffffbb", "1 + tcp[0] = 1", "tcp[0] + udp[0] = 0", "ip[100] = 1 or tcp", "tcp[tcp[0]] = 0",
	"tcp[0:2] * 2 - 100 > 2 * tcp[2:2]", "ip[2:2] >> 1 & 0x7f = ip[0] & 0x7f", "udp[0:2] = udp[2:2]", "len < ip[2:2] + 14",
	"1 = 1", "2 > 3 or tcp",
	// VLAN, in the frame.
	"vlan", "vlan 100", "vlan and ip", "vlan 100 and tcp port 80", "vlan and vlan 200", "vlan 200 or vlan 100",
	"not vlan and ip", "ip or vlan", "vlan and host 10.0.0.1", "vlan 100 and ether[14:2] & 0xfff = 100", "vlan and ip6 and tcp",
	"vlan 100 and vlan 200 and tcp[13] & 4 != 0",
	// Combinations and the implicit qualifiers.
	"(tcp or udp) and port 53", "tcp and (port 80 or port 443)", "host 10.0.0.1 and tcp port 443", "not (port 22 or port 80)",
	"!tcp && ip", "tcp || udp && port 53", "ip and not ip6", "port 80 or (host 10.0.0.1) or 443", "port 80 or (!443 or 8080)",
	"ip6 and tcp and port 80", "ip6[40 + 13] & 2 != 0", "tcp and ip[6:2] & 0x1fff = 0 and tcp[13] & 4 != 0",
	"src host 10.0.0.1 and (dst port 80 or 443)", "tcp and not (src net 10.0.0.0/8 or dst net ::1/128)",
	"not not tcp", "(((tcp)))", "host 10.0.0.1 or host ::1 or ether host 00:11:22:33:44:55",
}

// TestDifferential compares, for every expression and link type, the
// verdict of our program with that of libpcap's (tcpdump -ddd) on every
// frame of the corpus.
func TestDifferential(t *testing.T) {
	requireTcpdump(t)
	if len(differentialExprs) < 80 {
		t.Fatalf("only %d expressions", len(differentialExprs))
	}
	for _, link := range allLinks {
		t.Run(linkName(link), func(t *testing.T) {
			t.Parallel()
			frames := corpus(t, link)
			for _, expr := range differentialExprs {
				compareWithLibpcap(t, expr, link, frames)
			}
		})
	}
}

func compareWithLibpcap(t *testing.T, expr string, link uint16, frames []frame) {
	t.Helper()
	want := libpcap(t, expr, link)
	got, err := Compile(expr, link, Options{})
	switch {
	case want.err != "" && err != nil:
		return // both refuse
	case want.err == "expression rejects all packets" && err == nil:
		// libpcap's optimizer refuses a filter that can never match; ours
		// compiles it, and it must match nothing.
		p := mustNew(t, got)
		for _, f := range frames {
			if p.Match(f.data, len(f.data)) {
				t.Errorf("%q on %s: libpcap says it rejects all packets, ours accepts %s", expr, linkName(link), f.name)
				return
			}
		}
		return
	case want.err != "":
		t.Errorf("%q on %s: libpcap refuses (%s), ours compiles", expr, linkName(link), want.err)
		return
	case err != nil:
		t.Errorf("%q on %s: libpcap compiles, ours refuses: %v", expr, linkName(link), err)
		return
	}
	p := mustNew(t, got)
	vm, oursVM := vmFor(want.prog), vmFor(got)
	for _, f := range frames {
		for i, wire := range wireLens(len(f.data)) {
			theirs, _, err := run(want.prog, f.data, meta{wirelen: wire})
			if err != nil {
				t.Fatalf("%q on %s: libpcap's program: %v", expr, linkName(link), err)
			}
			ours := checkMatch(t, p, got, f.data, wire)
			if ours != (theirs != 0) {
				t.Errorf("%q on %s: frame %s (%d bytes, %d on the wire): ours %v, libpcap %v\nours:\n%s\nlibpcap:\n%s",
					expr, linkName(link), f.name, len(f.data), wire, ours, theirs != 0, disasm(got), disasm(want.prog))
				return
			}
			if i > 0 {
				continue // the VM has no length on the wire
			}
			// The test interpreter reading libpcap's programs, and Match
			// reading ours, must agree with the VM wherever it can run
			// them.
			if vm != nil {
				if n, err := vm.Run(f.data); err != nil || uint32(n) != theirs {
					t.Fatalf("interpreter %d, VM %d (%v) on %q frame %s", theirs, n, err, expr, f.name)
				}
			}
			if oursVM != nil {
				if n, err := oursVM.Run(f.data); err != nil || (n != 0) != ours {
					t.Fatalf("Match %v, VM %d (%v) on %q frame %s\n%s", ours, n, err, expr, f.name, disasm(got))
				}
			}
		}
	}
}

// wireLens are the lengths on the wire the tests give a frame of n
// bytes: n first, then 0 (which counts as n) and lengths past n, as in a
// capture cut to a snap length.
func wireLens(n int) [4]int { return [4]int{n, 0, n + 64, n + 1500} }

// checkMatch returns p.Match(frame, wire), after checking it against the
// test interpreter running prog, p's program: the same verdict, and the
// same accept length from p's interpreter.
func checkMatch(t testing.TB, p *Program, prog []bpf.RawInstruction, frame []byte, wire int) bool {
	t.Helper()
	want, _, err := run(prog, frame, meta{wirelen: wire})
	if err != nil {
		t.Fatalf("New accepted a program the test interpreter cannot run: %v\n%s", err, disasm(prog))
	}
	got, n := p.Match(frame, wire), want
	if len(prog) > 0 {
		n = p.run(frame, uint32(max(wire, len(frame))))
	}
	if got != (want != 0) || n != want {
		t.Fatalf("frame % x (%d on the wire): Match %v (returned %d), test interpreter %d\n%s", frame, wire, got, n, want, disasm(prog))
	}
	return got
}

func mustNew(t testing.TB, prog []bpf.RawInstruction) *Program {
	t.Helper()
	p, err := New(prog)
	if err != nil {
		t.Fatalf("New: %v\n%s", err, disasm(prog))
	}
	return p
}

// vmFor is x/net/bpf's VM for prog, or nil when it cannot run it (neg,
// ancillary loads) or runs it otherwise than libpcap (ldx #len, which it
// disassembles as ld #len).
func vmFor(prog []bpf.RawInstruction) *bpf.VM {
	insns, ok := bpf.Disassemble(prog)
	if !ok {
		return nil
	}
	for i, in := range insns {
		if _, ok := in.(bpf.NegateA); ok {
			return nil // the VM lists it but cannot run it
		}
		if prog[i].Op == bpfLDX|bpfW|bpfLEN {
			return nil
		}
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil
	}
	return vm
}

func disasm(prog []bpf.RawInstruction) string {
	var b strings.Builder
	for i, ri := range prog {
		fmt.Fprintf(&b, "%3d  %v\n", i, ri.Disassemble())
	}
	return b.String()
}
