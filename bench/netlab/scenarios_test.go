package netlab_test

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

// TestWant: Expect, when set, is the whole event list; otherwise the
// events come from Conns.
func TestWant(t *testing.T) {
	c := netip.MustParseAddrPort("10.213.0.1:1")
	s := netip.MustParseAddrPort("10.213.0.2:2")
	sc := netlab.ShippedCapture{Conns: []netlab.Expected{
		{Client: c, Server: s, Outcome: netlab.OutcomeFIN},
		{Client: c, Server: s, Outcome: netlab.OutcomeRefused, Action: "connection_refused", Reason: "no_listener"},
	}}
	if w := sc.Want(); len(w) != 1 || w[0] != (netlab.ExpectedEvent{Action: "connection_refused", Reason: "no_listener", Client: c, Server: s}) {
		t.Errorf("Want from Conns: %+v", w)
	}
	if e := sc.Events(); len(e) != 1 || e[0] != sc.Conns[1] {
		t.Errorf("Events from Conns: %+v", e)
	}
	sc.Expect = []netlab.ExpectedEvent{}
	if len(sc.Want()) != 0 || len(sc.Events()) != 0 {
		t.Errorf("an empty Expect means no events: %+v %+v", sc.Want(), sc.Events())
	}
	sc.Expect = []netlab.ExpectedEvent{{Action: "rst_storm", Reason: "rst_storm", Client: netip.AddrPortFrom(c.Addr(), 0), Server: s, Count: 3}}
	if w := sc.Want(); len(w) != 1 || w[0] != sc.Expect[0] {
		t.Errorf("Want with Expect: %+v", w)
	}
	if e := sc.Events(); len(e) != 1 || e[0].Action != "rst_storm" || e[0].Client.Port() != 0 {
		t.Errorf("Events with Expect: %+v", e)
	}
}

// TestScenariosUnique: file names, server ports and client ports of
// the scenario library do not collide with each other or with the
// shipped captures.
func TestScenariosUnique(t *testing.T) {
	files := map[string]bool{}
	for _, sc := range append(append([]netlab.ShippedCapture{}, netlab.ShippedCaptures...), netlab.Scenarios...) {
		if files[sc.File] {
			t.Errorf("%s twice", sc.File)
		}
		files[sc.File] = true
		if sc.Title == "" || sc.Description == "" || sc.Link == 0 || sc.Iface == "" {
			t.Errorf("%s: title, description, link type and interface are required", sc.File)
		}
	}
	for _, sc := range netlab.Scenarios {
		if sc.Expect == nil {
			t.Errorf("%s: a scenario needs a complete Expect list (empty for silence)", sc.File)
		}
		if sc.Check == nil && sc.Conns == nil {
			t.Errorf("%s: a scenario needs a Check of its story", sc.File)
		}
	}
}

// TestTsharkCrossCheck counts raw facts of the committed scenario files
// with tshark and with netlab's own decoding (gopacket), which must agree.
func TestTsharkCrossCheck(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark (Debian package tshark) not installed")
	}
	crafted := netlab.CraftedV4.String()
	synack := func(s netlab.Segment) bool { return s.SYN && s.ACK }
	cases := []struct {
		file, filter string
		want         func(*netlab.Trace) int
		atLeast      int
	}{
		{"defer_accept.pcap", "tcp.analysis.retransmission && tcp.flags.syn==1 && tcp.flags.ack==1", func(tr *netlab.Trace) int { return tr.Retransmissions(synack) }, 2},
		{"accept_overflow.pcap", "tcp.flags.syn==1 && tcp.flags.ack==0", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.SYN && !s.ACK })
		}, 65},
		{"accept_overflow.pcap", "tcp.analysis.retransmission && tcp.flags.syn==1 && tcp.flags.ack==1", func(tr *netlab.Trace) int { return tr.Retransmissions(synack) }, 2},
		{"refused_rate.pcap", "tcp.flags.reset==1 && tcp.flags.ack==1", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.RST && s.ACK })
		}, 20},
		{"refused_lo.pcap", "tcp.flags.reset==1", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.RST })
		}, 20},
		{"seed000.pcap", "ip.src==10.213.0.2 && tcp.flags.reset==1 && tcp.flags.ack==0", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.RST && !s.ACK && s.Src.Addr() == netlab.ServerV4 })
		}, 6},
		{"seed000.pcap", "ip.src==" + crafted + " && tcp.len>0 && tcp.analysis.retransmission", func(tr *netlab.Trace) int {
			return tr.Retransmissions(func(s netlab.Segment) bool { return s.Len > 0 && s.Src.Addr() == netlab.CraftedV4 })
		}, 4},
		{"seed001.pcap", "ip.src==" + crafted + " && tcp.flags.reset==1", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.RST && s.Src.Addr() == netlab.CraftedV4 })
		}, 1},
		{"rst_storm.pcap.gz", "ip.src==10.213.0.2 && tcp.flags.reset==1", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.RST && s.Src.Addr() == netlab.ServerV4 })
		}, 150},
		{"clean_many.pcap.gz", "tcp.flags.syn==1 && tcp.flags.ack==0", func(tr *netlab.Trace) int {
			return tr.Count(func(s netlab.Segment) bool { return s.SYN && !s.ACK })
		}, 300},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.filter, func(t *testing.T) {
			path := filepath.Join(testdata, c.file)
			tr, err := netlab.ReadTrace(path)
			if err != nil {
				t.Skip(err) // TestShippedCaptures reports missing files
			}
			got, err := netlab.TsharkCount(path, c.filter)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(tr); got != want || got < c.atLeast {
				t.Errorf("tshark counts %d, netlab %d (at least %d wanted)", got, want, c.atLeast)
			}
		})
	}
	if _, err := netlab.TsharkCount(filepath.Join(testdata, "demo.pcap"), "tcp.flags.syn=="); err == nil || !strings.Contains(err.Error(), "tshark") {
		t.Errorf("a bad filter: %v", err)
	}
}

// Every scenario is made again from real kernels, checked here and its
// events checked too, by TestScenariosFreshKernel in cmd/tcpsentry (root;
// CI runs it): one privileged run of the library, not two.
