package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// Server ports of the scenario library (one story each).
const (
	PortDeferAccept = 8082 // TCP_DEFER_ACCEPT 1 s (seeds/000's retransmitted SYN/ACK)
	PortOverflow    = 8083 // backlog 1, never accepts
	PortSeed000     = 8084 // TCP_DEFER_ACCEPT, crafted client with a translated ACK
	PortSeed001     = 8085 // two TCP clocks behind one address
	PortRSTStorm    = 8086 // answers, then resets
)

// Scenarios are the scenario library: one capture per story of
// shared/seeds (and per detector of DESIGN.md §4), made by
// TestGenerateScenarios (TCPSENTRY_UPDATE_TESTDATA=1) and checked by
// TestShippedCaptures. Each has a complete Expect list.
var Scenarios = []ShippedCapture{
	deferAcceptScenario(),
	acceptOverflowScenario(),
	refusedRateScenario(),
	refusedLoScenario(),
	seed000Scenario(),
	seed001Scenario(),
	rstStormScenario(),
	cleanManyScenario(),
}

// ev is an ExpectedEvent.
func ev(action, reason string, client, server netip.AddrPort, count int) ExpectedEvent {
	return ExpectedEvent{Action: action, Reason: reason, Client: client, Server: server, Count: count}
}

// fatesOf returns the fates of the attempts to server, by client port,
// and fails when the ports are not exactly want.
func fatesOf(tr *Trace, server netip.AddrPort, want ...uint16) (map[uint16]Fate, error) {
	fates := tr.Fates(server)
	byPort := map[uint16]Fate{}
	for _, f := range fates {
		if _, dup := byPort[f.Client.Port()]; dup {
			return nil, fmt.Errorf("client port %d used twice to %v", f.Client.Port(), server)
		}
		byPort[f.Client.Port()] = f
	}
	want = slices.Sorted(slices.Values(want))
	if got := ports(fates); !slices.Equal(got, want) {
		return nil, fmt.Errorf("attempts to %v from ports %v, want %v", server, got, want)
	}
	return byPort, nil
}

// portRange returns n ports from first on.
func portRange(first uint16, n int) []uint16 {
	p := make([]uint16, n)
	for i := range p {
		p[i] = first + uint16(i)
	}
	return p
}

// cleanFate reports why f is not a whole, answered connection (one SYN,
// one SYN/ACK, the answer, both FINs or the client's RST).
func cleanFate(f Fate, answer int) error {
	switch {
	case f.SYNs != 1 || f.SYNACKs != 1:
		return fmt.Errorf("%v: want 1 SYN and 1 SYN/ACK", f)
	case f.ServerBytes != answer:
		return fmt.Errorf("%v: want an answer of %d bytes", f, answer)
	case f.ServerRST || !(f.ClientFIN && f.ServerFIN || f.ClientRST):
		return fmt.Errorf("%v: want a FIN close (or the client's RST)", f)
	}
	return nil
}

// fateTable lists fates one a line (for Facts).
func fateTable(tr *Trace, fates []Fate) string {
	var b strings.Builder
	t0 := tr.Segments[0].Time
	for _, f := range fates {
		fmt.Fprintf(&b, "%6.3f s  %v\n", f.First.Sub(t0).Seconds(), f)
	}
	return b.String()
}

// segmentFacts lists the segments between client and server, one a line,
// times from the capture's first segment.
func segmentFacts(tr *Trace, title string, client, server netip.AddrPort) string {
	var b strings.Builder
	t0 := tr.Segments[0].Time
	fmt.Fprintf(&b, "%s:\n\n```\n", title)
	for _, s := range tr.Between(client, server) {
		fmt.Fprintf(&b, "%6.3f s  #%-3d %s\n", s.Time.Sub(t0).Seconds(), s.Frame, s.Line())
	}
	b.WriteString("```\n")
	return b.String()
}

// craftBeside runs the crafted-client script and, at the same time, the
// real clients' dials (one after another, timed by Dial.At), which must
// all complete cleanly.
func (l *Lab) craftBeside(script string, dials ...Dial) error {
	done := make(chan error, 1)
	go func() {
		res, err := l.Connect(dials...)
		for _, r := range res {
			if err == nil && (!r.Connected || r.Err != "") {
				err = fmt.Errorf("netlab: real client beside %s: %+v", script, r)
			}
		}
		done <- err
	}()
	log, err := l.Craft(script)
	derr := <-done
	if err != nil {
		return fmt.Errorf("%w\n%s", err, log)
	}
	return derr
}

// --- 1. defer_accept.pcap -------------------------------------------------

