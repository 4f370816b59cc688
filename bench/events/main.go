//go:build linux

// Command events benchmarks the event path in one run: how fast
// tcpsentry's NATS publisher delivers ~600-byte events to an embedded
// broker against minimal nats.go programs doing the same (the ceilings),
// and how fast replay runs over the same traffic when its events are
// thrown away and when they go to NATS.
//
//	go run ./bench/events [-n 200000] [-repeat 5] [-connections 200000] [-refused 0.01,0.1] [-out bench/results]
//
// Every run starts a fresh broker in a temporary directory, removed at the
// end; traffic goes over loopback only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv(brokerChildEnv) != "" {
		if err := brokerChild(); err != nil {
			fmt.Fprintln(os.Stderr, "events: broker process:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	cfg := defaultConfig()
	fs.IntVar(&cfg.Messages, "n", cfg.Messages, "events per publish run")
	fs.IntVar(&cfg.Repeat, "repeat", cfg.Repeat, "runs per measurement (the median is reported)")
	fs.IntVar(&cfg.Traffic.Connections, "connections", cfg.Traffic.Connections, "connections in the replayed traffic")
	fs.Func("refused", "shares of the connections refused (one event each), comma-separated: one event load each (default 0.01,0.1)", func(v string) error {
		cfg.Refused = nil
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || x <= 0 || x > 1 {
				return fmt.Errorf("%q is not a share in (0, 1]", f)
			}
			cfg.Refused = append(cfg.Refused, x)
		}
		return nil
	})
	out := fs.String("out", "", "also write the report to DIR/events-<date>.md")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run (broker included) to FILE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Messages < 1 || cfg.Repeat < 1 || cfg.Traffic.Connections < 1 {
		return errors.New("-n, -repeat and -connections must be ≥ 1")
	}
	cfg.Progress = os.Stderr
	res, err := run(ctx, cfg)
	if err != nil {
		return err
	}
	res.report(os.Stdout)
	if *out != "" {
		name := filepath.Join(*out, "events-"+time.Now().Format("2006-01-02")+".md")
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		res.report(f)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "events: wrote", name)
	}
	return nil
}
