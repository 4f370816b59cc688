package netlab

import (
	"net/netip"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// Expected is one connection of a shipped capture and the event the
// sensor must report for it (Action "" = the connection must stay
// silent).
type Expected struct {
	Client, Server netip.AddrPort
	Outcome        string // Conn.Outcome of the connection
	Action, Reason string // event.action and event.reason, or ""
}

// ShippedCapture describes one capture in the repository's testdata/:
// how TestGenerateCaptures makes it, and what is in it.
type ShippedCapture struct {
	File        string // name under testdata/
	Title       string
	Side        Side   // namespace tcpdump runs in
	Iface       string // tcpdump -i
	Filter      string // tcpdump filter expression
	Link        layers.LinkType
	Listen      []int // ports a Listener serves in the server namespace
	Drop        []int // ports dropped in the server namespace
	Dials       []Dial
	Conns       []Expected // in the order of their first packet
	Description string
}

// Events returns the events the sensor must report for c, in order.
func (c ShippedCapture) Events() []Expected {
	var ev []Expected
	for _, e := range c.Conns {
		if e.Action != "" {
			ev = append(ev, e)
		}
	}
	return ev
}

// The lab's server ports in the shipped captures.
const (
	PortClean   = 8080 // a Listener
	PortRefused = 7211 // nothing listens (seeds/002's port)
	PortDropped = 9090 // iptables/ip6tables DROP
)

func v4(port uint16) netip.AddrPort { return netip.AddrPortFrom(ServerV4, port) }
func v6(port uint16) netip.AddrPort { return netip.AddrPortFrom(ServerV6, port) }
func c4(port uint16) netip.AddrPort { return netip.AddrPortFrom(ClientV4, port) }
func c6(port uint16) netip.AddrPort { return netip.AddrPortFrom(ClientV6, port) }

func clean(from uint16, to netip.AddrPort, exchanges, resp int, close Close, pause time.Duration) Dial {
	return Dial{To: to, From: from, Exchanges: exchanges, Request: 78, Response: resp, Close: close, Pause: pause}
}

func refused(from uint16, to netip.AddrPort) Dial { return Dial{To: to, From: from} }

func dropped(from uint16, to netip.AddrPort) Dial {
	return Dial{To: to, From: from, UserTimeout: UnansweredTimeout}
}

func silent(c, s netip.AddrPort, outcome string) Expected {
	return Expected{Client: c, Server: s, Outcome: outcome}
}

func refusedEv(c, s netip.AddrPort) Expected {
	return Expected{Client: c, Server: s, Outcome: OutcomeRefused, Action: "connection_refused", Reason: "no_listener"}
}

func unansweredEv(c, s netip.AddrPort) Expected {
	return Expected{Client: c, Server: s, Outcome: OutcomeUnanswered, Action: "syn_unanswered", Reason: "silent_drop"}
}

// ShippedCaptures are the captures in testdata/, made by
// TestGenerateCaptures (TCPSENTRY_UPDATE_TESTDATA=1) and checked by
// TestShippedCaptures.
var ShippedCaptures = []ShippedCapture{
	{
		File:   "demo.pcap",
		Title:  "the README demo",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Listen: []int{PortClean},
		Drop:   []int{PortDropped},
		Dials: []Dial{
			clean(40001, v4(PortClean), 1, 512, CloseClient, 0),
			clean(40002, v4(PortClean), 1, 1024, CloseServer, 0),
			clean(40003, v4(PortClean), 2, 256, CloseClient, 0),
			clean(40004, v6(PortClean), 1, 512, CloseClient, 0),
			refused(40005, v4(PortRefused)),
			dropped(40006, v4(PortDropped)),
		},
		Conns: []Expected{
			silent(c4(40001), v4(PortClean), OutcomeFIN),
			silent(c4(40002), v4(PortClean), OutcomeFIN),
			silent(c4(40003), v4(PortClean), OutcomeFIN),
			silent(c6(40004), v6(PortClean), OutcomeFIN),
			refusedEv(c4(40005), v4(PortRefused)),
			unansweredEv(c4(40006), v4(PortDropped)),
		},
		Description: "Three clean IPv4 connections (requests of 78 bytes, responses of 512, 1024 and 2x256 bytes; " +
			"the second closed by the server first, the others by the client), one clean IPv6 connection, " +
			"one connection to a port nothing listens on (the client gets a RST/ACK) and one SYN to a port " +
			"behind iptables DROP (sent at 0, 1, 2 and 3 s, never answered; the client gives up at 3.5 s).",
	},
	{
		File:   "clean.pcap",
		Title:  "clean connections only",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Listen: []int{PortClean},
		Dials: []Dial{
			clean(40101, v4(PortClean), 1, 512, CloseClient, 0),
			clean(40102, v4(PortClean), 1, 512, CloseServer, 0),
			clean(40103, v4(PortClean), 4, 300, CloseClient, 200*time.Millisecond),
			clean(40104, v4(PortClean), 2, 400, CloseReset, 0),
			clean(40105, v6(PortClean), 1, 512, CloseClient, 0),
			clean(40106, v6(PortClean), 3, 300, CloseServer, 200*time.Millisecond),
			clean(40107, v6(PortClean), 2, 400, CloseReset, 0),
		},
		Conns: []Expected{
			silent(c4(40101), v4(PortClean), OutcomeFIN),
			silent(c4(40102), v4(PortClean), OutcomeFIN),
			silent(c4(40103), v4(PortClean), OutcomeFIN),
			silent(c4(40104), v4(PortClean), OutcomeRST),
			silent(c6(40105), v6(PortClean), OutcomeFIN),
			silent(c6(40106), v6(PortClean), OutcomeFIN),
			silent(c6(40107), v6(PortClean), OutcomeRST),
		},
		Description: "Only normal traffic, which must stay silent: per address family a connection closed by the " +
			"client, one closed by the server, a keep-alive connection (IPv4: 4 request/response exchanges " +
			"200 ms apart; IPv6: 3, closed by the server), and one whose finished exchange is ended by the " +
			"client's RST (SO_LINGER 0 close).",
	},
	{
		File:   "refused_any.pcap",
		Title:  "refused and unanswered attempts on -i any (LINUX_SLL2)",
		Side:   Client,
		Iface:  "any",
		Filter: "tcp",
		Link:   layers.LinkTypeLinuxSLL2,
		Listen: []int{PortClean},
		Drop:   []int{PortDropped},
		Dials: []Dial{
			refused(40201, v4(PortRefused)),
			refused(40202, v6(PortRefused)),
			dropped(40203, v4(PortDropped)),
			dropped(40204, v6(PortDropped)),
			clean(40205, v4(PortClean), 1, 512, CloseClient, 0),
		},
		Conns: []Expected{
			refusedEv(c4(40201), v4(PortRefused)),
			refusedEv(c6(40202), v6(PortRefused)),
			unansweredEv(c4(40203), v4(PortDropped)),
			unansweredEv(c6(40204), v6(PortDropped)),
			silent(c4(40205), v4(PortClean), OutcomeFIN),
		},
		Description: "Captured with `tcpdump -i any` in the client namespace (link type LINUX_SLL2): a refused " +
			"connection and an unanswered SYN (4 SYNs, 1 s apart) for IPv4 and for IPv6, then one clean IPv4 " +
			"connection that must stay silent.",
	},
}
