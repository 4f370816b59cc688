//go:build linux

// Command soak runs one capture through tcpsentry's whole replay
// pipeline (cmd/tcpsentry/sensor, in this process) again and again for a
// while, and watches the process: resident memory (VmRSS), heap in use,
// goroutines and GC cycles, sampled every -every. It prints a table as it
// goes and a verdict at the end, and can write both as Markdown:
//
//	go run ./bench/soak [-duration 10m] [-every 10s] [-file CAPTURE | -connections 50000] [-workers 2] [-tolerance 20] [-fresh] [-out soak.md]
//
// By default one pipeline runs for the whole duration, as a sensor does:
// it is fed the capture again and again as one stream, every pass with
// its timestamps moved on by the capture's span plus passGap, so that
// capture time only goes forward and the previous pass's connections
// have left the table. Flat then means: after the first pass (which
// grows the flow tables and buffers to their working size), resident
// memory and heap in use stay within -tolerance percent of their lowest
// sample, and the goroutine count does not change.
//
// With -fresh every pass is a replay of its own (a new pipeline each
// time), which checks that a replay's end releases what it took: the
// heap left after a collection at the end of each replay stays within
// -tolerance percent (plus 1 MiB) of the first one's, resident memory
// after returning freed memory to the system (debug.FreeOSMemory) within
// -tolerance percent of its lowest, and every replay ends with the same
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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"encoding/binary"

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
	fresh       bool    // a new pipeline per pass
	out         string
	args        []string
}

func parse(args []string, stderr io.Writer) (config, error) {
	c := config{args: args}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.file, "file", "", "capture to replay (default: generate one with bench/workload)")
	fs.IntVar(&c.connections, "connections", 50_000, "connections of the generated capture (without -file)")
	fs.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to replay (with -fresh, the replay under way when it ends is finished)")
	fs.DurationVar(&c.every, "every", 10*time.Second, "sampling interval")
	fs.IntVar(&c.workers, "workers", 2, "workers of the pipeline")
	fs.Float64Var(&c.tolerance, "tolerance", 20, "largest growth, in percent, that still counts as flat")
	fs.BoolVar(&c.fresh, "fresh", false, "a new replay (a new pipeline) per pass, instead of one pipeline fed the capture again and again")
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

// loopEnd is the state after one replay (-fresh), after a collection
// and after returning freed memory to the system.
type loopEnd struct {
	goroutines int
	heapLive   uint64 // HeapAlloc after runtime.GC
	rss        int64  // VmRSS after debug.FreeOSMemory
}

// soak is a run's state, shared by the replay loop and the sampler.
type soak struct {
	cfg     config
	mu      sync.Mutex
	samples []sample
	ends    []loopEnd
	loops   int
	packets uint64
	// fed counts the frames handed to the continuous pipeline; fedAll is
	// set when the feeding stops, after which the pipeline winds down
	// and is no longer sampled.
	fed    atomic.Uint64
	fedAll atomic.Bool
	// firstLoop is when the first pass ended (0: not yet).
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
	how := "one pipeline fed it again and again"
	if cfg.fresh {
		how = "a new replay each pass"
	}
	fmt.Fprintf(stdout, "soak: replaying %s with %d worker(s) for %v (%s), a sample every %v\n", path, cfg.workers, cfg.duration, how, cfg.every)
	fmt.Fprintln(stdout, header)
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.sampleEvery(stdout, done)
	}()
	if cfg.fresh {
		err = s.loop(ctx, path)
	} else {
		err = s.stream(ctx, path)
	}
	close(done)
	<-sampled
	if err != nil {
		return false, err
	}
	if cfg.fresh {
		s.take(stdout) // the last look; a stream's pipeline is gone by now
	}
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
	return workload.WriteFile(path, o)
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
		debug.FreeOSMemory() // a collection, then freed memory back to the system
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
		s.ends = append(s.ends, loopEnd{goroutines: g, heapLive: ms.HeapAlloc, rss: vmRSS()})
		s.mu.Unlock()
	}
	return nil
}

// passGap is the capture time between two passes of the continuous
// soak: longer than every flow-table timeout (5 min for an established
// connection) and than the memory of ended connections (60 s), so that a
// pass starts with the previous one's connections gone, as a new day of
// the same traffic would.
const passGap = 10 * time.Minute