func deferAcceptScenario() ShippedCapture {
	to4, to6 := v4(PortDeferAccept), v6(PortDeferAccept)
	fast := func(from uint16) Dial {
		return Dial{To: to4, From: from, Exchanges: 1, Request: 78, Response: 512}
	}
	slow := func(from uint16, to netip.AddrPort) Dial {
		return Dial{To: to, From: from, Exchanges: 1, Request: 78, Response: 512, Delay: 1500 * time.Millisecond}
	}
	return ShippedCapture{
		File:   "defer_accept.pcap",
		Title:  "TCP_DEFER_ACCEPT: the server re-sends its SYN/ACK to slow talkers",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Setup: func(l *Lab) {
			l.Listen(PortDeferAccept, ListenConfig{DeferAccept: time.Second})
		},
		Dials: []Dial{fast(47001), fast(47002), fast(47003), slow(47004, to4), slow(47005, to6)},
		Expect: []ExpectedEvent{
			ev("synack_retransmit_after_ack", "tcp_defer_accept", c4(47004), to4, 1),
			ev("synack_retransmit_after_ack", "tcp_defer_accept", c6(47005), to6, 1),
		},
		Check: func(tr *Trace) error {
			f4, err := fatesOf(tr, to4, 47001, 47002, 47003, 47004)
			if err != nil {
				return err
			}
			f6, err := fatesOf(tr, to6, 47005)
			if err != nil {
				return err
			}
			var errs []error
			for _, p := range []uint16{47001, 47002, 47003} {
				errs = append(errs, cleanFate(f4[p], 512))
			}
			for _, f := range []Fate{f4[47004], f6[47005]} {
				if f.SYNs != 1 || f.SYNACKIdle < 1 || f.ServerBytes != 512 || !f.ClientFIN || !f.ServerFIN {
					errs = append(errs, fmt.Errorf("slow client %v: want its SYN/ACK re-sent after the handshake ACK, before its request, then a clean exchange", f))
				}
				if d := f.ClientDataAt.Sub(f.HandshakeAt); d < 1400*time.Millisecond {
					errs = append(errs, fmt.Errorf("slow client %v: request %v after the handshake, want 1.5 s", f.Client, d))
				}
			}
			return errors.Join(errs...)
		},
		Description: "A server with TCP_DEFER_ACCEPT (1 s) on port 8082. Three IPv4 clients send their request " +
			"(78 bytes) at once and get 512 bytes back: one SYN/ACK each, silent. One IPv4 and one IPv6 client wait " +
			"1.5 s after the handshake before their request: the server's kernel keeps the connection in SYN_RECV " +
			"(it drops the bare handshake ACK) and re-sends its SYN/ACK about 1 s after its first one; the client " +
			"kernel answers it with a duplicate ACK, which now completes the connection; the request follows at " +
			"1.5 s and is answered normally (the seeds/000 retransmission).",
	}
}

// --- 2. accept_overflow.pcap ----------------------------------------------

// The overflow scenario's clients, by role (all start within 70 ms).
var (
	overflowLate       = portRange(46001, 3)  // handshake ACK and first data lost
	overflowQueued     = portRange(46004, 2)  // fill the accept queue
	overflowUnanswered = portRange(46006, 15) // SYNs dropped: queue full
)

// overflowSynRecv of overflowLate get SYN_RECV entries (the SYN queue of a
// backlog-1 listener holds 2); the others get syncookies.
const overflowSynRecv = 2

