// Command xcore measures how long a cache line takes to go from one CPU
// to another: two threads, pinned to two CPUs, hand a counter back and
// forth through one line, and the time of a hand-over is printed.
//
//	go run ./bench/xcore [-cpus 0,1] [-n 2000000] [-samples 1] [-every 30s]
//
// The replay hands every frame from its reader's CPU to a worker's, so
// this cost is part of each packet's. On a VM it depends on where the
// host runs the two vCPUs at the moment (sharing a last-level cache or
// not), which -samples over time shows (docs/performance.md).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "xcore:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("xcore", flag.ContinueOnError)
	cpus := fs.String("cpus", "", "the two CPUs, comma-separated (default: the first two this process may use)")
	n := fs.Int("n", 2_000_000, "hand-overs a sample")
	samples := fs.Int("samples", 1, "samples to take")
	every := fs.Duration("every", 30*time.Second, "time between samples")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *n < 2 || *samples < 1 || *every < 0 {
		return errors.New("-n must be at least 2, -samples at least 1, -every not negative")
	}
	a, b, err := pickCPUs(*cpus)
	if err != nil {
		return err
	}
	for i := range *samples {
		if i > 0 {
			time.Sleep(*every)
		}
		ns, err := handOver(a, b, *n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s CPU %d <-> CPU %d: %.1f ns a hand-over\n", time.Now().UTC().Format(time.TimeOnly), a, b, ns)
	}
	return nil
}

// pickCPUs parses -cpus, or takes the first two CPUs allowed.
func pickCPUs(s string) (a, b int, err error) {
	if s == "" {
		all, err := ring.CPUs()
		if err != nil {
			return 0, 0, fmt.Errorf("listing the CPUs: %w", err)
		}
		if len(all) < 2 {
			return 0, 0, fmt.Errorf("this process may use %d CPU(s); it takes two", len(all))
		}
		return all[0], all[1], nil
	}
	f := strings.Split(s, ",")
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("-cpus %q: want two CPUs, like 0,1", s)
	}
	if a, err = strconv.Atoi(strings.TrimSpace(f[0])); err == nil {
		b, err = strconv.Atoi(strings.TrimSpace(f[1]))
	}
	if err != nil || a < 0 || b < 0 || a == b {
		return 0, 0, fmt.Errorf("-cpus %q: want two different CPU numbers, like 0,1", s)
	}
	return a, b, nil
}

// line is a counter alone in its cache line.
type line struct {
	_ [64]byte
	v atomic.Int64
	_ [56]byte
}

// handOver returns the mean time of one hand-over of the line between
// CPUs a and b over n of them: each side waits for the other's number
// and writes the next, so every write takes the line from the other CPU.
func handOver(a, b, n int) (float64, error) {
	var l line
	errc := make(chan error, 1)
	go func() {
		if err := ring.PinThread(b); err != nil {
			errc <- err
			l.v.Store(-1)
			return
		}
		// The thread stays locked: it ends with the goroutine, pinned.
		for i := int64(1); i < int64(n); i += 2 {
			for {
				v := l.v.Load()
				if v == i {
					break
				}
				if v < 0 {
					errc <- nil
					return
				}
			}
			l.v.Store(i + 1)
		}
		errc <- nil
	}()
	if err := ring.PinThread(a); err != nil {
		l.v.Store(-1) // wait for the other side, which may be spinning
		<-errc
		return 0, err
	}
	start := time.Now()
	for i := int64(0); i < int64(n); i += 2 {
		for {
			v := l.v.Load()
			if v == i {
				break
			}
			if v < 0 {
				return 0, <-errc
			}
		}
		l.v.Store(i + 1)
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n), nil
}
