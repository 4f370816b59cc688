// Package filter compiles tcpdump filter expressions (pcap-filter(7)) to
// classic BPF in pure Go, so the default build needs neither cgo nor
// libpcap. Live capture attaches the program to its AF_PACKET sockets
// (SO_ATTACH_FILTER); replay runs the same program over each frame with
// Program.Match, this package's interpreter, which gives "len", "less"
// and "greater" the frame's length on the wire as libpcap's bpf_filter
// does for tcpdump -r (x/net/bpf's VM knows only the captured length).
//
// The program for an expression and a link type accepts the frames
// libpcap's accepts. The compiler follows libpcap 1.10's grammar.y and
// gencode.c: the same precedence (and and or equal, left to right), the
// same qualifiers inherited by a bare id ("port 80 or 443"), the same
// tests in the same order. Order matters beyond whole frames: a load past
// the end of a cut frame rejects the frame at once, so which test runs
// first decides a short frame's fate. Some of libpcap's details are kept
// for that reason: IPv4 port tests check the fragment offset and read
// the ports behind the IHL (ldxb 4*([14]&0xf)); IPv6 reads ports at a
// fixed 40 bytes and "tcp" looks through a fragment header only; "vlan"
// moves the type and payload offsets of everything compiled after it,
// even after "not" or "or"; "1 + tcp[0] = 1" has no protocol test. The
// optimizer copies libpcap's where a copy changes a verdict: tests whose
// outcome is known on an edge are jumped over, tests whose two edges meet
// vanish with their loads, and or/and chains are reordered as libpcap's
// or_pullup and and_pullup do (a test of the value A already holds moves
// ahead, so a later load past the end no longer rejects). Where libpcap's
// optimizer proves a part of an expression constant that this one does
// not (contradictions spread across several tests), libpcap drops that
// part's loads and a frame too short for one of them can be accepted by
// libpcap and rejected here. The tests meet this only in random
// combinations, not in the fixed list of TestDifferential.
//
// Link types: 0 and 108 (BSD and OpenBSD loopback), 1 (Ethernet, with
// 802.1Q/802.1ad tags in the frame, or in metadata with
// Options.KernelVLAN), 101, 228 and 229 (raw IP), 113 and 276 (Linux SLL
// and SLL2). Not supported, each refused by name: host and port names
// (no DNS, no /etc/services), gateway, protochain, decnet and the other
// non-IP protocols, wlan and 802.11, mpls, pppoe, geneve, inbound and
// outbound, byte, "ip broadcast" (it needs the netmask), and Ethernet
// types of 1500 and below (802.2 LLC).
//
// Cost, measured against libpcap 1.10.3's optimized programs (tcpdump
// -ddd) over the 15704 Ethernet frames of the test corpus, on the 2-core
// development machine; steps are instructions executed per frame, the
// times are per frame, the median of 7 runs: Program.Match (this
// package's interpreter), and x/net/bpf's VM, which Match used before it,
// on the same programs:
//
//	expression                          insns ours/libpcap  steps ours/libpcap  Match  x/net/bpf VM
//	tcp                                 12 / 12             4.88 / 4.88         17 ns  39 ns
//	tcp port 80                         20 / 20             8.73 / 8.73         26 ns  69 ns
//	tcp and not port 22                 23 / 23             8.64 / 8.64         26 ns  65 ns
//	host 10.0.0.1 and tcp port 443      17 / 17             4.82 / 4.82         17 ns  38 ns
//	tcp[tcpflags] & (tcp-rst) != 0      11 / 11             5.83 / 5.83         18 ns  44 ns
//
// The programs are as short and as fast as libpcap's, so calling libpcap
// through cgo would buy nothing in the kernel and cost the cgo-free
// build. Reproduce with
//
//	go test -run NONE -bench BenchmarkFilter -benchtime 100x ./ring/filter
package filter
