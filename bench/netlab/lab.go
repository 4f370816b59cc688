package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Side names one of the two namespaces of a Lab.
type Side int

const (
	Client Side = iota // the namespace that dials
	Server             // the namespace that listens (and drops, with Drop)
)

func (s Side) String() string {
	if s == Server {
		return "server"
	}
	return "client"
}

// Fixed addressing of every lab. Labs never share a namespace, so every lab
// can use the same addresses; the shipped captures depend on them.
var (
	ClientV4 = netip.MustParseAddr("10.213.0.1")
	ServerV4 = netip.MustParseAddr("10.213.0.2")
	ClientV6 = netip.MustParseAddr("fd00:213::1")
	ServerV6 = netip.MustParseAddr("fd00:213::2")

	// ClientMAC and ServerMAC are the veth ends' fixed Ethernet addresses.
	ClientMAC = "02:00:0a:d5:00:01"
	ServerMAC = "02:00:0a:d5:00:02"
)

// Iface is the name of the veth end inside both namespaces.
const Iface = "eth0"

// NamePrefix starts the name of every namespace a lab creates
// (`ip netns list | grep ^tsn-` finds leftovers of a killed test binary).
const NamePrefix = "tsn-"

// Lab is a pair of network namespaces joined by a veth pair. Create it with
// New; it is removed, with every process it started, by the test's cleanup.
//
// Methods that set things up (Exec, Sysctl, Listen, Drop, Capture) report
// failure with t.Fatal and must be called from the test goroutine; Connect
// returns an error instead and may be called from any goroutine.
type Lab struct {
	t testing.TB

	// ClientNS and ServerNS are the namespace names, for `ip netns exec`.
	ClientNS, ServerNS string
	// Checksums is true when the veth computes full checksums (transmit
	// checksum offload turned off), so captures carry correct checksums.
	Checksums bool

	mu     sync.Mutex
	procs  []*Proc
	closed bool
	drops  map[int]bool
	pin    bool
}

// Config tunes New. The zero value is the default.
type Config struct {
	// NoPin leaves helper processes unpinned. By default every helper runs
	// under `taskset -c 0`: veth may reorder a flow's packets when its two
	// endpoints run on different CPUs.
	NoPin bool
	// Offload keeps veth's transmit checksum offload. By default the lab
	// turns it off (`ethtool -K eth0 tx off`, when ethtool is installed)
	// so that captures carry correct TCP checksums, as on a SPAN port;
	// with offload the sending side's packets carry partial checksums,
	// as when a host captures its own traffic.
	Offload bool
}

// mainCalled is set by Main when the process is not a helper; New refuses
// to start helpers otherwise (they would run the test binary's tests).
var mainCalled atomic.Bool

// Check reports why no lab can be created here, or nil. It does not create
// anything: a failure of `ip netns add` is only found by New.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("netlab: needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces; running as uid %d", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("netlab: the ip command (Debian package iproute2) is not installed")
	}
	return nil
}

// Unavailable ends t because the lab cannot run here: t.Skip normally, but
// t.Fatal when the environment variable CI is "true", where a skipped
// privileged test would hide a broken setup.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipping)", msg)
	}
	t.Skip(msg)
}

// New creates the two namespaces of a lab, joined by a veth pair named eth0
// on both sides, addressed ClientV4/ServerV4 (10.213.0.0/24) and
// ClientV6/ServerV6 (fd00:213::/64, nodad), all links up. It skips (or
// fails, under CI=true) when namespaces cannot be created here.
func New(t testing.TB) *Lab {
	t.Helper()
	return NewConfig(t, Config{})
}

