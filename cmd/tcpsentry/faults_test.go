package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/bench/workload"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
)

// syncBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// child is this test binary running as the tcpsentry command.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
}

// startChild starts `tcpsentry args...` as a child process; the test's
// cleanup kills it if it still runs.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), asCommand+"=1")
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// wait waits at most d for the child to exit and returns its exit code.
func (c *child) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("%s still running after %v; stderr:\n%s", strings.Join(c.cmd.Args[1:], " "), d, c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

// workloadCapture writes a bench/workload capture of conns connections
// and returns its path and number of packets.
func workloadCapture(t *testing.T, dir string, conns int) (string, int) {
	t.Helper()
	o := workload.DefaultOptions()
	o.Connections, o.Concurrent, o.MaxResponse = conns, conns/10, 20_000
	path := filepath.Join(dir, fmt.Sprintf("workload-%d.pcap", conns))
	st, err := workload.WriteFile(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return path, st.Packets
}

// summaryPackets is the packet count of a replay summary.
var summaryPackets = regexp.MustCompile(`(?m)^  packets   (\d+) `)

// checkEventLines checks that out is whole JSON lines, each an event, and
// returns them with the run's random event id prefix taken out.
func checkEventLines(t *testing.T, out []byte) []string {
	t.Helper()
	if len(out) > 0 && out[len(out)-1] != '\n' {
		t.Fatalf("the events end with half a line: %q", out[max(0, len(out)-200):])
	}
	var evs []string
	for i, line := range lines(string(out)) {
		var e struct {
			Event struct{ ID, Action string }
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Event.ID == "" || e.Event.Action == "" {
			t.Fatalf("line %d is not a whole event (%v): %q", i+1, err, line)
		}
		evs = append(evs, eventID.ReplaceAllString(line, `"id":"ID"`))
	}
	return evs
}

// eventCounts sums the counts of the summary's "events" line.
func eventCounts(t *testing.T, stderr string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  events    (.*)$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no events line in the summary:\n%s", stderr)
	}
	if m[1] == "none" {
		return 0
	}
	n := 0
	for _, part := range strings.Split(m[1], ", ") {
		f := strings.Fields(part)
		if len(f) != 2 {
			t.Fatalf("events line part %q (a loss or a suppressed type?):\n%s", part, stderr)
		}
		k, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}

// prefixCapture writes the first n packets of the pcap src to dst.
func prefixCapture(t *testing.T, src, dst string, n int) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	bw := bufio.NewWriterSize(out, 1<<20)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		t.Fatal(err)
	}
	for range n {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
}

// feed writes the file at path into the FIFO fifo, chunk bytes every
// pause, and closes it at the end; it says on fed how many bytes went in
// after each chunk. hold, when not nil, is closed by the test to let the
// rest go after the first holdAt bytes. A write the reader refuses (it
// exited) ends the feed.
func feed(t *testing.T, fifo, path string, chunk int, pause time.Duration, holdAt int, hold <-chan struct{}, fed chan<- int) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		close(fed)
		return
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		close(fed)
		return
	}
	defer f.Close()
	defer close(fed)
	for off := 0; off < len(data); off += chunk {
		if hold != nil && off >= holdAt {
			<-hold
			hold = nil
		}
		if _, err := f.Write(data[off:min(off+chunk, len(data))]); err != nil {
			if !errors.Is(err, syscall.EPIPE) {
				t.Error(err)
			}
			return
		}
		select {
		case fed <- min(off+chunk, len(data)):
		default:
		}
		time.Sleep(pause)
	}
}

