//go:build linux

// Command suite is the replay benchmark in one command: it generates
// captures with ground truth (bench/workload), replays them from memory
// through tcpsentry's whole pipeline with 1 and 2 workers, runs the peers
// (tshark, tcpdump, tcptrace, argus) and the references (a pointer chase over
// 1 GiB: the memory wall; a gopacket decode + Go map reader) on the same
// files, optionally runs the live benchmark (bench/live), and writes
// DIR/<date>/report.md with SVG charts and results.json:
//
//	go run ./bench/suite [-out bench/results] [-levels 10k,100k,1M] [-live] [-profile] [-quick]
//
// Every measurement runs in a child process (this program again), so
// that peak RSS, allocations and GC cycles are the replay's own. The
// captures go to a scratch directory (-work, default the system's
// temporary directory; the 1M level takes about 4 GB) and are removed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
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
)

func main() {
	if isChild() {
		if err := childMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "suite child:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := mainErr(ctx, os.Args[1:])
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "suite:", err)
		}
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	out := fs.String("out", "bench/results", "write the report to DIR/<date>/")
	levels := fs.String("levels", "", "concurrent flows of the sweep (default 10k,100k,1M; 1k,5k with -quick)")
	repeat := fs.Int("repeat", 0, "replays per case, the median reported (default 3; 1 with -quick)")
	peerMax := fs.Int("peer-max", 0, "run the peers only on captures of at most this many packets (default 12000000)")
	work := fs.String("work", "", "scratch directory for the captures (default: the system's temporary directory)")
	live := fs.Bool("live", false, "also run the live benchmark (bench/live; root, about 12 minutes)")
	liveArgs := fs.String("live-args", "", "extra flags for bench/live, space-separated (e.g. \"-repeat 5\")")
	profile := fs.Bool("profile", false, "print the top of the CPU profile of every capture's 1-worker replay")
	quick := fs.Bool("quick", false, "smoke run: small captures, one replay per case")
	render := fs.String("render", "", "measure nothing: write the report again from the results.json of an earlier run, beside it (its notes by hand stay)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *render != "" {
		return rerender(*render)
	}
	cfg := defaultConfig()
	if *quick {
		cfg = quickConfig()
	}
	if *levels != "" {
		lv, err := parseLevels(*levels)
		if err != nil {
			return err
		}
		cfg.Levels = lv
	}
	if *repeat > 0 {
		cfg.Repeat = *repeat
	}
	if *peerMax > 0 {
		cfg.PeerMax = *peerMax
	}
	cfg.Profile = *profile
	self, err := os.Executable()
	if err != nil {
		return err
	}
	scratch, err := os.MkdirTemp(*work, "tcpsentry-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	res := &results{Date: time.Now(), Args: append([]string{"go", "run", "./bench/suite"}, args...)}
	s := &suite{cfg: cfg, run: runner{self: self, progress: os.Stderr}, work: scratch, res: res}
	if err := s.all(ctx); err != nil {
		return err
	}
	if *live {
		res.Live, res.LiveSkip = runLive(ctx, scratch, *quick, strings.Fields(*liveArgs), os.Stderr)
	} else {
		res.LiveSkip = "not asked for (-live)"
	}
	dir := filepath.Join(*out, res.Date.Format("2006-01-02"))
	if err := writeReport(dir, res, cfg); err != nil {
		return err
	}
	if cfg.Profile {
		for _, f := range res.files() {
			if f.Profile != "" {
				fmt.Printf("## %s: top of the CPU profile, 1 worker\n%s\n", f.Name, f.Profile)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "suite: wrote", filepath.Join(dir, "report.md"))
	return nil
}

// rerender writes the report of the results in file name again, in its
// directory: after a change to the report's wording, without measuring
// for 20 minutes.
func rerender(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if res.Standard == nil {
		return fmt.Errorf("%s: no standard capture: not the results of a suite run", name)
	}
	cfg := defaultConfig()
	cfg.Workers = cfg.Workers[:0]
	for w := range res.Standard.Replays {
		cfg.Workers = append(cfg.Workers, w)
	}
	slices.Sort(cfg.Workers)
	if len(cfg.Workers) > 0 {
		cfg.Repeat = len(res.Standard.Replays[cfg.Workers[0]])
	}
	dir := filepath.Dir(name)
	report := filepath.Join(dir, "report.md")
	notes := handNotes(report)
	if err := writeReport(dir, &res, cfg); err != nil {
		return err
	}
	if notes != "" {
		f, err := os.OpenFile(report, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(notes)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "suite: wrote", report)
	return nil
}

// handNotes returns the "Notes by hand" section a committed report ends
// with (from the blank line before its heading), or "": written about the
// same results, it stays when the report is written again from them.
func handNotes(report string) string {
	b, err := os.ReadFile(report)
	if err != nil {
		return ""
	}
	if i := bytes.Index(b, []byte("\n## Notes by hand\n")); i >= 0 {
		return string(b[i:])
	}
	return ""
}

// parseLevels reads "10k,100k,1M".
func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mul := 1
		switch {
		case strings.HasSuffix(f, "k"), strings.HasSuffix(f, "K"):
			f, mul = f[:len(f)-1], 1000
		case strings.HasSuffix(f, "M"), strings.HasSuffix(f, "m"):
			f, mul = f[:len(f)-1], 1_000_000
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n*mul > 4_000_000 {
			return nil, fmt.Errorf("-levels: %q is not a flow count between 1 and 4M (e.g. 10k,100k,1M)", f)
		}
		out = append(out, n*mul)
	}
	return out, nil
}

// writeJSON writes v indented.
func writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}
