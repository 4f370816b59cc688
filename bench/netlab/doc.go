// Package netlab is a test lab of real Linux TCP stacks: two network
// namespaces, client and server, joined by a veth pair, with helpers to run
// servers and clients in them, make connections fail in known ways, and
// capture the traffic with tcpdump. The sensor's end-to-end tests and the
// captures in testdata/ are made with it.
//
// # Layout
//
// New(t) creates namespaces "tsn-<random>-c" and "tsn-<random>-s" and a
// veth pair named eth0 on both sides:
//
//	client  10.213.0.1/24  fd00:213::1/64  02:00:0a:d5:00:01
//	server  10.213.0.2/24  fd00:213::2/64  02:00:0a:d5:00:02
//
// IPv6 addresses skip duplicate address detection, neighbours are static
// (no ARP or neighbour discovery on the wire), lo is up, and transmit
// checksum offload is off (when ethtool is installed), so captures carry
// correct checksums. The client retransmits SYNs 1 s apart
// (tcp_syn_linear_timeouts). Labs share nothing, so the fixed addresses
// never collide and tests may run in parallel. The lab only sends traffic
// inside its own namespaces.
//
// t.Cleanup kills every process the lab started and deletes both
// namespaces (and so the veth and any iptables rules), also when the test
// fails. A test binary killed outright leaves them behind:
//
//	for ns in $(ip netns list | awk '/^tsn-/ {print $1}'); do ip netns del $ns; done
//
// # Privileges
//
// The lab needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and the commands ip
// (iproute2), taskset (util-linux), tcpdump (for Capture), iptables and
// ip6tables (for Drop; iptables-nft works inside a namespace), and
// optionally ethtool. When it cannot run, New calls t.Skip with the
// reason — or t.Fatal when CI=true, where a skip would hide a broken setup
// (see Unavailable).
//
// # Helpers run in the namespaces
//
// Servers and clients are this test binary, run again under
// `ip netns exec NS taskset -c CPU BINARY` with NETLAB_HELPER set (pinned
// to one CPU: veth may reorder a flow's packets when its endpoints run on
// different CPUs). So every package that uses the lab must start TestMain
// with Main:
//
//	func TestMain(m *testing.M) {
//		netlab.Main()
//		os.Exit(m.Run())
//	}
//
// # Use
//
//	lab := netlab.New(t)
//	lab.Listen(8080, netlab.ListenConfig{})          // server: answers requests
//	lab.Drop(9090)                                   // iptables/ip6tables DROP
//	c := lab.Capture(netlab.Client, netlab.Iface, "", "tcp")
//	lab.MustConnect(
//		netlab.Dial{To: netip.AddrPortFrom(netlab.ServerV4, 8080), From: 40001,
//			Exchanges: 2, Request: 100, Response: 1000, Close: netlab.CloseServer},
//		netlab.Dial{To: netip.AddrPortFrom(netlab.ServerV6, 8080), From: 40002,
//			Exchanges: 1, Response: 500, Close: netlab.CloseReset},
//	)
//	lab.Refused(netip.AddrPortFrom(netlab.ServerV4, 7211), 40003)    // SYN, RST/ACK
//	lab.Unanswered(netip.AddrPortFrom(netlab.ServerV4, 9090), 40004) // 4 SYNs, 3.5 s
//	c.Stop()
//	// c.Path is the pcap; netlab.Summarize(c.Path) lists its connections.
//
// Capture returns once tcpdump listens; Stop waits 200 ms for packets in
// flight, stops tcpdump with SIGINT so the tail is written, and waits for
// it. Capture on "any" writes LINUX_SLL2.
//
// Connections of one Connect call run one after another, each ended on the
// wire before the next starts; their requests are lines
// "TSN <response-bytes> <keep|client|server|reset>" padded to Request
// bytes, which a Listener answers.
//
// ConnectWith runs dials in the server namespace (ConnectConfig.Side, e.g.
// to 127.0.0.1) or all at once (Parallel); Dial.At times a dial from the
// start of its call, Dial.IOTimeout bounds its exchanges. Listeners can
// defer accept (DeferAccept), never accept (NoAccept), accept slowly
// (AcceptDelay, AcceptMax), and a request can ask the server to end the
// connection with a RST (CloseServerReset).
//
// # Crafted clients
//
// Craft runs a Go program of crafted segments (craftScripts) from
// CraftedV4 (10.213.0.3), an address no namespace owns: it writes frames
// onto the client namespace's eth0 with a packet socket and reads the
// server's answers off it (pcapgo.EthernetHandle); the client kernel drops
// those answers silently, so it never resets a crafted connection. Craft
// adds the server's neighbour entry for CraftedV4. This is how the
// scenarios show what no kernel client does: a translated ACK number,
// ignored RSTs, two TCP timestamp clocks behind one address.
//
// # Shipped captures and the scenario library
//
// ShippedCaptures describes the first captures in testdata/ (dials,
// expected connections and events); TestGenerateCaptures remakes them
// with TCPSENTRY_UPDATE_TESTDATA=1. Scenarios is the scenario library:
// one capture per story of shared/seeds and per detector, each with a
// complete list of expected events (ShippedCapture.Expect, with
// tcpsentry.count for folded events), its own traffic driver (Setup, Run)
// and a packet-level Check of its story, made by TestGenerateScenarios.
// GenerateScenario makes one scenario's capture with a fresh lab, so that
// a test elsewhere can check the sensor's events on a new capture.
// ReadTrace decodes a capture (gzip or not) into segments, connections
// (Summarize) and per-attempt Fates; TsharkCount cross-checks raw facts
// with tshark.
package netlab