// TestReplaySignalMidway: SIGTERM or SIGINT in the middle of a replay
// that takes seconds (the capture comes through a FIFO at a set pace, or
// stalls there) stops it at once: exit 0, the "interrupted" line and the
// summary, every event printed is a whole JSON line, the summary counts
// exactly the events printed, and its packets are fewer than the file's.
// They are a prefix of the file: replaying those packets alone as a file
// gives the same events (one worker, so that the order is the file's).
func TestReplaySignalMidway(t *testing.T) {
	dir := t.TempDir()
	path, total := workloadCapture(t, dir, 8_000)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		stall bool // the writer stops in the middle; else it goes on
	}{
		{"SIGTERM flowing", syscall.SIGTERM, false},
		{"SIGINT flowing", syscall.SIGINT, false},
		{"SIGTERM stalled", syscall.SIGTERM, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "capture.fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			half := int(fi.Size() / 2)
			var hold chan struct{}
			if c.stall {
				hold = make(chan struct{})
				defer close(hold)
			}
			fed := make(chan int, 1)
			// 64 KiB every 5 ms: at most 13 MB/s, 2 s or more for the file.
			go feed(t, fifo, path, 64<<10, 5*time.Millisecond, half, hold, fed)
			p := startChild(t, "replay", "--workers", "1", fifo)
			for n := range fed {
				if n >= half {
					break
				}
			}
			if c.stall {
				time.Sleep(300 * time.Millisecond) // the reader waits in read(2)
			}
			sent := time.Now()
			if err := p.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			code := p.wait(t, 10*time.Second)
			t.Logf("exit %d %v after %v", code, c.sig, time.Since(sent).Round(time.Millisecond))
			stderr := p.stderr.String()
			if code != 0 {
				t.Fatalf("exit %d after %v; stderr:\n%s", code, c.sig, stderr)
			}
			if !strings.Contains(stderr, "tcpsentry: interrupted; results cover the part of "+fifo+" read so far\n") {
				t.Errorf("no interrupted line:\n%s", stderr)
			}
			m := summaryPackets.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no summary:\n%s", stderr)
			}
			packets, _ := strconv.Atoi(m[1])
			if packets == 0 || packets >= total {
				t.Fatalf("summary counts %d packets of the file's %d:\n%s", packets, total, stderr)
			}
			evs := checkEventLines(t, p.stdout.Bytes())
			if n := eventCounts(t, stderr); n != len(evs) || n == 0 {
				t.Fatalf("summary counts %d events, %d printed:\n%s", n, len(evs), stderr)
			}
			t.Logf("%d of %d packets, %d events", packets, total, len(evs))

			prefix := filepath.Join(t.TempDir(), "prefix.pcap")
			prefixCapture(t, path, prefix, packets)
			var out, errb bytes.Buffer
			if code := run([]string{"replay", "--workers", "1", prefix}, &out, &errb); code != 0 {
				t.Fatalf("replay of the prefix: exit %d: %s", code, errb.String())
			}
			want := checkEventLines(t, out.Bytes())
			if strings.Join(evs, "\n") != strings.Join(want, "\n") {
				t.Errorf("the interrupted replay's %d events differ from the %d of its %d packets replayed as a file", len(evs), len(want), packets)
				diffLines(t, evs, want)
			}
			// The summary's capture span is that of the packets counted.
			span := regexp.MustCompile(`(?m)^  capture   .*$`)
			if got, w := span.FindString(stderr), span.FindString(errb.String()); got != w {
				t.Errorf("capture line %q; the prefix's is %q", got, w)
			}
		})
	}
}

// diffLines logs the first lines where got and want differ.
func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	shown := 0
	for i := 0; i < max(len(got), len(want)) && shown < 5; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Logf("line %d:\n got  %s\n want %s", i+1, g, w)
			shown++
		}
	}
}

// mountTmpfs mounts a tmpfs with the given options on a new directory
// and unmounts it at cleanup. Needs root.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tcpsentry-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -t tmpfs -o %s: %v: %s", opts, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestStoreReadOnly: `tcpsentry run` with the embedded broker and its
// --data-dir on a read-only file system (a new, empty one, and one that
// holds the store of an earlier run) stops at start with one line that
// names the directory and the reason, and exit 1. (chmod would not do:
// root writes through it.)
func TestStoreReadOnly(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		dir := mountTmpfs(t, "ro,size=1m")
		checkReadOnlyStore(t, dir)
	})
	t.Run("earlier store", func(t *testing.T) {
		dir := mountTmpfs(t, "size=4m")
		b := startBroker(t, broker.Config{DataDir: dir})
		if code, _, stderr := replay(t, "--quiet", "--nats", b.ClientURL(), "../../testdata/demo.pcap"); code != 0 {
			t.Fatalf("replay into the store: exit %d: %s", code, stderr)
		}
		b.Shutdown()
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v: %s", err, out)
		}
		checkReadOnlyStore(t, dir)
	})
}