func acceptOverflowScenario() ShippedCapture {
	to := v4(PortOverflow)
	var dials []Dial
	add := func(ports []uint16, at time.Duration) {
		for i, p := range ports {
			dials = append(dials, Dial{To: to, From: p, Exchanges: 1, Request: 100, Response: 100,
				UserTimeout: UnansweredTimeout, IOTimeout: 4 * time.Second, At: at + time.Duration(i)*2*time.Millisecond})
		}
	}
	add(overflowLate, 0)
	add(overflowQueued, 20*time.Millisecond)
	add(overflowUnanswered, 40*time.Millisecond)
	return ShippedCapture{
		File:   "accept_overflow.pcap",
		Title:  "a full accept queue (backlog 1, the server never accepts) and 20 clients at once",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Setup: func(l *Lab) {
			l.Sysctl(Server, "net.core.somaxconn", "1")
			l.Listen(PortOverflow, ListenConfig{NoAccept: true})
			// The first three clients' handshake ACK and first data
			// segment (their connection's packets 2 and 3) are lost on
			// the way, so their handshakes complete only after the
			// queue has filled.
			l.Exec(Server, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(PortOverflow),
				"--sport", fmt.Sprintf("%d:%d", overflowLate[0], overflowLate[len(overflowLate)-1]),
				"-m", "connbytes", "--connbytes", "2:3", "--connbytes-dir", "original", "--connbytes-mode", "packets",
				"-j", "DROP")
		},
		Run: func(l *Lab) error {
			if _, err := l.ConnectWith(ConnectConfig{Parallel: true}, dials...); err != nil {
				return err
			}
			// What the description says of the server's kernel.
			want := map[string]int{
				"TcpExtSyncookiesSent":  len(overflowLate) - overflowSynRecv + len(overflowQueued),
				"TcpExtListenOverflows": -1, // some
			}
			return l.checkCounters(Server, want)
		},
		Expect: []ExpectedEvent{
			ev("synack_retransmit_after_ack", "accept_queue_overflow", c4(overflowLate[0]), to, 1),
			ev("synack_retransmit_after_ack", "accept_queue_overflow", c4(overflowLate[1]), to, overflowSynRecv-1),
			// 46003 (a SYN cookie: the server keeps no state and never
			// speaks on it again) ends first, so its event goes out and
			// 46002's report folds the other two.
			ev("request_unanswered", "server_discarding", c4(overflowLate[2]), to, 1),
			ev("request_unanswered", "server_discarding", c4(overflowLate[1]), to, len(overflowLate)-1),
			ev("syn_unanswered", "listen_queue_overflow", c4(overflowUnanswered[0]), to, 1),
			ev("syn_unanswered", "listen_queue_overflow", c4(overflowUnanswered[1]), to, len(overflowUnanswered)-1),
			ev("failed_connection_rate", "listen_queue_overflow", netip.AddrPortFrom(ClientV4, 0), to, 0),
		},
		Check: checkOverflow,
		Facts: func(tr *Trace) string {
			fates := tr.Fates(to)
			return "What the kernel did, per client (" + FateCounts(fates) + "):\n\n```\n" + fateTable(tr, fates) + "```\n"
		},
		Description: "somaxconn 1 in the server namespace, so the listener on port 8083 (which never calls accept) " +
			"queues at most 2 connections; tcp_syncookies is the default (1). 20 IPv4 clients start within 70 ms, " +
			"each sending a 100-byte request (TCP_USER_TIMEOUT 3.5 s, reads given up after 4 s). 46001-46003 come " +
			"first, but their handshake ACK and first data are lost on the way (iptables connbytes drops their " +
			"connection's packets 2 and 3), standing in for a slow path. 46001 and 46002 got SYN_RECV entries (the " +
			"SYN queue of a backlog-1 listener holds two): their data, re-sent 200 ms later, completes the " +
			"handshake after the accept queue has filled, so the kernel drops it (a listen overflow, " +
			"tcp_abort_on_overflow 0) and re-sends its SYN/ACK at 1 s and 3 s while the data stays unACKed until " +
			"the client gives up silently (user timeout). 46003 arrived with the SYN queue full and got a " +
			"syncookie SYN/ACK: its data is dropped the same way but no SYN/ACK is ever re-sent (a cookie keeps " +
			"no state). 46004 and 46005 (also syncookies) complete at once and fill the accept queue: the kernel " +
			"ACKs their requests, nobody answers them, and they close with a FIN after 4 s. The SYNs of " +
			"46006-46020 arrive with the accept queue full and are dropped: 4 SYNs each, never answered, while " +
			"the server keeps re-sending SYN/ACKs on the same port (to 46001 and 46002 at 1 s and 3 s).",
	}
}

func checkOverflow(tr *Trace) error {
	to := v4(PortOverflow)
	all := append(append(append([]uint16{}, overflowLate...), overflowQueued...), overflowUnanswered...)
	fates, err := fatesOf(tr, to, all...)
	if err != nil {
		return err
	}
	var errs []error
	want := func(ports []uint16, what string, ok func(Fate) bool) {
		for _, p := range ports {
			if f := fates[p]; !ok(f) {
				errs = append(errs, fmt.Errorf("%v: want %s", f, what))
			}
		}
	}
	late := func(f Fate) bool {
		return f.SYNs == 1 && f.SYNACKs >= 1 && f.Handshake && f.DataSent == 100 && !f.DataACKed && f.DataRetrans >= 3 && f.ServerBytes == 0
	}
	want(overflowLate[:overflowSynRecv], "its data never ACKed, its SYN/ACK re-sent after the handshake ACK", func(f Fate) bool {
		return late(f) && f.SYNACKAfter >= 1
	})
	want(overflowLate[overflowSynRecv:], "its data never ACKed, no SYN/ACK re-sent (syncookie)", func(f Fate) bool {
		return late(f) && f.SYNACKs == 1
	})
	want(overflowQueued, "established, data ACKed, never answered, closed by a FIN", func(f Fate) bool {
		return f.SYNs == 1 && f.SYNACKs == 1 && f.DataACKed && f.ServerBytes == 0 && f.ClientFIN && !f.ServerFIN
	})
	want(overflowUnanswered, "4 SYNs never answered", func(f Fate) bool {
		return f.SYNs == 4 && f.SYNACKs == 0 && !f.Refused
	})
	// The server kept answering on the port while those SYNs went
	// unanswered: SYN/ACKs between their first and last SYN.
	first, last := fates[overflowUnanswered[0]].First, fates[overflowUnanswered[0]].First.Add(3*time.Second)
	n := tr.Count(func(s Segment) bool {
		return s.Src == to && s.SYN && s.ACK && s.Time.After(first) && s.Time.Before(last)
	})
	if n == 0 {
		errs = append(errs, errors.New("no SYN/ACK from the server while the SYNs went unanswered"))
	}
	return errors.Join(errs...)
}

// --- 3. refused_rate.pcap, refused_lo.pcap ----------------------------------

// refusedDials are 20 attempts, 500 ms apart, to a closed port.
func refusedDials(to netip.AddrPort, first uint16) []Dial {
	var d []Dial
	for i := 0; i < 20; i++ {
		d = append(d, Dial{To: to, From: first + uint16(i), At: time.Duration(i) * 500 * time.Millisecond})
	}
	return d
}

