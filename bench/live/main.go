//go:build linux

// Command live benchmarks live capture: the same traffic, replayed onto a
// veth pair in a private network namespace as fast as the sender can and
// at fixed rates, read by tcpsentry's ring with the full pipeline and
// alone, by a minimal gopacket/afpacket reader and by tcpdump, one after
// the other. It prints a Markdown table of received packets/s and kernel
// drops, and checks the goals.
//
//	go run ./bench/live [-rates 50k,100k,200k,400k,top] [-duration 3s] [-repeat 3] [-workers 1,2] [-out bench/results] [-json FILE] [-quick]
//
// With -json it also writes the results as JSON for other programs (the
// shape is described at report.LiveResults in bench/report).
//
// It needs root, tcpreplay, tcpdump, ip and taskset. Everything it
// creates (the namespace, its veth pair, a temporary pcap) is removed at
// the end, on error and on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/traffic"
	"github.com/tcpsentry/tcpsentry/ring"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "live:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("live", flag.ContinueOnError)
	rates := fs.String("rates", "50k,100k,200k,400k,top", "offered rates in packets/s (k = 1000), top = as fast as the sender can; none = only the capacity runs")
	duration := fs.Duration("duration", 3*time.Second, "how long each point sends")
	repeat := fs.Int("repeat", 3, "runs per point (the median is reported)")
	workers := fs.String("workers", "1,2", "worker counts of tcpsentry's readers")
	out := fs.String("out", "", "also write the table to DIR/live-<date>.md")
	jsonOut := fs.String("json", "", "also write the results as JSON to `FILE` (for other programs; see LiveResults in bench/report)")
	quick := fs.Bool("quick", false, "smoke run: one short low-rate point per reader")
	ringMiB := fs.Int("ring-mib", 32, "ring memory of every reader in MiB")
	snaplen := fs.Int("snaplen", 0, "snap length of tcpsentry's readers in `bytes` (0: its default, 256; 262144: whole frames)")
	capacity := fs.Bool("capacity", true, "also time how fast each in-process reader empties a full ring")
	only := fs.String("readers", "", "run only these readers (keys, e.g. a1,a'1,b,c; default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := defaultConfig()
	cfg.Duration, cfg.Repeat, cfg.Capacity, cfg.Progress = *duration, *repeat, *capacity, os.Stderr
	cfg.Geometry.Blocks = *ringMiB << 20 / cfg.Geometry.BlockSize
	cfg.Geometry.Snaplen = *snaplen
	var err error
	if cfg.Rates, err = parseRates(*rates); err != nil {
		return err
	}
	if cfg.Workers, err = parseInts(*workers); err != nil {
		return fmt.Errorf("-workers: %w", err)
	}
	if *quick {
		cfg = quickConfig(cfg)
	}
	if cfg.Repeat < 1 || cfg.Duration <= 0 || cfg.Geometry.Blocks < 2 {
		return errors.New("-repeat must be ≥ 1, -duration > 0 and -ring-mib ≥ 2")
	}
	readers := defaultReaders(cfg)
	if *only != "" {
		keep := strings.Split(*only, ",")
		all := readers
		readers = func(b *bench) []readerSpec {
			var out []readerSpec
			for _, s := range all(b) {
				if slices.Contains(keep, s.Key) {
					out = append(out, s)
				}
			}
			return out
		}
	}
	// The JSON file is created before the benchmark, so that a bad path
	// does not cost a whole run.
	var jf *os.File
	if *jsonOut != "" {
		if jf, err = os.Create(*jsonOut); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
		defer func() {
			if jf != nil { // not written: no empty or partial file left behind
				jf.Close()
				os.Remove(jf.Name())
			}
		}()
	}
	res, err := runBench(ctx, cfg, readers)
	if err != nil {
		return err
	}
	var sb strings.Builder
	res.report(&sb)
	fmt.Print(sb.String())
	if *out != "" {
		name := filepath.Join(*out, "live-"+res.Machine.Date.Format("2006-01-02")+".md")
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(name, []byte(sb.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", name)
	}
	if jf != nil {
		err := res.writeJSON(jf)
		if cerr := jf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("-json: %w", err) // the partial file is removed
		}
		jf = nil
		fmt.Fprintln(os.Stderr, "wrote", *jsonOut)
	}
	return nil
}

// defaultConfig is the benchmark the issue asks for: 20,000 connections,
// 5,000 at once, 10% IPv6 and 10% VLAN, 32 MiB of ring per reader in
// 1 MiB blocks.
func defaultConfig() config {
	return config{
		Rates:    []int{50000, 100000, 200000, 400000, 0},
		Duration: 3 * time.Second,
		Repeat:   3,
		Workers:  []int{1, 2},
		Geometry: ringGeometry{BlockSize: ring.DefaultBlockSize, Blocks: 32},
		Traffic:  traffic.Options{Connections: 20000, Concurrent: 5000, IPv6Share: 0.1, VLANShare: 0.1, Seed: 1},
		Capacity: true,
		// A run empties 16 MiB in a few milliseconds, and the machine's
		// memory system makes single runs vary by 2× and more.
		CapacityRepeat: 9,
	}
}

// quickConfig is the smoke run: one second at 5,000 packets/s for every
// reader, once, on a small pcap; nothing should drop.
func quickConfig(cfg config) config {
	cfg.Rates = []int{5000}
	cfg.Duration = time.Second
	cfg.Repeat = 1
	cfg.Capacity = false
	cfg.Traffic.Connections, cfg.Traffic.Concurrent = 2000, 500
	return cfg
}

// defaultReaders is every reader of the benchmark: (a) the full pipeline
// and (a') the ring alone for each worker count, (b) gopacket/afpacket,
// (c) tcpdump. The readers' CPUs are the bench's, the sender's last.
func defaultReaders(cfg config) func(b *bench) []readerSpec {
	return func(b *bench) []readerSpec {
		var specs []readerSpec
		specs = append(specs, pipelineReaders(cfg, b)...)
		for _, w := range cfg.Workers {
			specs = append(specs, readerSpec{
				Key: fmt.Sprintf("a'%d", w), Name: fmt.Sprintf("tcpsentry ring count-only, %d worker(s)", w),
				New: func() reader { return &ringCount{workers: w, geom: cfg.Geometry, cpus: b.cpus} },
			})
		}
		specs = append(specs,
			readerSpec{Key: keyAfpacket, Name: "gopacket/afpacket ZeroCopyReadPacketData, count-only",
				New: func() reader { return &afpacketCount{geom: cfg.Geometry, cpu: b.cpus[0]} }},
			readerSpec{Key: keyTcpdump, Name: "tcpdump -w /dev/null",
				New:        func() reader { return &tcpdumpReader{geom: cfg.Geometry, cpu: b.cpus[0]} },
				NoCapacity: "it reads from the moment it listens"},
		)
		return specs
	}
}

func parseRates(s string) ([]int, error) {
	var out []int
	if s == "none" { // only the capacity runs
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "top" || f == "topspeed" {
			out = append(out, 0)
			continue
		}
		mul := 1
		if v, ok := strings.CutSuffix(f, "k"); ok {
			f, mul = v, 1000
		} else if v, ok := strings.CutSuffix(f, "m"); ok {
			f, mul = v, 1000000
		}
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a rate (e.g. 50k, 200000, top)", f)
		}
		out = append(out, int(n*float64(mul)))
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