func checkReadOnlyStore(t *testing.T, dir string) {
	t.Helper()
	p := startChild(t, "run", "-i", "lo", "--user", "root", "--metrics-addr", "off", "--nats", "embedded", "--broker-listen", "127.0.0.1:0", "--data-dir", dir)
	code := p.wait(t, 20*time.Second)
	want := "tcpsentry: --data-dir " + dir + " is not writable: read-only file system\n"
	if stderr := p.stderr.String(); code != 1 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
}

// TestStoreFull: a replay publishing 10,001 events into a JetStream
// store on a 2 MiB file system. With no size limit on the stream, the
// server refuses every event once its store limit (75% of the free space
// at start) is reached: each refusal is counted, the summary's nats line
// says how many and why, and the replay fails (exit 1) with one line
// saying what to do, at once. When another writer fills the file
// system, the server cannot write and stops answering: the replay waits
// 30 s for it (replayDeliverWait), counts what it holds as not
// delivered, and fails with one line saying why.
func TestStoreFull(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "refused.pcap")
	const n = 10_000 // connections; events: one each and a failed_connection_rate
	writeRefused(t, pcap, n)
	nats := regexp.MustCompile(`(?m)^  nats      (\d+) published(?:, \d+ sent again after failures \(duplicates dropped by the server\))?(?:, (\d+) REFUSED by the server \(insufficient resources\))?(?:, (\d+) NOT DELIVERED \(the broker did not take them within 30s\))?$`)
	for _, c := range []struct {
		name   string
		args   []string
		filler int // bytes another writer puts in the store's file system
		code   int
		last   string // the last line of stderr
		check  func(t *testing.T, published, refused, unsent int)
	}{
		{"no size limit", nil, 0, 1,
			"tcpsentry: the NATS server refused %d events (insufficient resources): its JetStream store is full; free space in its store directory, or give the stream a size limit well below the free space (--events-max-bytes, when tcpsentry creates it) so that the oldest events make room",
			func(t *testing.T, published, refused, unsent int) {
				if published == 0 || refused == 0 || unsent != 0 {
					t.Errorf("%d published, %d refused, %d not delivered: want some of each of the first two", published, refused, unsent)
				}
			}},
		{"filled by another writer", nil, 1900 << 10, 1, "tcpsentry: %d events were not delivered to NATS; the last failure: the server stopped acknowledging events (nats: timeout waiting for ack); a JetStream server does so when the file system of its store is full: see its log",
			func(t *testing.T, published, refused, unsent int) {
				if unsent == 0 {
					t.Errorf("%d published, %d refused, none held: the file system was not full?", published, refused)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.filler > 0 && testing.Short() {
				t.Skip("waits 30 s for a broker that no longer answers")
			}
			dir := mountTmpfs(t, "size=2m")
			b := startBroker(t, broker.Config{DataDir: dir})
			if c.filler > 0 {
				if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, c.filler), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			p := startChild(t, append(append([]string{"replay", "--nats", b.ClientURL()}, c.args...), pcap)...)
			code := p.wait(t, 50*time.Second)
			stderr := p.stderr.String()
			t.Logf("exit %d after %v:\n%s", code, time.Since(start).Round(time.Millisecond), stderr)
			m := nats.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("no nats line of the expected form in the summary:\n%s", stderr)
			}
			count := func(s string) int { k, _ := strconv.Atoi(s); return k }
			published, refused, unsent := count(m[1]), count(m[2]), count(m[3])
			if events := eventCounts(t, stderr); events != n+1 || published+refused+unsent != events {
				t.Errorf("%d events; %d published + %d refused + %d not delivered", events, published, refused, unsent)
			}
			c.check(t, published, refused, unsent)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if c.last != "" {
				want := fmt.Sprintf(c.last, refused+unsent)
				if got := lines(stderr); got[len(got)-1] != want {
					t.Errorf("last line %q\nwant %q", got[len(got)-1], want)
				}
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panic:\n%s", stderr)
			}
			// What was published is in the stream; with a size limit,
			// only the newest events.
			if c.filler == 0 {
				stored := len(readStream(t, b.ClientURL()))
				if stored == 0 || stored > published || c.code == 1 && stored != published {
					t.Errorf("%d events stored, %d published", stored, published)
				}
				t.Logf("%d stored", stored)
			}
		})
	}
}

