package netlab

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The two ends of a Wire's veth pair.
const (
	WireInject  = "inj0" // frames written here ...
	WireCapture = "cap0" // ... arrive here
)

// Wire is a network namespace with one veth pair, WireInject <-> WireCapture,
// and nothing else: no addresses and IPv6 off, so the kernel sends nothing
// on it by itself, and the frames written on WireInject are exactly the
// traffic WireCapture sees. Recorded traffic is replayed onto it to test a
// live capture against a replay of the same file; the namespace keeps the
// recorded addresses away from every real network.
type Wire struct {
	NS   string // namespace name
	Path string // /var/run/netns/NS, for ring.LiveConfig.Netns
	t    testing.TB
}

// NewWire creates a Wire, removed at the end of t. It skips (or fails
// under CI=true) without root.
func NewWire(t testing.TB) *Wire {
	t.Helper()
	if err := Check(); err != nil {
		Unavailable(t, "%v", err)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	w := &Wire{NS: NamePrefix + "w" + hex.EncodeToString(rnd[:]), t: t}
	w.Path = "/var/run/netns/" + w.NS
	if out, err := run("ip", "netns", "add", w.NS); err != nil {
		Unavailable(t, "netlab: cannot create a network namespace here: %v: %s", err, strings.TrimSpace(out))
	}
	t.Cleanup(func() { _, _ = run("ip", "netns", "del", w.NS) })
	for _, args := range [][]string{
		{"ip", "netns", "exec", w.NS, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", w.NS, "link", "add", WireInject, "type", "veth", "peer", "name", WireCapture},
		{"ip", "-n", w.NS, "link", "set", WireInject, "up"},
		{"ip", "-n", w.NS, "link", "set", WireCapture, "up"},
		{"ip", "-n", w.NS, "link", "set", "lo", "up"},
	} {
		if out, err := run(args...); err != nil {
			t.Fatalf("netlab: %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return w
}

// Capture starts tcpdump on iface of the wire's namespace, as Lab.Capture
// does; it is stopped at the end of the test if not before.
func (w *Wire) Capture(iface, file, filter string) *Capture {
	w.t.Helper()
	return startCapture(w.t, w.NS, iface, file, filter, func(cmd *exec.Cmd) (*Proc, error) {
		p, err := startProc(cmd)
		if err == nil {
			// Registered before the Capture's own cleanup, so it runs
			// after it: a last resort for a tcpdump that did not stop.
			w.t.Cleanup(func() { _ = p.Wait(5 * time.Second) })
		}
		return p, err
	})
}

// Exec runs a command in the wire's namespace and fails the test if it
// fails.
func (w *Wire) Exec(args ...string) string {
	w.t.Helper()
	out, err := run(append([]string{"ip", "netns", "exec", w.NS}, args...)...)
	if err != nil {
		w.t.Fatalf("netlab: %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

var (
	tcpreplaySent   = regexp.MustCompile(`Actual: (\d+) packets`)
	tcpreplayFailed = regexp.MustCompile(`Failed packets:\s+(\d+)`)
)

// Replay sends a pcap file (gzip-compressed if it ends in .gz) onto
// WireInject with tcpreplay, at the pace it was recorded unless topspeed,
// and returns the number of packets tcpreplay says it sent.
func (w *Wire) Replay(file string, topspeed bool) (int, error) {
	if _, err := exec.LookPath("tcpreplay"); err != nil {
		return 0, fmt.Errorf("tcpreplay (Debian package tcpreplay) is not installed")
	}
	if strings.HasSuffix(file, ".gz") {
		raw := filepath.Join(w.t.TempDir(), strings.TrimSuffix(filepath.Base(file), ".gz"))
		if err := gunzipFile(file, raw); err != nil {
			return 0, err
		}
		file = raw
	}
	args := []string{"ip", "netns", "exec", w.NS, "tcpreplay", "-i", WireInject}
	if topspeed {
		args = append(args, "--topspeed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], append(args[1:], file)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("tcpreplay %s: %v: %s", file, err, out)
	}
	m := tcpreplaySent.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("tcpreplay %s: no packet count in its output:\n%s", file, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	if f := tcpreplayFailed.FindSubmatch(out); f != nil && string(f[1]) != "0" {
		return n, fmt.Errorf("tcpreplay %s: %s packets failed:\n%s", file, f[1], out)
	}
	return n, nil
}

func gunzipFile(from, to string) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", from, err)
	}
	return out.Close()
}
