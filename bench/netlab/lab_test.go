package netlab_test

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

func TestMain(m *testing.M) {
	netlab.Main()
	os.Exit(m.Run())
}

func TestLabCreatedAndRemoved(t *testing.T) {
	var lab *netlab.Lab
	var pid int
	t.Run("lab", func(t *testing.T) {
		lab = netlab.New(t)
		names, err := netlab.Namespaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{lab.ClientNS, lab.ServerNS} {
			if !strings.HasPrefix(ns, netlab.NamePrefix) || !slices.Contains(names, ns) {
				t.Errorf("namespace %q not in ip netns list %v", ns, names)
			}
		}
		for _, s := range []netlab.Side{netlab.Client, netlab.Server} {
			out := lab.Exec(s, "ip", "addr", "show", "dev", netlab.Iface)
			if !strings.Contains(out, "state UP") && !strings.Contains(out, "LOWER_UP") {
				t.Errorf("%s %s not up:\n%s", s, netlab.Iface, out)
			}
			if strings.Contains(out, "tentative") {
				t.Errorf("%s: IPv6 address still tentative (nodad missing?):\n%s", s, out)
			}
			if lo := lab.Exec(s, "ip", "link", "show", "lo"); !strings.Contains(lo, "UP") {
				t.Errorf("%s lo not up: %s", s, lo)
			}
		}
		p := lab.Start(netlab.Server, "sleep", "1000")
		pid = p.Pid()
	})
	if lab == nil {
		return // skipped (not root) or failed; the subtest said why
	}
	names, err := netlab.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{lab.ClientNS, lab.ServerNS} {
		if slices.Contains(names, ns) {
			t.Errorf("namespace %s still listed after cleanup: %v", ns, names)
		}
	}
	if pid != 0 {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after cleanup (kill 0: %v)", pid, err)
		}
	}
}

func TestCleanConnections(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	ln := lab.Listen(8080, netlab.ListenConfig{})
	cap := lab.Capture(netlab.Client, netlab.Iface, "", "tcp")
	v4 := netip.AddrPortFrom(netlab.ServerV4, 8080)
	v6 := netip.AddrPortFrom(netlab.ServerV6, 8080)
	dials := []netlab.Dial{
		{To: v4, From: 41001, Exchanges: 1, Request: 100, Response: 700},
		{To: v4, From: 41002, Exchanges: 1, Request: 50, Response: 300, Close: netlab.CloseServer},
		{To: v6, From: 41003, Exchanges: 3, Request: 40, Response: 200, Pause: 20 * time.Millisecond},
		{To: v6, From: 41004, Exchanges: 1, Request: 40, Response: 200, Close: netlab.CloseReset},
	}
	res := lab.MustConnect(dials...)
	cap.Stop()
	for i, r := range res {
		if !r.Connected || r.Err != "" || r.Received != dials[i].Exchanges*dials[i].Response {
			t.Errorf("dial %d: %+v", i, r)
		}
	}
	if got := ln.Accepted(); got != len(dials) {
		t.Errorf("listener accepted %d, want %d", got, len(dials))
	}
	want := []string{netlab.OutcomeFIN, netlab.OutcomeFIN, netlab.OutcomeFIN, netlab.OutcomeRST}
	conns := summarize(t, cap.Path, layers.LinkTypeEthernet)
	if len(conns) != len(want) {
		t.Fatalf("%d connections, want %d: %v", len(conns), len(want), conns)
	}
	for i, c := range conns {
		if c.Outcome() != want[i] || c.Client.Port() != dials[i].From || c.Server != dials[i].To {
			t.Errorf("connection %d: %v, want %s from port %d to %v", i, c, want[i], dials[i].From, dials[i].To)
		}
		if c.ServerBytes != dials[i].Exchanges*dials[i].Response {
			t.Errorf("connection %d: server sent %d bytes, want %d", i, c.ServerBytes, dials[i].Exchanges*dials[i].Response)
		}
	}
	if conns[1].ServerFINs == 0 || conns[3].ClientRSTs != 1 || conns[3].ServerRSTs != 0 {
		t.Errorf("close order not as asked: %v / %v", conns[1], conns[3])
	}
}

// TestRefusedCapture: a refused connect shows on the client's veth as one
// SYN answered by exactly one RST/ACK from the server port.
func TestRefusedCapture(t *testing.T) {
	t.Parallel()
	for _, to := range []netip.AddrPort{
		netip.AddrPortFrom(netlab.ServerV4, 7211),
		netip.AddrPortFrom(netlab.ServerV6, 7211),
	} {
		t.Run(to.Addr().String(), func(t *testing.T) {
			t.Parallel()
			lab := netlab.New(t)
			cap := lab.Capture(netlab.Client, netlab.Iface, "", "")
			r := lab.Refused(to, 40001)
			cap.Stop()
			if r.Elapsed > time.Second {
				t.Errorf("refusal took %v", r.Elapsed)
			}
			conns := summarize(t, cap.Path, layers.LinkTypeEthernet)
			if len(conns) != 1 {
				t.Fatalf("want 1 connection, got %v", conns)
			}
			c := conns[0]
			if c.Client != netip.AddrPortFrom(clientOf(to), 40001) || c.Server != to {
				t.Errorf("wrong endpoints: %v", c)
			}
			if c.SYNs != 1 || c.ServerRSTACKs != 1 || c.ServerRSTs != 1 || c.Packets != 2 || c.Outcome() != netlab.OutcomeRefused {
				t.Errorf("want 1 SYN and exactly 1 RST/ACK: %v", c)
			}
		})
	}
}