// TestRunLinkDownUp: `tcpsentry run` captures on a veth end in a
// namespace; the link is set down, then up again. Capture resumes on the
// same sockets (an event of a connection refused after the link came
// back arrives, as one before it did), the log says when the interface
// went down and when capture resumed, and the summary counts the
// ENETDOWN errors (one per socket) as socket errors; it does not report
// them as errors of unknown cause.
func TestRunLinkDownUp(t *testing.T) {
	if err := netlab.Check(); err != nil {
		netlab.Unavailable(t, "%v", err)
	}
	lab := netlab.New(t)
	ns := lab.NS(netlab.Server)
	p := startRun(t, "--netns", ns, "-i", netlab.Iface, "--workers", "2")
	lab.Refused(netip.AddrPortFrom(netlab.ServerV4, 7301), 41301)
	refusedAt(t, p, 7301)

	link := func(state string) {
		t.Helper()
		if out, err := exec.Command("ip", "-n", ns, "link", "set", netlab.Iface, state).CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s: %v: %s", state, err, out)
		}
	}
	link("down")
	waitStderr(t, p, "tcpsentry: warning: interface DOWN: nothing is captured on it until it is up again interface="+netlab.Iface+"\n")
	time.Sleep(time.Second)
	link("up")
	waitStderr(t, p, "tcpsentry: interface up again: capture resumed interface="+netlab.Iface+" down_s=")
	// Both ends have their carrier again before the client dials.
	for _, side := range []netlab.Side{netlab.Client, netlab.Server} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			out, _ := exec.Command("ip", "-n", lab.NS(side), "link", "show", netlab.Iface).CombinedOutput()
			if strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: link not up 5 s after ip link set up:\n%s", side, out)
			}
		}
	}
	lab.Refused(netip.AddrPortFrom(netlab.ServerV4, 7302), 41302)
	refusedAt(t, p, 7302)

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.Stderr())
	}
	errs := p.Stderr()
	t.Logf("stderr:\n%s", errs)
	if !regexp.MustCompile(`(?m)^  kernel    eth0: .*; 2 socket errors \(2 ENETDOWN: the link went down, one per socket each time\)$`).MatchString(errs) {
		t.Errorf("the summary does not count the 2 sockets' ENETDOWN errors:\n%s", errs)
	}
	if strings.Contains(errs, "capture socket errors") {
		t.Errorf("the link's errors were reported as of unknown cause:\n%s", errs)
	}
	evs := parseEvents(t, p.Stdout())
	if len(evs) != 2 {
		t.Errorf("events %q; want the two refusals", evs)
	}
}

// refusedAt waits for the connection_refused event about port.
func refusedAt(t *testing.T, p *sensorProc, port int) {
	t.Helper()
	if !p.waitOutput(fmt.Sprintf(`"port":%d}`, port)) || !p.waitOutput(`"action":"connection_refused"`) {
		t.Fatalf("no event about port %d within 10 s; stdout:\n%s\nstderr:\n%s", port, p.Stdout(), p.Stderr())
	}
}

// waitStderr waits up to 10 s for the child's stderr to contain s.
func waitStderr(t *testing.T, p *sensorProc, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Stderr(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr lacks %q after 10 s:\n%s", s, p.Stderr())
		}
	}
}