// NewConfig is New with a Config.
func NewConfig(t testing.TB, cfg Config) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		Unavailable(t, "%v", err)
	}
	if !mainCalled.Load() {
		t.Fatal("netlab: the test package must call netlab.Main() first thing in TestMain")
	}
	if !cfg.NoPin {
		if _, err := exec.LookPath("taskset"); err != nil {
			t.Fatal("netlab: taskset (Debian package util-linux) not found; set Config.NoPin to run unpinned")
		}
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	id := NamePrefix + hex.EncodeToString(rnd[:])
	l := &Lab{
		t:        t,
		ClientNS: id + "-c",
		ServerNS: id + "-s",
		drops:    map[int]bool{},
		pin:      !cfg.NoPin,
	}
	// Registered before anything exists, so that a failure half-way
	// still removes what was made.
	t.Cleanup(l.cleanup)

	if out, err := run("ip", "netns", "add", l.ClientNS); err != nil {
		if strings.Contains(out, "Operation not permitted") || errors.Is(err, syscall.EPERM) {
			Unavailable(t, "netlab: cannot create network namespaces here (needs CAP_SYS_ADMIN): ip netns add: %s", strings.TrimSpace(out))
		}
		t.Fatalf("netlab: ip netns add %s: %v: %s", l.ClientNS, err, out)
	}
	l.mustRun("ip", "netns", "add", l.ServerNS)
	for _, ns := range []string{l.ClientNS, l.ServerNS} {
		// No duplicate address detection, so that the link-local
		// addresses are usable at once too (the global ones get nodad).
		l.mustRun("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	}
	l.mustRun("ip", "link", "add", Iface, "netns", l.ClientNS, "address", ClientMAC, "type", "veth",
		"peer", "name", Iface, "netns", l.ServerNS, "address", ServerMAC)
	type end struct {
		ns     string
		v4, v6 netip.Addr
		mac    string
	}
	c := end{l.ClientNS, ClientV4, ClientV6, ClientMAC}
	sv := end{l.ServerNS, ServerV4, ServerV6, ServerMAC}
	for _, e := range []struct{ me, peer end }{{c, sv}, {sv, c}} {
		ns := e.me.ns
		l.mustRun("ip", "-n", ns, "link", "set", "lo", "up")
		l.mustRun("ip", "-n", ns, "addr", "add", e.me.v4.String()+"/24", "dev", Iface)
		l.mustRun("ip", "-n", ns, "-6", "addr", "add", e.me.v6.String()+"/64", "dev", Iface, "nodad")
		l.mustRun("ip", "-n", ns, "link", "set", Iface, "up")
		// Permanent neighbours: no ARP or neighbour discovery delays
		// the first packet or shows in a capture.
		for _, a := range []netip.Addr{e.peer.v4, e.peer.v6} {
			l.mustRun("ip", "-n", ns, "neigh", "replace", a.String(), "lladdr", e.peer.mac, "dev", Iface, "nud", "permanent")
		}
	}
	// The link-local addresses come a moment after both ends are up
	// (carrier, via linkwatch) and, with DAD off, leave the tentative
	// state from a work queue: wait for them, so that no address of the
	// lab is ever tentative.
	for _, ns := range []string{l.ClientNS, l.ServerNS} {
		for i := 0; ; i++ {
			out := l.mustRun("ip", "-n", ns, "-6", "addr", "show", "dev", Iface, "scope", "link")
			if strings.Contains(out, "fe80:") && !strings.Contains(out, "tentative") {
				break
			}
			if i == 200 {
				t.Fatalf("netlab: %s: IPv6 addresses still tentative after 2 s:\n%s", ns, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !cfg.Offload {
		if _, err := exec.LookPath("ethtool"); err != nil {
			t.Logf("netlab: ethtool (Debian package ethtool) not installed: captures will carry partial checksums")
		} else {
			for _, ns := range []string{l.ClientNS, l.ServerNS} {
				l.mustRun("ip", "netns", "exec", ns, "ethtool", "-K", Iface, "tx", "off")
			}
			l.Checksums = true
		}
	}
	// The SYN retry schedule the lab documents (1 s apart) does not depend
	// on the host's setting; older kernels lack the knob and back off
	// exponentially.
	if _, err := os.Stat("/proc/sys/net/ipv4/tcp_syn_linear_timeouts"); err == nil {
		l.Sysctl(Client, "net.ipv4.tcp_syn_linear_timeouts", "4")
	}
	return l
}

// NS returns the namespace name of side s.
func (l *Lab) NS(s Side) string {
	if s == Server {
		return l.ServerNS
	}
	return l.ClientNS
}

// Exec runs `ip netns exec NS args...` and returns its combined output; a
// non-zero exit is a test failure.
func (l *Lab) Exec(s Side, args ...string) string {
	l.t.Helper()
	return l.mustRun(append([]string{"ip", "netns", "exec", l.NS(s)}, args...)...)
}

// Sysctl sets a sysctl inside side s's namespace, e.g.
// Sysctl(Server, "net.core.somaxconn", "1") to shrink listen backlogs.
func (l *Lab) Sysctl(s Side, key, value string) {
	l.t.Helper()
	l.Exec(s, "sysctl", "-q", "-w", key+"="+value)
}

// Drop makes the server namespace silently drop TCP segments to port (IPv4
// and IPv6, iptables/ip6tables INPUT -j DROP), so SYNs to it go unanswered.
func (l *Lab) Drop(port int) {
	l.t.Helper()
	l.mu.Lock()
	done := l.drops[port]
	l.drops[port] = true
	l.mu.Unlock()
	if done {
		return
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(l.t, "netlab: %s (Debian package iptables) is not installed", tool)
		}
		l.Exec(Server, tool, "-w", "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "-j", "DROP")
	}
}

// checkCounters compares `nstat -az` counters of side s with want: a
// count, or -1 for "not zero". It may be called from any goroutine.
func (l *Lab) checkCounters(s Side, want map[string]int) error {
	args := []string{"netns", "exec", l.NS(s), "nstat", "-asz"}
	for k := range want {
		args = append(args, k)
	}
	out, err := run(append([]string{"ip"}, args...)...)
	if err != nil {
		return fmt.Errorf("netlab: nstat: %v: %s", err, out)
	}
	got := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			if n, err := strconv.Atoi(f[1]); err == nil {
				got[f[0]] = n
			}
		}
	}
	var errs []error
	for k, w := range want {
		if n, ok := got[k]; !ok || (w >= 0 && n != w) || (w < 0 && n == 0) {
			errs = append(errs, fmt.Errorf("netlab: %s counter %s is %d, want %d (-1: not 0)", s, k, n, w))
		}
	}
	return errors.Join(errs...)
}

// Proc is a process started in a namespace. The lab kills it at cleanup if
// it is still running.
type Proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	stderr *syncBuffer
}

// Start starts `ip netns exec NS args...` in the background, in its own
// process group. Its output is discarded; use Exec for short commands.
func (l *Lab) Start(s Side, args ...string) *Proc {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS(s)}, args...)...)
	p, err := l.start(cmd)
	if err != nil {
		l.t.Fatalf("netlab: start %v: %v", args, err)
	}
	return p
}

