package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		// The live tests run this binary as the tcpsentry command, so
		// that a signal stops it as it stops the real one.
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	netlab.Main() // the lab re-executes this binary as its servers and clients
	// run called in-process would switch the test process itself.
	keepPrivileges = true
	os.Exit(m.Run())
}

// TestReplayFreshKernelCapture makes a new capture of real kernel TCP
// stacks in network namespaces — clean IPv4/IPv6 connections, a closed
// port, a port behind iptables DROP — on both an Ethernet and an "any"
// (SLL2) capture, and checks that replay reports exactly the refused and
// the unanswered attempt. Needs root; CI runs it.
func TestReplayFreshKernelCapture(t *testing.T) {
	lab := netlab.New(t)
	lab.Listen(8080, netlab.ListenConfig{})
	eth := lab.Capture(netlab.Client, netlab.Iface, "", "tcp")
	anyc := lab.Capture(netlab.Client, "any", "", "tcp")
	srv4 := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netlab.ServerV4, p) }
	srv6 := func(p uint16) netip.AddrPort { return netip.AddrPortFrom(netlab.ServerV6, p) }
	lab.MustConnect(
		netlab.Dial{To: srv4(8080), From: 41001, Exchanges: 2, Request: 100, Response: 3000, Close: netlab.CloseClient},
		netlab.Dial{To: srv6(8080), From: 41002, Exchanges: 1, Response: 500, Close: netlab.CloseServer},
		netlab.Dial{To: srv4(8080), From: 41003, Exchanges: 1, Response: 100, Close: netlab.CloseReset},
	)
	lab.Refused(srv6(7211), 41004)
	lab.Unanswered(srv4(9090), 41005)
	eth.Stop()
	anyc.Stop()

	want := strings.Join([]string{
		"connection_refused/no_listener [fd00:213::1]:41004 -> [fd00:213::2]:7211 x1",
		"syn_unanswered/silent_drop 10.213.0.1:41005 -> 10.213.0.2:9090 x1",
	}, "\n")
	for _, path := range []string{eth.Path, anyc.Path} {
		for _, workers := range []string{"1", "2"} {
			code, evs, stderr := replay(t, "--workers", workers, path)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", path, code, stderr)
			}
			if got := strings.Join(evs, "\n"); got != want {
				t.Errorf("%s, %s workers: events\n%s\nwant\n%s\nsummary:\n%s", path, workers, got, want, stderr)
			}
			if !strings.Contains(stderr, "5 created") {
				t.Errorf("%s: want 5 flows:\n%s", path, stderr)
			}
		}
	}
}

// TestScenariosFreshKernel is the privileged half of the scenario
// library: it makes every capture of testdata/ again from real kernels in
// network namespaces (bench/netlab) and checks that replay reports
// exactly its expected events, with 1 and 2 workers. The committed
// captures are checked the same way without root by
// TestReplayShippedCaptures. Needs root; CI runs it.
func TestScenariosFreshKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("makes every scenario again (about a minute)")
	}
	if err := netlab.Check(); err != nil {
		netlab.Unavailable(t, "%v", err)
	}
	for _, sc := range allCaptures() {
		t.Run(sc.File, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), sc.File)
			netlab.GenerateScenario(t, sc, path)
			if err := sc.CheckFile(path); err != nil {
				t.Fatalf("the fresh capture does not show the story: %v", err)
			}
			want := expected(sc)
			for _, workers := range []string{"1", "2"} {
				code, evs, stderr := replay(t, "--workers", workers, path)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				// A folded group names its first event and its first repeat;
				// on a fresh capture which of several simultaneous
				// connections came first is the kernel's race, so such
				// groups match by client address and counts, not port.
				if !sameEvents(reportsAnyPort(evs), reportsAnyPort(want)) {
					t.Errorf("%s workers: events\n%s\nwant\n%s\nsummary:\n%s", workers, strings.Join(evs, "\n"), strings.Join(want, "\n"), stderr)
				}
			}
		})
	}
}

// reportsAnyPort replaces the client port by "*" in the events of a
// folded group: several events of one type and cause between one client
// address and one server (the first, and the report of its repeats).
func reportsAnyPort(evs []string) []string {
	key := func(f []string) string { // action/reason client-address server
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return ""
		}
		return f[0] + " " + ap.Addr().String() + " " + f[3]
	}
	groups := map[string]int{}
	for _, e := range evs {
		if f := strings.Fields(e); len(f) == 5 {
			groups[key(f)]++
		}
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e
		f := strings.Fields(e) // action/reason client -> server xN
		if len(f) != 5 || groups[key(f)] < 2 {
			continue
		}
		ap, _ := netip.ParseAddrPort(f[1])
		f[1] = ap.Addr().String() + ":*"
		out[i] = strings.Join(f, " ")
	}
	sort.Strings(out)
	return out
}