// stream runs one replay for the whole duration, fed the capture again
// and again through a pipe, with every pass's timestamps moved on.
func (s *soak) stream(ctx context.Context, path string) error {
	pr, pw := io.Pipe()
	fed := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(pw, 1<<20)
		err := s.feed(ctx, path, bw)
		s.fedAll.Store(true)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		fed <- err
	}()
	sum, err := sensor.Replay(ctx, bufio.NewReaderSize(pr, 1<<20), sensor.Config{Workers: s.cfg.workers}, io.Discard)
	pr.Close()
	ferr := <-fed
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if ferr != nil && !errors.Is(ferr, io.ErrClosedPipe) {
		return fmt.Errorf("feeding the capture: %w", ferr)
	}
	s.mu.Lock()
	s.packets = sum.Packets
	s.mu.Unlock()
	return nil
}

// feed writes the pcap file at path to w again and again until the
// duration is over or ctx ends: the file header once, then every pass's
// records with their timestamps moved on by the pass number times the
// capture's span plus passGap.
func (s *soak) feed(ctx context.Context, path string, w io.Writer) error {
	deadline := s.start.Add(s.cfg.duration)
	var shift, step int64 // seconds
	// Allocated once: what the feeder allocated per pass would be in the
	// heap figures of the pipeline it feeds.
	br := bufio.NewReaderSize(nil, 1<<20)
	buf := make([]byte, 16+262144)
	for pass := 0; time.Now().Before(deadline) && ctx.Err() == nil; pass++ {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		br.Reset(f)
		first, last, err := s.pass(br, buf, w, pass == 0, shift, deadline)
		f.Close()
		if err != nil {
			return err
		}
		if pass == 0 {
			step = last - first + 1 + int64(passGap/time.Second)
		}
		shift += step
		s.mu.Lock()
		s.loops++
		s.packets = s.fed.Load()
		if s.firstLoop == 0 {
			s.firstLoop = time.Since(s.start)
		}
		s.mu.Unlock()
	}
	return nil
}

// pass copies one pcap file (little-endian, as bench/workload writes)
// from br to w through buf, the header only when header is set, adding
// shift seconds to every record; it stops early at the deadline, between
// records. It returns the first and last record's seconds before the
// shift.
func (s *soak) pass(br *bufio.Reader, buf []byte, w io.Writer, header bool, shift int64, deadline time.Time) (first, last int64, err error) {
	var fh [24]byte
	if _, err := io.ReadFull(br, fh[:]); err != nil {
		return 0, 0, fmt.Errorf("pcap header: %w", err)
	}
	if m := binary.LittleEndian.Uint32(fh[:]); m != 0xa1b2c3d4 && m != 0xa1b23c4d {
		return 0, 0, fmt.Errorf("not a little-endian pcap file (magic %#x): -file takes what bench/workload writes", m)
	}
	if header {
		if _, err := w.Write(fh[:]); err != nil {
			return 0, 0, err
		}
	}
	for n := 0; ; n++ {
		if n%4096 == 0 && time.Now().After(deadline) {
			return first, last, nil
		}
		if _, err := io.ReadFull(br, buf[:16]); err != nil {
			if err == io.EOF {
				return first, last, nil
			}
			return first, last, fmt.Errorf("record %d: %w", n+1, err)
		}
		sec := int64(binary.LittleEndian.Uint32(buf[0:4]))
		if n == 0 {
			first = sec
		}
		last = sec
		incl := int(binary.LittleEndian.Uint32(buf[8:12]))
		if incl > len(buf)-16 {
			return first, last, fmt.Errorf("record %d: %d bytes", n+1, incl)
		}
		if _, err := io.ReadFull(br, buf[16:16+incl]); err != nil {
			return first, last, fmt.Errorf("record %d: %w", n+1, err)
		}
		binary.LittleEndian.PutUint32(buf[0:4], uint32(sec+shift))
		if _, err := w.Write(buf[:16+incl]); err != nil {
			return first, last, err
		}
		s.fed.Add(1)
	}
}

const header = "      time passes      packets   RSS MiB  heap MiB  goroutines    GCs"

// sampleEvery takes a sample every interval until done is closed.
func (s *soak) sampleEvery(w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(s.cfg.every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if !s.fedAll.Load() {
				s.take(w)
			}
		}
	}
}