func (l *Lab) start(cmd *exec.Cmd) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("netlab: lab already cleaned up")
	}
	p, err := startProc(cmd)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// startProc starts cmd in its own process group.
func startProc(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{cmd: cmd, done: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Signal sends sig to the process group of p.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// Wait waits for p to exit, at most d; it kills p's process group when d
// passes. It returns p's exit error.
func (p *Proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
	}
	p.Signal(syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("killed after %v: %w", d, p.err)
}

// Stop ends p: SIGTERM, then SIGKILL after 2 s.
func (p *Proc) Stop() error {
	p.Signal(syscall.SIGTERM)
	return p.Wait(2 * time.Second)
}

// Pid returns p's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stderr returns what p wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.closed = true
	l.mu.Unlock()
	for _, p := range procs {
		p.Signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			l.t.Errorf("netlab: process %d did not exit after SIGKILL", p.cmd.Process.Pid)
		}
	}
	for _, ns := range []string{l.ClientNS, l.ServerNS} {
		if !nsExists(ns) {
			continue
		}
		if out, err := run("ip", "netns", "del", ns); err != nil {
			l.t.Errorf("netlab: ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

// nsExists reports whether `ip netns` knows ns.
func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

// Namespaces lists the names `ip netns list` shows.
func Namespaces() ([]string, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

func (l *Lab) mustRun(args ...string) string {
	l.t.Helper()
	out, err := run(args...)
	if err != nil {
		l.t.Fatalf("netlab: %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// run runs a short command with a deadline and returns its combined output.
func run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