func refusedExpect(client netip.Addr, first uint16, to netip.AddrPort) ([]Expected, []ExpectedEvent) {
	var conns []Expected
	for i := 0; i < 20; i++ {
		conns = append(conns, Expected{Client: netip.AddrPortFrom(client, first+uint16(i)), Server: to, Outcome: OutcomeRefused})
	}
	return conns, []ExpectedEvent{
		ev("connection_refused", "no_listener", netip.AddrPortFrom(client, first), to, 1),
		ev("connection_refused", "no_listener", netip.AddrPortFrom(client, first+1), to, 19),
		ev("failed_connection_rate", "no_listener", netip.AddrPortFrom(client, 0), to, 0),
	}
}

// checkRefusedRate checks that the 20 refusals are ~500 ms apart.
func checkRefusedRate(tr *Trace) error {
	if len(tr.Conns) != 20 {
		return fmt.Errorf("%d connections, want 20", len(tr.Conns))
	}
	span := tr.Conns[19].First.Sub(tr.Conns[0].First)
	if span < 9*time.Second || span > 10*time.Second {
		return fmt.Errorf("the 20 attempts span %v, want 9.5 s (under 10 s)", span)
	}
	for i := 1; i < 20; i++ {
		if d := tr.Conns[i].First.Sub(tr.Conns[i-1].First); d < 400*time.Millisecond || d > 600*time.Millisecond {
			return fmt.Errorf("attempts %d and %d are %v apart, want 500 ms", i-1, i, d)
		}
	}
	return nil
}

func refusedRateScenario() ShippedCapture {
	to := v4(PortRefused)
	conns, expect := refusedExpect(ClientV4, 47101, to)
	return ShippedCapture{
		File:   "refused_rate.pcap",
		Title:  "refused twice a second for 10 s (seeds/002) on the veth",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Dials:  refusedDials(to, 47101),
		Conns:  conns,
		Expect: expect,
		Check:  checkRefusedRate,
		Description: "One client connects to port 7211, where nothing listens, every 500 ms for 10 s: 20 attempts " +
			"from ports 47101-47120, each a SYN answered at once by the server kernel's RST/ACK (the 2.01 failed " +
			"connections per second of the seeds/002 alert).",
	}
}

func refusedLoScenario() ShippedCapture {
	lo := netip.MustParseAddr("127.0.0.1")
	to := netip.AddrPortFrom(lo, PortRefused)
	conns, expect := refusedExpect(lo, 47201, to)
	return ShippedCapture{
		File:   "refused_lo.pcap",
		Title:  "refused twice a second for 10 s (seeds/002) on loopback",
		Side:   Server,
		Iface:  "lo",
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Run: func(l *Lab) error {
			_, err := l.ConnectWith(ConnectConfig{Side: Server}, refusedDials(to, 47201)...)
			return err
		},
		Conns:  conns,
		Expect: expect,
		Check: func(tr *Trace) error {
			// As the description says: lo's offload leaves the SYNs'
			// checksums partial; the kernel's RSTs carry full ones.
			for _, s := range tr.Segments {
				if s.ChecksumOK == s.SYN {
					return fmt.Errorf("%v: checksum ok %v; want partial checksums on SYNs only", s, s.ChecksumOK)
				}
			}
			return checkRefusedRate(tr)
		},
		PartialChecksums: true,
		Description: "The seeds/002 story as its author finally found it, on `lo`: inside the server namespace a " +
			"client connects to 127.0.0.1:7211, where nothing listens, every 500 ms for 10 s (20 attempts from " +
			"ports 47201-47220); each SYN is answered by a RST/ACK. Captured with `tcpdump -i lo` in that " +
			"namespace (Ethernet link type with zero MACs). lo's checksum offload cannot be turned off, so the SYNs " +
			"carry partial checksums (the pseudo-header sum only) as any capture of a host's own loopback traffic " +
			"does; the kernel's RSTs carry full ones.",
	}
}

// --- 5. seed000.pcap ----------------------------------------------------------

// seeds/000's crafted connection.
const (
	seed000Port  = 49001
	seed000Shift = 856107596 // how far seeds/000's ACK number was off
	seed000GET   = 100       // request bytes
)