// take takes one sample and prints its row.
func (s *soak) take(w io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.Lock()
	packets := s.packets
	if !s.cfg.fresh {
		packets = s.fed.Load()
	}
	sm := sample{
		at: time.Since(s.start), loops: s.loops, packets: packets,
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

// verdict judges the samples taken after the first pass ended and, with
// -fresh, the states at the end of every replay.
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
	if len(after) < 2 || s.cfg.fresh && len(s.ends) < 2 {
		return verdict{false, fmt.Sprintf("NOT JUDGED: %d passes and %d samples after the first pass; want at least 2 of each (a longer -duration, a shorter -every, or a smaller capture)", s.loops, len(after))}
	}
	spread := func(vals []int64) (lo, hi int64, growth float64) {
		lo, hi = vals[0], vals[0]
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		return lo, hi, float64(hi-lo) / float64(max(lo, 1))
	}
	if !s.cfg.fresh {
		var rss, heap, gor []int64
		for _, sm := range after {
			rss, heap, gor = append(rss, sm.rss), append(heap, int64(sm.heap)), append(gor, int64(sm.goroutines))
		}
		lo, hi, g := spread(rss)
		check(g <= tol, "RSS after the first pass: %.1f .. %.1f MiB over %d samples (+%.1f%%, at most %.0f%%)", mib(lo), mib(hi), len(after), 100*g, s.cfg.tolerance)
		lo, hi, g = spread(heap)
		check(g <= tol, "heap in use after the first pass: %.1f .. %.1f MiB (+%.1f%%, at most %.0f%%)", mib(lo), mib(hi), 100*g, s.cfg.tolerance)
		lo, hi, _ = spread(gor)
		check(lo == hi, "goroutines after the first pass: %d .. %d (must not change)", lo, hi)
	} else {
		var rss, heap, gor []int64
		for _, e := range s.ends {
			rss, heap, gor = append(rss, e.rss), append(heap, int64(e.heapLive)), append(gor, int64(e.goroutines))
		}
		lo, hi, g := spread(rss)
		check(g <= tol, "RSS at the end of each replay, freed memory returned: %.1f .. %.1f MiB (+%.1f%%, at most %.0f%%)", mib(lo), mib(hi), 100*g, s.cfg.tolerance)
		first := heap[0]
		_, most, _ := spread(heap)
		limit := int64(float64(first)*(1+tol)) + 1<<20
		check(most <= limit, "live heap after each replay (after a GC): first %.1f MiB, last %.1f MiB, most %.1f MiB (at most %.1f MiB)",
			mib(first), mib(heap[len(heap)-1]), mib(most), mib(limit))
		lo, hi, _ = spread(gor)
		check(lo == hi, "goroutines after each of %d replays: %d .. %d (must not change)", len(s.ends), lo, hi)
	}
	packets := s.packets
	if !s.cfg.fresh {
		packets = s.fed.Load()
	}
	word := "FLAT"
	if !flat {
		word = "NOT FLAT"
	}
	lines = append(lines, fmt.Sprintf("%s: %d passes, %d packets in %v", word, s.loops, packets, time.Since(s.start).Round(time.Second)))
	return verdict{flat, strings.Join(lines, "\n")}
}

// markdown is the report of -out.
func (s *soak) markdown(path string, v verdict) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	how := "fed again and again to one pipeline (a pass's timestamps moved on by the capture's span plus " + passGap.String() + ")"
	if s.cfg.fresh {
		how = "replayed again and again, a new pipeline each time"
	}
	fmt.Fprintf(&b, "`go run ./bench/soak %s`: %s %s for %v with %d worker(s), a sample every %v; Go %s, %d CPUs.\n\n",
		strings.Join(s.cfg.args, " "), filepath.Base(path), how, s.cfg.duration, s.cfg.workers, s.cfg.every, runtime.Version(), runtime.NumCPU())
	b.WriteString("| time | passes | packets | RSS MiB | heap in use MiB | goroutines | GC cycles |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sm := range s.samples {
		fmt.Fprintf(&b, "| %v | %d | %d | %.1f | %.1f | %d | %d |\n", sm.at.Round(time.Second), sm.loops, sm.packets, mib(sm.rss), mib(int64(sm.heap)), sm.goroutines, sm.gcs)
	}
	b.WriteString("\n```\n" + v.text + "\n```\n")
	return b.String()
}