// TestUnansweredCapture: a SYN to a dropped port is retried 3 times, 1 s
// apart, and given up after ~4 s; nothing answers. Captured with -i any.
func TestUnansweredCapture(t *testing.T) {
	t.Parallel()
	for _, to := range []netip.AddrPort{
		netip.AddrPortFrom(netlab.ServerV4, 9090),
		netip.AddrPortFrom(netlab.ServerV6, 9090),
	} {
		t.Run(to.Addr().String(), func(t *testing.T) {
			t.Parallel()
			lab := netlab.New(t)
			lab.Listen(9090, netlab.ListenConfig{}) // listening, but behind DROP
			cap := lab.Capture(netlab.Client, "any", "", "tcp")
			r := lab.Unanswered(to, 40002)
			cap.Stop()
			if r.Elapsed < 3*time.Second || r.Elapsed > 5*time.Second {
				t.Errorf("gave up after %v, want ~3.5 s", r.Elapsed)
			}
			conns := summarize(t, cap.Path, layers.LinkTypeLinuxSLL2)
			if len(conns) != 1 {
				t.Fatalf("want 1 connection, got %v", conns)
			}
			c := conns[0]
			if c.SYNs != 4 || c.Packets != 4 || c.Outcome() != netlab.OutcomeUnanswered {
				t.Errorf("want 4 unanswered SYNs: %v", c)
			}
			if d := c.Last.Sub(c.First); d < 2500*time.Millisecond || d > 4*time.Second {
				t.Errorf("SYNs span %v, want ~3 s", d)
			}
		})
	}
}

// TestDeferAccept: with TCP_DEFER_ACCEPT and a client that waits before
// its first data, the server re-sends its SYN/ACK after the client's
// handshake ACK (the seeds/000 shape).
func TestDeferAccept(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t)
	ln := lab.Listen(8081, netlab.ListenConfig{DeferAccept: time.Second})
	cap := lab.Capture(netlab.Server, netlab.Iface, "", "tcp")
	to := netip.AddrPortFrom(netlab.ServerV4, 8081)
	r := lab.MustConnect(netlab.Dial{To: to, From: 42001, Exchanges: 1, Request: 20, Response: 10, Delay: 1500 * time.Millisecond})[0]
	cap.Stop()
	if !r.Connected || r.Err != "" || r.Received != 10 {
		t.Errorf("%+v", r)
	}
	if ln.Accepted() != 1 {
		t.Errorf("accepted %d", ln.Accepted())
	}
	conns := summarize(t, cap.Path, layers.LinkTypeEthernet)
	if len(conns) != 1 || conns[0].SYNACKs < 2 || conns[0].Outcome() != netlab.OutcomeFIN {
		t.Errorf("want a SYN/ACK re-sent after the handshake, then a clean close: %v", conns)
	}
}

func TestUnavailable(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{}
		func() {
			defer func() { _ = recover() }()
			netlab.Unavailable(f, "no %s", "root")
		}()
		if ci == "true" && (!f.fatal || f.skip) {
			t.Errorf("CI=true: want Fatal, got %+v", f)
		}
		if ci == "" && (f.fatal || !f.skip) {
			t.Errorf("CI unset: want Skip, got %+v", f)
		}
		if !strings.Contains(f.msg, "no root") {
			t.Errorf("message %q does not say why", f.msg)
		}
	}
}

type fakeTB struct {
	testing.TB
	fatal, skip bool
	msg         string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal, f.msg = true, format
	if len(args) > 0 {
		f.msg = args[0].(string)
	}
	panic("fatal")
}
func (f *fakeTB) Skip(args ...any) {
	f.skip, f.msg = true, args[0].(string)
	panic("skip")
}

func clientOf(to netip.AddrPort) netip.Addr {
	if to.Addr().Is4() {
		return netlab.ClientV4
	}
	return netlab.ClientV6
}

func summarize(t *testing.T, path string, link layers.LinkType) []netlab.Conn {
	t.Helper()
	conns, lt, err := netlab.Summarize(path)
	if err != nil {
		t.Fatal(err)
	}
	if lt != link {
		t.Errorf("%s: link type %v, want %v", path, lt, link)
	}
	for _, c := range conns {
		t.Log(c)
	}
	return conns
}
