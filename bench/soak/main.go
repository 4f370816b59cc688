//go:build linux

// Command soak replays one capture through tcpsentry's whole replay
// pipeline (cmd/tcpsentry/sensor, in this process) again and again for a
// while, and watches the process: resident memory (VmRSS), heap in use,
// goroutines and GC cycles, sampled every -every. It prints a table as it
// goes and a verdict at the end, and can write both as Markdown:
//
//	go run ./bench/soak [-duration 10m] [-every 10s] [-file CAPTURE | -connections 50000] [-workers 2] [-tolerance 20] [-out soak.md]
//
// Flat means: after the first replay (which grows the flow tables and
// buffers to their working size), resident memory stays within
// -tolerance percent of its lowest sample, the heap left after a
// collection at the end of each replay stays within -tolerance percent
// (plus 1 MiB) of the first one's, and every replay ends with the same
// number of goroutines. The exit status is 0 when flat, 1 when not, 2 on
// an error. Without -file it generates a bench/workload capture in the
// system's temporary directory and removes it at the end.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/workload"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	flat, err := mainErr(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	case !flat:
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	file        string
	connections int
	duration    time.Duration
	every       time.Duration
	workers     int
	tolerance   float64 // percent
	out         string
	args        []string
}

func parse(args []string, stderr io.Writer) (config, error) {
	c := config{args: args}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.file, "file", "", "capture to replay (default: generate one with bench/workload)")
	fs.IntVar(&c.connections, "connections", 50_000, "connections of the generated capture (without -file)")
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to replay (the replay under way when it ends is finished)")
	fs.DurationVar(&c.every, "every", 10*time.Second, "sampling interval")
	fs.IntVar(&c.workers, "workers", 2, "workers of the pipeline")
	fs.Float64Var(&c.tolerance, "tolerance", 20, "largest growth, in percent, that still counts as flat")
	fs.StringVar(&c.out, "out", "", "also write the table and the verdict as Markdown to `FILE`")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.duration <= 0 || c.every <= 0:
		return c, errors.New("-duration and -every must be positive")
	case c.workers < 1 || c.workers > 1024:
		return c, errors.New("-workers must be within [1, 1024]")
	case c.connections < 10:
		return c, errors.New("-connections must be at least 10")
	case c.tolerance < 0:
		return c, errors.New("-tolerance must not be negative")
	}
	return c, nil
}

// sample is one look at the process.
type sample struct {
	at         time.Duration // since the start
	loops      int           // replays finished
	packets    uint64        // replayed in all
	rss        int64         // bytes
	heap       uint64        // bytes in use (HeapInuse)
	goroutines int
	gcs        uint32
}

// loopEnd is the state after one replay, after a collection.
type loopEnd struct {
	goroutines int
	heapLive   uint64 // HeapAlloc after runtime.GC
}

// soak is a run's state, shared by the replay loop and the sampler.
type soak struct {
	cfg     config
	mu      sync.Mutex
	samples []sample
	ends    []loopEnd
	loops   int
	packets uint64
	// firstLoop is when the first replay ended (0: not yet).
	firstLoop time.Duration
	start     time.Time
}

func mainErr(ctx context.Context, args []string, stdout io.Writer) (bool, error) {
	cfg, err := parse(args, os.Stderr)
	if err != nil {
		return false, err
	}
	path := cfg.file
	if path == "" {
		dir, err := os.MkdirTemp("", "tcpsentry-soak-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "soak.pcap")
		st, err := generate(path, cfg.connections)
		if err != nil {
			return false, fmt.Errorf("generating the capture: %w", err)
		}
		fmt.Fprintf(stdout, "soak: generated %s: %d packets, %d connections\n", path, st.Packets, st.Connections)
	}
	if _, err := os.Stat(path); err != nil {
		return false, err
	}
	s := &soak{cfg: cfg, start: time.Now()}
	fmt.Fprintf(stdout, "soak: replaying %s with %d worker(s) for %v, a sample every %v\n", path, cfg.workers, cfg.duration, cfg.every)
	fmt.Fprintln(stdout, header)
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.sampleEvery(stdout, done)
	}()
	err = s.loop(ctx, path)
	close(done)
	<-sampled
	if err != nil {
		return false, err
	}
	s.take(stdout) // the last look
	v := s.verdict()
	fmt.Fprintln(stdout, v.text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(s.markdown(path, v)), 0o644); err != nil {
			return false, err
		}
	}
	return v.flat, nil
}