func seed000Scenario() ShippedCapture {
	to := v4(PortSeed000)
	crafted := netip.AddrPortFrom(CraftedV4, seed000Port)
	return ShippedCapture{
		File:   "seed000.pcap",
		Title:  "seeds/000: a translated ACK number against TCP_DEFER_ACCEPT",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Setup: func(l *Lab) {
			l.Listen(PortSeed000, ListenConfig{DeferAccept: time.Second})
		},
		Run: func(l *Lab) error {
			return l.craftBeside("seed000", Dial{To: to, From: 47301, Exchanges: 1, Request: 78, Response: 512, At: 300 * time.Millisecond})
		},
		Expect: []ExpectedEvent{
			ev("synack_retransmit_after_ack", "tcp_defer_accept", crafted, to, 1),
			ev("invalid_ack", "seq_translation_middlebox", crafted, to, 1),
			ev("rst_after_invalid_ack", "seq_translation_middlebox", crafted, to, 1),
			ev("rst_ignored", "rst_out_of_window", crafted, to, 1),
			ev("request_unanswered", "server_discarding", crafted, to, 1),
		},
		Check: checkSeed000,
		Facts: func(tr *Trace) string {
			return segmentFacts(tr, "The crafted connection (absolute sequence numbers; the bogus ACK is the "+
				"server's ISN+1 - 856107596)", crafted, to)
		},
		Description: "seeds/000 against a real Linux server with TCP_DEFER_ACCEPT (1 s) on port 8084. A crafted client " +
			"(10.213.0.3:49001, options like a Linux client's) completes the handshake and pauses 1.5 s; the " +
			"server re-sends its SYN/ACK about 1 s in and the client does not answer it. Then the client sends a " +
			"100-byte GET whose ACK number is the server's ISN+1 minus 856,107,596 (mod 2^32), as a middlebox " +
			"translating sequence numbers would: the server's SYN_RECV entry answers it with a RST whose sequence " +
			"number is that bogus ACK value (RFC 793), outside the client's window. The client ignores the RST and " +
			"re-sends the same GET 4 times (after 200, 400, 800 and 1600 ms), each drawing another RST, then sends " +
			"a FIN with the same bogus ACK (another RST) and gives up. The server re-sends its SYN/ACK again 3 s " +
			"after the first. Beside it a real client (10.213.0.1:47301) talks to the same port 300 ms in and stays " +
			"silent.",
	}
}

func checkSeed000(tr *Trace) error {
	to := v4(PortSeed000)
	crafted := netip.AddrPortFrom(CraftedV4, seed000Port)
	fates, err := fatesOf(tr, to, 47301, seed000Port)
	if err != nil {
		return err
	}
	var errs []error
	if err := cleanFate(fates[47301], 512); err != nil {
		errs = append(errs, err)
	}
	segs := tr.Between(crafted, to)
	var synack, ack *Segment
	var gets, bogusACKs, rstMatch, rstOther, synackAfter, fins int
	var bogus uint32
	for i := range segs {
		s := &segs[i]
		switch {
		case s.Src == to && s.SYN && s.ACK:
			if synack == nil {
				synack = s
				bogus = s.Seq + 1 - seed000Shift
			} else if ack != nil {
				synackAfter++
				if s.Seq != synack.Seq {
					errs = append(errs, fmt.Errorf("re-sent SYN/ACK %v has another ISN", s))
				}
			}
		case s.Src == crafted && synack != nil && ack == nil && s.Bare() && s.Ack == synack.Seq+1:
			ack = s
		case s.Src == crafted && s.Len > 0:
			gets++
			if s.Len != seed000GET || s.Ack != bogus {
				errs = append(errs, fmt.Errorf("GET %v: want %d bytes acking %d", s, seed000GET, bogus))
			}
			bogusACKs++
		case s.Src == crafted && s.FIN:
			fins++
			if s.Ack != bogus {
				errs = append(errs, fmt.Errorf("FIN %v: want ack %d", s, bogus))
			}
		case s.Src == to && s.RST:
			if s.Seq == bogus && !s.ACK {
				rstMatch++
			} else {
				rstOther++
			}
		case s.Src == to && s.ACK && !s.SYN:
			errs = append(errs, fmt.Errorf("the server acknowledged something: %v", s))
		}
	}
	switch {
	case synack == nil || ack == nil:
		errs = append(errs, errors.New("no handshake of the crafted client"))
	case synackAfter < 1:
		errs = append(errs, errors.New("no SYN/ACK re-sent after the crafted client's handshake ACK"))
	case gets != 5 || fins != 1:
		errs = append(errs, fmt.Errorf("%d GETs and %d FINs, want 5 and 1", gets, fins))
	case rstMatch < 5 || rstOther > 0:
		errs = append(errs, fmt.Errorf("%d server RSTs with seq = the bogus ACK %d, %d others; want one per GET and FIN", rstMatch, bogus, rstOther))
	}
	if ack != nil && len(errs) == 0 {
		first := tr.Count(func(s Segment) bool {
			return s.Src == crafted && s.Len > 0 && s.Time.Sub(ack.Time) < 1400*time.Millisecond
		})
		if first > 0 {
			errs = append(errs, errors.New("the crafted GET came less than 1.4 s after the handshake"))
		}
	}
	return errors.Join(errs...)
}

// --- 6. seed001.pcap -----------------------------------------------------------

// seeds/001's crafted hosts A and B behind 10.213.0.3, and their ports.
const (
	seed001ClockA  = 2_000_000_000           // A's TSval at the script's start
	seed001ClockB  = seed001ClockA - 5000000 // B's: far behind A's
	seed001A1      = 49101                   // A: three whole connections, 1 s apart
	seed001B       = 49104                   // B: a whole connection, regressed TSval
	seed001Dropped = 49105                   // B: SYNs dropped (the PAWS drop of tcp_tw_recycle)
	seed001Reused  = 49106                   // A, server closes first; then B's SYN into the TIME_WAIT
)

