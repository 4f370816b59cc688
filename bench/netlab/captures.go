package netlab

import (
	"errors"
	"fmt"
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

// ExpectedEvent is one event the sensor must report for a capture.
type ExpectedEvent struct {
	Action, Reason string
	// Client is event source; port 0 for aggregate events (failed_connection_rate,
	// rst_storm) which name only the top client's address.
	Client netip.AddrPort
	Server netip.AddrPort
	Count  int // tcpsentry.count when > 0 (rate-limited folds); 0 = not checked
}

// ShippedCapture describes one capture in the repository's testdata/:
// how GenerateScenario makes it, and what is in it.
type ShippedCapture struct {
	File   string // name under testdata/; ".pcap.gz" is written gzip-compressed
	Title  string
	Side   Side   // namespace tcpdump runs in
	Iface  string // tcpdump -i
	Filter string // tcpdump filter expression
	Link   layers.LinkType
	Listen []int // ports a plain Listener serves in the server namespace
	Drop   []int // ports dropped in the server namespace
	Dials  []Dial
	Conns  []Expected // in the order of their first packet; nil: not checked per connection

	// Setup prepares the namespaces before the capture starts, beyond
	// Listen and Drop (Listeners with a ListenConfig, sysctls, iptables
	// rules). It runs on the test goroutine and may fail the test.
	Setup func(l *Lab)
	// Run drives the traffic instead of MustConnect(Dials...) when set
	// (crafted clients, concurrency, timing). It may use goroutines; an
	// error fails the generation.
	Run func(l *Lab) error
	// Expect, when non-nil, is the complete list of expected events, used
	// instead of the events of Conns (see Want).
	Expect []ExpectedEvent
	// Check proves that a capture shows the story, packet by packet (SYN/ACKs
	// re-sent, RSTs, bare ACKs, ...). CheckFile runs it on every generated
	// and every committed file, so it must hold however the kernel's timing
	// falls.
	Check func(tr *Trace) error
	// Facts, when set, tells in words what the kernel did in the capture
	// (for the README section).
	Facts func(tr *Trace) string
	// PartialChecksums says the capture carries the partial TCP checksums
	// of checksum offload (captures on lo, whose offload cannot be turned
	// off); otherwise every checksum must verify.
	PartialChecksums bool

	Description string
}

// Events returns the events the sensor must report for c, in order: Expect
// when it is non-nil (Outcome empty), else those of Conns.
func (c ShippedCapture) Events() []Expected {
	var ev []Expected
	if c.Expect != nil {
		for _, e := range c.Expect {
			ev = append(ev, Expected{Client: e.Client, Server: e.Server, Action: e.Action, Reason: e.Reason})
		}
		return ev
	}
	for _, e := range c.Conns {
		if e.Action != "" {
			ev = append(ev, e)
		}
	}
	return ev
}

// Want returns the complete list of events the sensor must report for c:
// Expect if non-nil, else the events of Conns (with Count 0).
func (c ShippedCapture) Want() []ExpectedEvent {
	if c.Expect != nil {
		return c.Expect
	}
	var ev []ExpectedEvent
	for _, e := range c.Conns {
		if e.Action != "" {
			ev = append(ev, ExpectedEvent{Action: e.Action, Reason: e.Reason, Client: e.Client, Server: e.Server})
		}
	}
	return ev
}

// CheckFile checks the capture at path against c: its link type, its
// checksums, its connections (when Conns is set) and c.Check.
func (c ShippedCapture) CheckFile(path string) error {
	tr, err := ReadTrace(path)
	if err != nil {
		return err
	}
	var errs []error
	if tr.Link != c.Link {
		errs = append(errs, fmt.Errorf("link type %v, want %v", tr.Link, c.Link))
	}
	if n := tr.BadChecksums(); n > 0 && !c.PartialChecksums {
		errs = append(errs, fmt.Errorf("%d segments with a wrong TCP checksum (was transmit offload on?)", n))
	}
	if c.Conns != nil {
		errs = append(errs, c.checkConns(tr.Conns)...)
	}
	if c.Check != nil {
		if err := c.Check(tr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// checkConns compares a capture's connections with c.Conns (and the
// clean ones' response bytes with c.Dials).
func (c ShippedCapture) checkConns(conns []Conn) []error {
	if len(conns) != len(c.Conns) {
		return []error{fmt.Errorf("%d connections, want %d", len(conns), len(c.Conns))}
	}
	var errs []error
	for i, got := range conns {
		w := c.Conns[i]
		if got.Client != w.Client || got.Server != w.Server || got.Outcome() != w.Outcome {
			errs = append(errs, fmt.Errorf("connection %d is %v; want client %v -> server %v %s", i, got, w.Client, w.Server, w.Outcome))
		}
		switch w.Outcome {
		case OutcomeRefused:
			if got.SYNs != 1 || got.ServerRSTACKs != 1 || got.Packets != 2 {
				errs = append(errs, fmt.Errorf("refused connection %d: want SYN, RST/ACK: %v", i, got))
			}
		case OutcomeUnanswered:
			if got.SYNs != 4 || got.Packets != 4 {
				errs = append(errs, fmt.Errorf("unanswered connection %d: want 4 SYNs: %v", i, got))
			}
		case OutcomeFIN, OutcomeRST:
			if i >= len(c.Dials) {
				break
			}
			d := c.Dials[i]
			if got.ServerBytes != d.Exchanges*d.Response || got.SYNs != 1 || got.SYNACKs != 1 {
				errs = append(errs, fmt.Errorf("clean connection %d: want 1 SYN, 1 SYN/ACK, %d response bytes: %v", i, d.Exchanges*d.Response, got))
			}
			if w.Outcome == OutcomeRST && (got.ClientRSTs != 1 || got.ServerRSTs != 0) {
				errs = append(errs, fmt.Errorf("connection %d: want one RST from the client: %v", i, got))
			}
		}
	}
	return errs
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
