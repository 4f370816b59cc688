package netlab

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Capture is a tcpdump running in one of the lab's namespaces (or a
// Wire's).
type Capture struct {
	// Path is the pcap file being written.
	Path string

	t       testing.TB
	proc    *Proc
	stderr  *syncBuffer
	stopped bool
	stats   CaptureStats
}

// CaptureStats are tcpdump's closing counts.
type CaptureStats struct {
	Captured, ReceivedByFilter, DroppedByKernel int
}

// captureBufferKiB is tcpdump's ring buffer (-B).
const captureBufferKiB = 32 << 10

// captureSettle lets packets in flight reach tcpdump before Stop signals it.
const captureSettle = 200 * time.Millisecond

// Capture starts `tcpdump -i IFACE -w FILE --immediate-mode -U -n FILTER`
// in side s's namespace and returns once tcpdump says it is listening, so
// nothing sent after Capture returns is missed. iface is usually Iface
// ("eth0", Ethernet link type) or "any" (LINUX_SLL2). file "" writes
// capture.pcap in a fresh t.TempDir(). filter is a tcpdump expression, ""
// for all. Stop it with Stop before reading the file; the lab kills it at
// cleanup otherwise.
func (l *Lab) Capture(s Side, iface, file, filter string) *Capture {
	l.t.Helper()
	return startCapture(l.t, l.NS(s), iface, file, filter, l.start)
}

// startCapture starts tcpdump in namespace ns with start (which tracks
// the process for cleanup).
func startCapture(t testing.TB, ns, iface, file, filter string, start func(*exec.Cmd) (*Proc, error)) *Capture {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		Unavailable(t, "netlab: tcpdump (Debian package tcpdump) is not installed")
	}
	if file == "" {
		file = filepath.Join(t.TempDir(), "capture.pcap")
	}
	// -B: in immediate mode libpcap uses TPACKET_V2, whose frames are
	// sized for the snap length (256 KiB; the veth keeps offloads), so
	// the default 2 MiB ring holds a handful of frames and a burst of 20
	// SYNs overflowed it (tcpdump counted kernel drops); 32 MiB hold ~120.
	args := []string{"netns", "exec", ns, "tcpdump", "-i", iface, "-w", file,
		"--immediate-mode", "-U", "-n", "-Z", "root", "-B", strconv.Itoa(captureBufferKiB)}
	if iface == "any" {
		// libpcap 1.10 picks SLL2 for "any"; say so for older ones.
		args = append(args, "-y", "LINUX_SLL2")
	}
	if filter != "" {
		args = append(args, filter)
	}
	c := &Capture{Path: file, t: t, stderr: &syncBuffer{}}
	listening := make(chan struct{})
	seen := false
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &lineWriter{fn: func(line string) {
		c.stderr.Write([]byte(line + "\n"))
		if !seen && strings.Contains(line, "listening on") {
			seen = true
			close(listening)
		}
	}}
	p, err := start(cmd)
	if err != nil {
		t.Fatalf("netlab: tcpdump: %v", err)
	}
	c.proc = p
	// Registered after t.TempDir's cleanup, so it runs first: tcpdump
	// has stopped writing before its folder is removed.
	t.Cleanup(func() {
		if !c.stopped {
			c.proc.Signal(syscall.SIGINT)
			_ = c.proc.Wait(5 * time.Second)
		}
	})
	select {
	case <-listening:
	case <-p.done:
		t.Fatalf("netlab: tcpdump %s in %s exited: %v: %s", iface, ns, p.err, c.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("netlab: tcpdump %s in %s: not listening after 10 s: %s", iface, ns, c.stderr.String())
	}
	return c
}

// Stop waits briefly for packets in flight, stops tcpdump with SIGINT (so
// that it writes out the tail), waits for it to exit and returns its
// counts. It may be called more than once, from the test goroutine only.
// A kernel drop is a test error.
func (c *Capture) Stop() CaptureStats {
	c.t.Helper()
	if c.stopped {
		return c.stats
	}
	c.stopped = true
	time.Sleep(captureSettle)
	c.proc.Signal(syscall.SIGINT)
	if err := c.proc.Wait(10 * time.Second); err != nil {
		c.t.Errorf("netlab: tcpdump: %v: %s", err, c.stderr.String())
	}
	c.stats = parseStats(c.stderr.String())
	if c.stats.DroppedByKernel > 0 {
		c.t.Errorf("netlab: tcpdump dropped %d packets: %s", c.stats.DroppedByKernel, c.stderr.String())
	}
	return c.stats
}

// Output returns what tcpdump wrote to stderr so far.
func (c *Capture) Output() string { return c.stderr.String() }

func parseStats(s string) CaptureStats {
	var st CaptureStats
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch rest := strings.Join(f[1:], " "); {
		case strings.HasPrefix(rest, "packets captured"), strings.HasPrefix(rest, "packet captured"):
			st.Captured = n
		case strings.HasPrefix(rest, "packets received by filter"), strings.HasPrefix(rest, "packet received by filter"):
			st.ReceivedByFilter = n
		case strings.HasPrefix(rest, "packets dropped by kernel"), strings.HasPrefix(rest, "packet dropped by kernel"):
			st.DroppedByKernel = n
		}
	}
	return st
}

// lineWriter calls fn with each complete line written to it (exec copies
// a command's output into it, and Cmd.Wait waits for the copy to finish).
type lineWriter struct {
	partial []byte
	fn      func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}