func seed001Scenario() ShippedCapture {
	to := v4(PortSeed001)
	b := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(CraftedV4, port) }
	real := []Dial{
		{To: to, From: 47401, Exchanges: 1, Request: 78, Response: 300, At: 500 * time.Millisecond},
		{To: to, From: 47402, Exchanges: 1, Request: 78, Response: 300, At: 2500 * time.Millisecond},
		{To: to, From: 47403, Exchanges: 1, Request: 78, Response: 300, Close: CloseServer, At: 3700 * time.Millisecond},
		{To: to, From: 47404, Exchanges: 1, Request: 78, Response: 300, At: 6000 * time.Millisecond},
	}
	return ShippedCapture{
		File:   "seed001.pcap",
		Title:  "seeds/001 today: two TCP clocks behind one address",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Setup: func(l *Lab) {
			l.Listen(PortSeed001, ListenConfig{})
			// Stands in for the PAWS drop of the removed tcp_tw_recycle.
			l.Exec(Server, "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--syn", "--dport", fmt.Sprint(PortSeed001),
				"--sport", fmt.Sprint(seed001Dropped), "-j", "DROP")
		},
		Run: func(l *Lab) error {
			return l.craftBeside("seed001", real...)
		},
		Expect: []ExpectedEvent{
			ev("ts_regression", "nat_timestamps", b(seed001B), to, 1),
			ev("ts_regression", "nat_timestamps", b(seed001Dropped), to, 2),
			ev("syn_unanswered", "paws_nat_timestamps", b(seed001Dropped), to, 1),
			ev("port_reuse_rejected", "time_wait_paws", b(seed001Reused), to, 1),
		},
		Check: checkSeed001,
		Facts: func(tr *Trace) string {
			return segmentFacts(tr, "(c) B's SYN from 49105, dropped by the server namespace's iptables", b(seed001Dropped), to) + "\n" +
				segmentFacts(tr, "(d) A's connection from 49106 (the server closes first), then B's SYN into the "+
					"TIME_WAIT, its bare ACK, B's RST and the same SYN again", b(seed001Reused), to)
		},
		Description: "seeds/001 as today's kernels show it, against a real server on port 8085. Two crafted hosts A and " +
			"B share the address 10.213.0.3, each with its own steady TCP timestamp clock at 1000 ticks/s, B's " +
			"5,000,000 ticks behind A's. (a) A makes three whole connections at 0, 1 and 2 s (ports 49101-49103; " +
			"request, 100-byte answer, A closes first): its SYNs' TSvals advance 1000 per second, so the address " +
			"looks clocked. (b) At 3 s B makes a whole connection from 49104 with its regressed TSval; the modern " +
			"server accepts it. (c) At 3.5 s B sends a SYN from 49105, which an iptables rule in the server namespace " +
			"drops (`--syn --sport 49105 -j DROP`, standing in for the PAWS drop of the removed tcp_tw_recycle); it " +
			"is re-sent 3 times 1 s apart (same ISN, TSval following B's clock), never answered. (d) At 4 s A connects " +
			"from 49106 and the server closes first, so the server holds the 4-tuple in TIME_WAIT; 300 ms later B " +
			"sends a SYN from the same port with its regressed TSval: TIME_WAIT answers with a bare ACK (a PAWS " +
			"reject), B answers that with a RST (seq = the ACK's ack, no timestamps), which kills the TIME_WAIT, " +
			"and 1 s later re-sends the same SYN (same ISN), which now gets a SYN/ACK; the connection completes and " +
			"closes normally. (e) Meanwhile four real clients (10.213.0.1, random TSval per connection, ports " +
			"47401-47404) talk to the same port and stay silent. Expected ts_regression: the first on B's first SYN " +
			"(49104), then one folded event counting B's further regressed connection attempts (49105 with its " +
			"retransmissions, and 49106, whose SYN re-sent after the RST has the same ISN): 2.",
	}
}

