//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tcpdumpReader is (c): tcpdump -w /dev/null in the lab's namespace,
// pinned with taskset, with the same ring memory (-B, in KiB).
//
// It runs without --immediate-mode: libpcap uses TPACKET_V3 only when
// immediate mode is off (with it, it falls back to TPACKET_V2, a slot per
// frame sized for the 262144-byte snap length, so 32 MiB would hold about
// a hundred frames). Without it libpcap's V3 ring is 256 KiB blocks
// retired after tcpdump's 1 s timeout: the same kind of ring as the
// others, batched, which is what a throughput comparison wants.
//
// Its counts come from its own statistics: SIGUSR1 makes it print them
// while it runs ("N packets captured, N packets received by filter, N
// packets dropped by kernel"), and SIGINT makes it print them and exit.
type tcpdumpReader struct {
	geom ringGeometry
	cpu  int

	cmd   *exec.Cmd
	ready chan struct{}
	exit  chan error // the process ended (Wait's error)

	record  chan struct{} // a statistics record was read (1-buffered)
	scanned chan struct{} // stderr is closed and read

	mu    sync.Mutex
	seq   int // statistics records seen
	last  counts
	lines []string // the tail of stderr, for errors
}

func (r *tcpdumpReader) Name() string { return "tcpdump" }

var (
	reCaptured = regexp.MustCompile(`(\d+) packets? captured`)
	reByFilter = regexp.MustCompile(`(\d+) packets? received by filter`)
	reKernel   = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
	reIface    = regexp.MustCompile(`(\d+) packets? dropped by interface`)
)

func (r *tcpdumpReader) Open(ctx context.Context, l *lab) error {
	r.record = make(chan struct{}, 1)
	r.scanned = make(chan struct{})
	r.ready = make(chan struct{})
	r.exit = make(chan error, 1)
	kib := strconv.FormatInt(r.geom.bytes()>>10, 10)
	args := []string{"ip", "netns", "exec", l.ns, "taskset", "-c", strconv.Itoa(r.cpu),
		"tcpdump", "-i", capIface, "-n", "-w", "/dev/null", "-B", kib}
	// ip netns exec and taskset exec the next program, so the process is
	// tcpdump itself and gets the signals.
	r.cmd = exec.Command(args[0], args[1:]...)
	// Parent-death signal: tcpdump ends with this process even if it is
	// killed. It is tied to the thread that forks, so that thread stays
	// locked to the goroutine that waits for tcpdump.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		return err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := r.cmd.Start(); err != nil {
			started <- fmt.Errorf("%s: %w", strings.Join(args, " "), err)
			return
		}
		started <- nil
		// Wait closes the pipe: read it to its end (the process
		// exited) first, so that the exit summary is not lost.
		r.scan(stderr)
		r.exit <- r.cmd.Wait()
	}()
	if err := <-started; err != nil {
		return err
	}
	// libpcap has bound the socket and set up the ring when tcpdump says
	// it is listening.
	select {
	case <-r.ready:
		return nil
	case err := <-r.exit:
		r.exit <- err
		return fmt.Errorf("tcpdump ended before listening (%v): %s", err, r.tail())
	case <-ctx.Done():
		_, _ = r.Stop()
		return ctx.Err()
	case <-time.After(10 * time.Second):
		_, _ = r.Stop()
		return fmt.Errorf("tcpdump did not say it was listening within 10 s: %s", r.tail())
	}
}

// scan reads tcpdump's stderr: the "listening on" line, then statistics
// records, one line each (SIGUSR1) or three lines (at exit).
func (r *tcpdumpReader) scan(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	var cur counts
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.lines = append(r.lines, line)
		if len(r.lines) > 20 {
			r.lines = r.lines[1:]
		}
		if strings.Contains(line, "listening on "+capIface) {
			close(r.ready)
		}
		if m := reCaptured.FindStringSubmatch(line); m != nil {
			cur.Received, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := reByFilter.FindStringSubmatch(line); m != nil {
			cur.Kernel, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := reKernel.FindStringSubmatch(line); m != nil {
			cur.Drops, _ = strconv.ParseUint(m[1], 10, 64)
			cur.IfDrops = 0
			r.last = cur
			r.seq++
			select {
			case r.record <- struct{}{}:
			default:
			}
		}
		if m := reIface.FindStringSubmatch(line); m != nil {
			// It follows the kernel drops, on their line or the next.
			r.last.IfDrops, _ = strconv.ParseUint(m[1], 10, 64)
		}
		r.mu.Unlock()
	}
	close(r.scanned)
}

func (r *tcpdumpReader) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, " | ")
}

// Run does nothing: tcpdump reads from the moment it listens.
func (r *tcpdumpReader) Run() error { return nil }

// Counts asks tcpdump for its statistics and waits for them.
func (r *tcpdumpReader) Counts() (counts, error) {
	select {
	case <-r.record: // an old one
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return counts{}, fmt.Errorf("tcpdump: %w", err)
	}
	select {
	case <-r.record:
	case <-r.scanned:
		return counts{}, fmt.Errorf("tcpdump ended: %s", r.tail())
	case <-time.After(5 * time.Second):
		return counts{}, fmt.Errorf("tcpdump printed no statistics within 5 s of SIGUSR1: %s", r.tail())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, nil
}

// Stop interrupts tcpdump and returns the statistics of its exit
// summary.
func (r *tcpdumpReader) Stop() (counts, error) {
	if r.cmd == nil || r.cmd.Process == nil {
		return counts{}, nil
	}
	r.mu.Lock()
	seq := r.seq
	r.mu.Unlock()
	_ = r.cmd.Process.Signal(os.Interrupt)
	var err error
	select {
	case err = <-r.exit:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		err = errors.Join(errors.New("tcpdump did not exit within 10 s of SIGINT"), <-r.exit)
	}
	r.cmd = nil
	<-r.scanned
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seq == seq {
		return counts{}, errors.Join(err, fmt.Errorf("no exit summary from tcpdump: %s", strings.Join(r.lines, " | ")))
	}
	return r.last, err
}

// CPU reads tcpdump's user and system time from /proc/PID/stat.
func (r *tcpdumpReader) CPU() (time.Duration, error) {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0, errors.New("tcpdump is not running")
	}
	return procCPU(r.cmd.Process.Pid)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times; it is 100
// on every Linux architecture Go supports.
const clockTicks = 100

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// Fields 14 and 15 (utime, stime); f[0] is field 3.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
