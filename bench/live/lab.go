//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpsentry/tcpsentry/bench/traffic"
)

// Names of the veth pair in the lab's namespace: the sender writes on
// inj0, the readers capture on cap0.
const (
	injIface = "inj0"
	capIface = "cap0"
)

// lab is a network namespace holding a veth pair and nothing else: no
// addresses and IPv6 off, so the kernel sends nothing on it by itself and
// every frame on cap0 is one the sender wrote on inj0. The frames are
// addressed to MACs no interface has, so the namespace's IP stack drops
// them after the capture taps saw them.
type lab struct {
	ns   string // namespace name
	path string // /var/run/netns/<ns>
	dir  string // temporary directory holding the pcap
	pcap string
	pkts int // packets in the pcap
}

// checkTools says what is missing to run the benchmark, nil if nothing.
func checkTools() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the live benchmark needs root (network namespaces, CAP_NET_RAW); running as uid %d", os.Geteuid())
	}
	for _, t := range []struct{ cmd, pkg string }{
		{"ip", "iproute2"}, {"tcpreplay", "tcpreplay"}, {"tcpdump", "tcpdump"}, {"taskset", "util-linux"},
	} {
		if _, err := exec.LookPath(t.cmd); err != nil {
			return fmt.Errorf("%s is not installed (Debian package %s: apt-get install %s)", t.cmd, t.pkg, t.pkg)
		}
	}
	return nil
}

// newLab creates the namespace and the veth pair and writes the traffic.
// On error it removes whatever it created; otherwise the caller must call
// close (also on error paths and signals).
func newLab(ctx context.Context, topt traffic.Options) (l *lab, err error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	l = &lab{ns: "tsbench-" + hex.EncodeToString(rnd[:])}
	l.path = "/var/run/netns/" + l.ns
	defer func() {
		if err != nil {
			l.close()
			l = nil
		}
	}()
	if l.dir, err = os.MkdirTemp("", "tcpsentry-live-"); err != nil {
		return l, err
	}
	if err = runCmd(ctx, "ip", "netns", "add", l.ns); err != nil {
		return l, err
	}
	steps := [][]string{
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", l.ns, "link", "add", injIface, "type", "veth", "peer", "name", capIface},
		{"ip", "netns", "exec", l.ns, "sysctl", "-q", "-w", "net.ipv6.conf." + injIface + ".disable_ipv6=1", "net.ipv6.conf." + capIface + ".disable_ipv6=1"},
		{"ip", "-n", l.ns, "link", "set", injIface, "up"},
		{"ip", "-n", l.ns, "link", "set", capIface, "up"},
	}
	for _, s := range steps {
		if err = runCmd(ctx, s...); err != nil {
			return l, err
		}
	}
	l.pcap = filepath.Join(l.dir, "traffic.pcap")
	f, err := os.Create(l.pcap)
	if err != nil {
		return l, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := traffic.Write(w, topt)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return l, fmt.Errorf("writing the traffic: %w", err)
	}
	l.pkts = st.Packets
	return l, nil
}

// close removes the namespace (and with it the veth pair) and the
// temporary directory. It may be called on a half-built lab.
func (l *lab) close() {
	if l == nil {
		return
	}
	if l.ns != "" {
		// A fresh context: close also runs after a cancelled one.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = runCmd(ctx, "ip", "netns", "del", l.ns)
		cancel()
		l.ns = ""
	}
	if l.dir != "" {
		_ = os.RemoveAll(l.dir)
		l.dir = ""
	}
}

// runCmd runs a command and returns its output in the error if it fails.
func runCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// packetSockets counts the AF_PACKET sockets open in the namespace
// (/proc/net/packet), so that a point starts only once the previous
// reader's sockets are gone and no other tap slows the sender.
func (l *lab) packetSockets(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.ns, "cat", "/proc/net/packet").Output()
	if err != nil {
		return 0, fmt.Errorf("reading /proc/net/packet in %s: %w", l.ns, err)
	}
	n := strings.Count(strings.TrimSpace(string(out)), "\n") // minus the header line
	return n, nil
}

// waitNoSockets waits until no packet socket is left in the namespace.
func (l *lab) waitNoSockets(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := l.packetSockets(ctx)
		if err != nil || n == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d packet socket(s) still open in %s after 10 s", n, l.ns)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// vethDrops is what the veth pair dropped before any capture socket saw
// a frame: inj0's transmit drops (cap0's backlog was full) and cap0's
// receive drops.
func (l *lab) vethDrops(ctx context.Context) (uint64, error) {
	out, err := exec.CommandContext(ctx, "ip", "-n", l.ns, "-s", "-j", "link", "show").Output()
	if err != nil {
		return 0, fmt.Errorf("ip -s link: %w", err)
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX struct{ Dropped uint64 } `json:"rx"`
			TX struct{ Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return 0, fmt.Errorf("ip -s -j link: %w", err)
	}
	var n uint64
	for _, k := range links {
		switch k.Name {
		case injIface:
			n += k.Stats.TX.Dropped
		case capIface:
			n += k.Stats.RX.Dropped
		}
	}
	return n, nil
}

// inNetns runs f on a thread that joined the lab's namespace; sockets
// keep the namespace they were created in. If the thread cannot return
// to its namespace it stays locked, and Go ends it with the goroutine.
func (l *lab) inNetns(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(l.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", l.path, err)
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", l.path, err)
			return
		}
		err = f()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