// generate writes a bench/workload capture of n connections.
func generate(path string, n int) (workload.Stats, error) {
	o := workload.DefaultOptions()
	o.Connections, o.Concurrent = n, max(1, n/10)
	f, err := os.Create(path)
	if err != nil {
		return workload.Stats{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := workload.Write(w, o)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// loop replays the file until the duration is over or ctx ends.
func (s *soak) loop(ctx context.Context, path string) error {
	deadline := s.start.Add(s.cfg.duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		sum, err := sensor.Replay(ctx, bufio.NewReaderSize(f, 1<<20), sensor.Config{Workers: s.cfg.workers}, io.Discard)
		f.Close()
		if err != nil {
			return fmt.Errorf("replay %d: %w", s.loops+1, err)
		}
		if ctx.Err() != nil {
			break // an interrupted replay is not a whole loop
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		g := runtime.NumGoroutine()
		if len(s.ends) > 0 {
			// A goroutine of the replay may still be on its way out (its
			// last instructions after its work); a leaked one stays.
			for i := 0; i < 100 && g > s.ends[0].goroutines; i++ {
				time.Sleep(time.Millisecond)
				g = runtime.NumGoroutine()
			}
		}
		s.mu.Lock()
		s.loops++
		s.packets += sum.Packets
		if s.firstLoop == 0 {
			s.firstLoop = time.Since(s.start)
		}
		s.ends = append(s.ends, loopEnd{goroutines: g, heapLive: ms.HeapAlloc})
		s.mu.Unlock()
	}
	return nil
}

const header = "      time  loops      packets   RSS MiB  heap MiB  goroutines    GCs"

// sampleEvery takes a sample every interval until done is closed.
func (s *soak) sampleEvery(w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(s.cfg.every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.take(w)
		}
	}
}

// take takes one sample and prints its row.
func (s *soak) take(w io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	sm := sample{
		at: time.Since(s.start), loops: s.loops, packets: s.packets,
		rss: vmRSS(), heap: ms.HeapInuse, goroutines: runtime.NumGoroutine(), gcs: ms.NumGC,
	}
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
	fmt.Fprintln(w, sm.row())
}

func (sm sample) row() string {
	return fmt.Sprintf("%10s %6d %12d %9.1f %9.1f %11d %6d", sm.at.Round(time.Second), sm.loops, sm.packets,
		mib(sm.rss), mib(int64(sm.heap)), sm.goroutines, sm.gcs)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// vmRSS is this process's resident memory in bytes (0 if unknown).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// verdict is the run's outcome.
type verdict struct {
	flat bool
	text string // one line per check, then the verdict
}

// verdict judges the samples taken after the first replay ended and the
// states at the end of every replay.
func (s *soak) verdict() verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	tol := s.cfg.tolerance / 100
	var lines []string
	flat := true
	check := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark, flat = "FAIL", false
		}
		lines = append(lines, mark+" "+fmt.Sprintf(format, args...))
	}
	var after []sample
	for _, sm := range s.samples {
		if s.firstLoop > 0 && sm.at >= s.firstLoop {
			after = append(after, sm)
		}
	}
	if len(after) < 2 || len(s.ends) < 2 {
		return verdict{false, fmt.Sprintf("NOT JUDGED: %d replays and %d samples after the first replay; want at least 2 of each (a longer -duration, a shorter -every, or a smaller capture)", len(s.ends), len(after))}
	}
	lo, hi := after[0].rss, after[0].rss
	for _, sm := range after {
		lo, hi = min(lo, sm.rss), max(hi, sm.rss)
	}
	growth := float64(hi-lo) / float64(lo)
	check(growth <= tol, "RSS after the first replay: %.1f .. %.1f MiB over %d samples (+%.1f%%, at most %.0f%%)", mib(lo), mib(hi), len(after), 100*growth, s.cfg.tolerance)
	first, last := s.ends[0], s.ends[len(s.ends)-1]
	var maxHeap uint64
	glo, ghi := first.goroutines, first.goroutines
	for _, e := range s.ends {
		maxHeap = max(maxHeap, e.heapLive)
		glo, ghi = min(glo, e.goroutines), max(ghi, e.goroutines)
	}
	limit := uint64(float64(first.heapLive)*(1+tol)) + 1<<20
	check(maxHeap <= limit, "live heap after each replay (after a GC): first %.1f MiB, last %.1f MiB, most %.1f MiB (at most %.1f MiB)",
		mib(int64(first.heapLive)), mib(int64(last.heapLive)), mib(int64(maxHeap)), mib(int64(limit)))
	check(glo == ghi, "goroutines after each of %d replays: %d .. %d (must not change)", len(s.ends), glo, ghi)
	if flat {
		lines = append(lines, fmt.Sprintf("FLAT: %d replays, %d packets in %v", s.loops, s.packets, time.Since(s.start).Round(time.Second)))
	} else {
		lines = append(lines, fmt.Sprintf("NOT FLAT: %d replays, %d packets in %v", s.loops, s.packets, time.Since(s.start).Round(time.Second)))
	}
	return verdict{flat, strings.Join(lines, "\n")}
}

// markdown is the report of -out.
func (s *soak) markdown(path string, v verdict) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "`go run ./bench/soak %s`: %s replayed again and again for %v with %d worker(s), a sample every %v; Go %s, %d CPUs.\n\n",
		strings.Join(s.cfg.args, " "), filepath.Base(path), s.cfg.duration, s.cfg.workers, s.cfg.every, runtime.Version(), runtime.NumCPU())
	b.WriteString("| time | replays | packets | RSS MiB | heap in use MiB | goroutines | GC cycles |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sm := range s.samples {
		fmt.Fprintf(&b, "| %v | %d | %d | %.1f | %.1f | %d | %d |\n", sm.at.Round(time.Second), sm.loops, sm.packets, mib(sm.rss), mib(int64(sm.heap)), sm.goroutines, sm.gcs)
	}
	b.WriteString("\n```\n" + v.text + "\n```\n")
	return b.String()
}