func checkSeed001(tr *Trace) error {
	to := v4(PortSeed001)
	crafted := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(CraftedV4, port) }
	var errs []error
	// Every SYN of the crafted hosts: TSval on A's or B's clock.
	t0 := time.Time{}
	for _, s := range tr.Segments {
		if s.Src.Addr() != CraftedV4 || !s.SYN {
			continue
		}
		if !s.HasTS {
			errs = append(errs, fmt.Errorf("crafted SYN without timestamps: %v", s))
			continue
		}
		if t0.IsZero() {
			t0 = s.Time.Add(-time.Duration(s.TSval-seed001ClockA) * time.Millisecond)
		}
		ms := uint32(s.Time.Sub(t0) / time.Millisecond)
		a, b := seed001ClockA+ms, seed001ClockB+ms
		onA := int32(s.TSval-a) > -50 && int32(s.TSval-a) < 50
		onB := int32(s.TSval-b) > -50 && int32(s.TSval-b) < 50
		wantB := s.Src.Port() == seed001B || s.Src.Port() == seed001Dropped
		if s.Src.Port() == seed001Reused {
			wantB = s.TSval < seed001ClockA
		}
		if !(onA && !wantB || onB && wantB) {
			errs = append(errs, fmt.Errorf("crafted SYN %v: TSval not on %s's clock", s, map[bool]string{true: "B", false: "A"}[wantB]))
		}
	}
	// (a), (b): whole connections.
	for _, p := range []uint16{seed001A1, seed001A1 + 1, seed001A1 + 2, seed001B} {
		f, err := fatesOf(tr.sub(crafted(p), to), to, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := cleanFate(f[p], 100); err != nil {
			errs = append(errs, err)
		}
	}
	// (c): 4 SYNs, same ISN, 1 s apart, no answer.
	dropped := tr.Between(crafted(seed001Dropped), to)
	if len(dropped) != 4 {
		errs = append(errs, fmt.Errorf("%d segments of the dropped SYN's 4-tuple, want its 4 SYNs", len(dropped)))
	}
	for i, s := range dropped {
		if !s.SYN || s.ACK || s.Seq != dropped[0].Seq || s.Src != crafted(seed001Dropped) {
			errs = append(errs, fmt.Errorf("dropped 4-tuple: %v: want the same SYN again", s))
		}
		if i > 0 {
			if d := s.Time.Sub(dropped[i-1].Time); d < 900*time.Millisecond || d > 1100*time.Millisecond {
				errs = append(errs, fmt.Errorf("dropped SYNs %v apart, want 1 s", d))
			}
		}
	}
	// (d): A's connection closed by the server first, then B's SYN, the
	// TIME_WAIT's bare ACK, B's RST (seq = that ack), the same SYN again,
	// a SYN/ACK and a whole connection.
	reused := tr.Between(crafted(seed001Reused), to)
	step := 0
	var bSYN, bareACK Segment
	for _, s := range reused {
		fromB := s.Src == crafted(seed001Reused)
		switch {
		case step == 0 && !fromB && s.FIN:
			step = 1 // the server's FIN: it closes first
		case step == 1 && fromB && s.SYN && s.TSval < seed001ClockA:
			bSYN, step = s, 2
		case step == 2 && !fromB && s.Bare():
			bareACK, step = s, 3
		case step == 3 && fromB && s.RST && !s.HasTS && s.Seq == bareACK.Ack:
			step = 4
		case step == 4 && fromB && s.SYN && s.Seq == bSYN.Seq:
			step = 5
		case step == 5 && !fromB && s.SYN && s.ACK:
			step = 6
		case step == 6 && fromB && s.FIN:
			step = 7
		}
	}
	if step != 7 {
		errs = append(errs, fmt.Errorf("port %d: the TIME_WAIT story stops at step %d of 7 (server FIN, B's SYN, bare ACK, RST with seq = its ack, same SYN again, SYN/ACK, whole connection)", seed001Reused, step))
	}
	// (e): the real clients talk normally.
	reals, err := fatesOf(tr.sub(netip.AddrPort{}, to), to, 47401, 47402, 47403, 47404)
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range reals {
		if err := cleanFate(f, 300); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// --- 7. rst_storm.pcap.gz ----------------------------------------------------

const rstStormConns = 150

func rstStormScenario() ShippedCapture {
	to := v4(PortRSTStorm)
	var dials []Dial
	for i := 0; i < rstStormConns; i++ {
		dials = append(dials, Dial{To: to, From: uint16(48001 + i), Exchanges: 1, Request: 78, Response: 200,
			Close: CloseServerReset, At: time.Duration(i) * 10 * time.Millisecond})
	}
	return ShippedCapture{
		File:   "rst_storm.pcap.gz",
		Title:  "a server that resets every connection",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Listen: []int{PortRSTStorm},
		Dials:  dials,
		Expect: []ExpectedEvent{
			ev("rst_storm", "rst_storm", netip.AddrPortFrom(ClientV4, 0), to, 0),
		},
		Check: func(tr *Trace) error {
			fates, err := fatesOf(tr, to, portRange(48001, rstStormConns)...)
			if err != nil {
				return err
			}
			var errs []error
			for _, f := range fates {
				if f.SYNs != 1 || f.SYNACKs != 1 || f.ServerBytes != 200 || !f.ServerRST || f.ServerFIN || f.ClientRST {
					errs = append(errs, fmt.Errorf("%v: want an answer of 200 bytes, then the server's RST (no FIN)", f))
				}
			}
			if d := tr.Segments[len(tr.Segments)-1].Time.Sub(tr.Segments[0].Time); d > 5*time.Second {
				errs = append(errs, fmt.Errorf("the storm lasts %v, want ~1.5 s", d))
			}
			return errors.Join(errs...)
		},
		Description: "150 IPv4 connections, 10 ms apart (~1.5 s), to a server on port 8086 that answers each request " +
			"(78 bytes in, 200 out) and then closes with SO_LINGER {1, 0}: every connection ends with the server's " +
			"RST/ACK, no FIN on either side (request mode `server-reset`).",
	}
}

// --- 8. clean_many.pcap.gz ----------------------------------------------------

// cleanManyStreams run concurrently, cleanManyPerStream connections each.
const (
	cleanManyStreams   = 6
	cleanManyPerStream = 52
)

func cleanManyDials(stream int) []Dial {
	var d []Dial
	for i := 0; i < cleanManyPerStream; i++ {
		n := stream*cleanManyPerStream + i
		to := v4(PortClean)
		if n%3 == 2 {
			to = v6(PortClean)
		}
		resp := []int{100, 300, 700, 1500, 3000, 6000, 250, 20000}[(n*5)%8]
		if n%4 == 1 {
			resp = []int{120, 450, 900}[n%3] // mostly small answers
		}
		closes := []Close{CloseClient, CloseServer, CloseClient, CloseServer, CloseClient, CloseServer, CloseReset}
		d = append(d, Dial{To: to, From: uint16(50001 + n), Exchanges: 2 + n%3, Request: 150 + (n*37)%450,
			Response: resp, Pause: time.Duration(5+(n*7)%25) * time.Millisecond, Close: closes[n%len(closes)]})
	}
	return d
}

func cleanManyScenario() ShippedCapture {
	total := cleanManyStreams * cleanManyPerStream
	return ShippedCapture{
		File:   "clean_many.pcap.gz",
		Title:  "hundreds of ordinary connections with a little loss",
		Side:   Client,
		Iface:  Iface,
		Filter: "tcp",
		Link:   layers.LinkTypeEthernet,
		Listen: []int{PortClean},
		Setup: func(l *Lab) {
			// Every 25th data segment of the clients (IP length >= 200:
			// never a SYN or a bare ACK) is lost on the way to the server,
			// and every 40th of the server's on the way back.
			for _, tool := range []string{"iptables", "ip6tables"} {
				l.Exec(Server, tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(PortClean),
					"-m", "length", "--length", "200:65535", "-m", "statistic", "--mode", "nth", "--every", "25", "--packet", "0", "-j", "DROP")
				l.Exec(Client, tool, "-w", "-A", "INPUT", "-p", "tcp", "--sport", fmt.Sprint(PortClean),
					"-m", "length", "--length", "200:65535", "-m", "statistic", "--mode", "nth", "--every", "40", "--packet", "0", "-j", "DROP")
			}
		},
		Run: func(l *Lab) error {
			errs := make([]error, cleanManyStreams)
			var wg sync.WaitGroup
			for s := 0; s < cleanManyStreams; s++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dials := cleanManyDials(s)
					res, err := l.Connect(dials...)
					for i, r := range res {
						want := dials[i].Exchanges * dials[i].Response
						if err == nil && (!r.Connected || r.Err != "" || r.Received != want) {
							err = fmt.Errorf("dial %+v: %+v", dials[i], r)
						}
					}
					errs[s] = err
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		},
		Expect: []ExpectedEvent{},
		Check: func(tr *Trace) error {
			var all []Dial
			for s := 0; s < cleanManyStreams; s++ {
				all = append(all, cleanManyDials(s)...)
			}
			var errs []error
			seen := 0
			for _, srv := range []netip.AddrPort{v4(PortClean), v6(PortClean)} {
				for _, f := range tr.Fates(srv) {
					seen++
					d := all[f.Client.Port()-50001]
					if err := cleanFate(f, d.Exchanges*d.Response); err != nil {
						errs = append(errs, err)
					}
					if (d.Close == CloseReset) != f.ClientRST {
						errs = append(errs, fmt.Errorf("%v: close %s", f, d.Close))
					}
				}
			}
			if seen != total {
				errs = append(errs, fmt.Errorf("%d connections, want %d", seen, total))
			}
			if n := tr.Retransmissions(nil); n == 0 {
				errs = append(errs, errors.New("no retransmissions: the loss rules did not bite"))
			}
			return errors.Join(errs...)
		},
		Facts: func(tr *Trace) string {
			var b strings.Builder
			fmt.Fprintf(&b, "Retransmitted segments (payload or FIN sent again; netlab's count): %d", tr.Retransmissions(nil))
			if n, err := TsharkCount(tr.Path, "tcp.analysis.retransmission"); err == nil {
				fmt.Fprintf(&b, "; `tcp.analysis.retransmission` (tshark): %d", n)
			}
			if n, err := TsharkCount(tr.Path, "tcp.analysis.fast_retransmission"); err == nil {
				fmt.Fprintf(&b, ", of which `tcp.analysis.fast_retransmission`: %d", n)
			}
			b.WriteString(".\n")
			return b.String()
		},
		Description: fmt.Sprintf("%d ordinary connections in %d concurrent streams to a server on port 8080, every "+
			"third over IPv6: 2-4 request/response exchanges each with 5-30 ms pauses, requests of 150-600 bytes, "+
			"answers of 100 bytes to 20 KB, closed by the client first, by the server first or (1 in 7) by the "+
			"client's RST after the last answer. iptables statistic rules drop every 25th client data segment on "+
			"its way into the server namespace and every 40th server data segment on its way back (data only: "+
			"never a SYN or a bare ACK), so the capture holds ordinary retransmissions (timeouts, fast "+
			"retransmits, tail loss probes). Everything here must stay silent.", total, cleanManyStreams),
	}
}
