// Command tcpsentry finds why TCP connections fail, from live traffic or
// a recording, and reports each finding as a JSON event.
//
//	tcpsentry run -i IFACE [-i IFACE...] [flags]
//	tcpsentry replay [flags] FILE.pcap[ng]
//	tcpsentry config check [FILE] | config default
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// Limits of the replay flags: beyond them a typo would reserve absurd
// amounts of memory.
const (
	maxWorkers = 1024
	maxFlows   = 100_000_000
)

// version may be set at build time with -ldflags "-X main.version=...";
// versionString says what the binary is when it is not.
var version string

// devVersion names a build that carries no version at all (go run).
const devVersion = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tcpsentry <command> [flags] [args]

commands:
  run -i IFACE  capture live traffic (repeat -i for more interfaces); events
                as JSON lines on stdout until SIGINT/SIGTERM, then a summary
                on stderr
  replay FILE   run the pipeline over a pcap/pcapng recording ('-' for
                standard input); events as JSON lines on stdout, a summary
                on stderr
  events        print the events stored in NATS (filter with --type,
                --sensor, --since; --follow to keep printing new ones)
  config check [FILE]
                check a configuration file (default
                /etc/tcpsentry/tcpsentry.yaml)
  config default
                print a configuration file with every default
  version       print the version

Run 'tcpsentry <command> -h' for the flags of a command.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "replay":
		return replayCmd(args[1:], stdout, stderr)
	case "events":
		return eventsCmd(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		writeVersion(stdout)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "tcpsentry: unknown command %q\n%s", args[0], usage)
	return 2
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, as users of tcpdump expect.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// replayFlags are the flags of replay and the values they set.
type replayFlags struct {
	fs     *flag.FlagSet
	cfg    sensor.Config
	quiet  bool
	prof   profiles
	ef     eventFlags
	config string
	// metrics is --metrics-addr.
	metrics string
}

// newReplayFlags returns replay's flag set; errors go to stderr.
func newReplayFlags(stderr io.Writer) *replayFlags {
	r := &replayFlags{}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	r.fs = fs
	fs.Var(intFlag{&r.cfg.Workers, 0, maxWorkers}, "workers", "`number` of workers (default: number of CPUs)")
	r.cfg.Flows = sensor.DefaultFlows
	fs.Var(intFlag{&r.cfg.Flows, 1, maxFlows}, "flows", "flow table `capacity` of the sensor, split over the workers")
	r.cfg.Name = defaultSensorName()
	fs.Var(strFlag{&r.cfg.Name, checkSensorName}, "sensor", "sensor `name` (observer.name, event id prefix, NATS subject token)")
	fs.BoolVar(&r.quiet, "quiet", false, "no summary on stderr")
	fs.Var(strFlag{&r.cfg.Filter, checkFilter}, "filter", "replay only the frames this `expression` in tcpdump syntax accepts, as tcpdump -r FILE EXPRESSION reads them, e.g. 'tcp and not port 22'")
	registerMetrics(fs, &r.metrics, "off")
	fs.StringVar(&r.prof.cpuPath, "cpuprofile", "", "write a CPU profile of the replay to `FILE` (runtime/pprof; read it with go tool pprof)")
	fs.StringVar(&r.prof.memPath, "memprofile", "", "after the replay, write a memory profile to `FILE`: runtime.GC, then pprof.Lookup(\"allocs\"), every sampled allocation since the start (go tool pprof -sample_index=inuse_space shows the heap still in use)")
	r.ef.register(fs, false)
	registerTuning(fs, &r.cfg)
	configFlag(fs, &r.config, "")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tcpsentry replay [flags] FILE.pcap[ng]   (FILE - : standard input)\n\nWith --config, replay takes the detector and flow-table settings of the\nfile (the detectors section, fold, the thresholds and timeouts); its\ncapture and event settings are checked but left to run.\n\nflags:\n")
		fs.PrintDefaults()
	}
	return r
}

func replayCmd(args []string, stdout, stderr io.Writer) int {
	rf := newReplayFlags(stderr)
	pos, err := parseInterspersed(rf.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		rf.fs.Usage()
		return 2
	}
	st, err := loadConfig(rf.fs, rf.config, isTuning, &rf.cfg.Detectors)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 2
	}
	cfg, prof, quiet, ef := rf.cfg, &rf.prof, &rf.quiet, &rf.ef
	if prof.cpuPath != "" && prof.memPath != "" && filepath.Clean(prof.cpuPath) == filepath.Clean(prof.memPath) {
		fmt.Fprintf(stderr, "tcpsentry: --cpuprofile and --memprofile name the same file %s\n", prof.cpuPath)
		return 2
	}
	if st.path != "" && !*quiet {
		fmt.Fprintf(stderr, "tcpsentry: %s\n", st.describe())
	}
	cfg.Version = versionString()
	name := pos[0]

	// "-" is standard input, as in tcpdump -r -: a capture piped from
	// another tool (tcpdump -w -, zcat, ssh).
	f := os.Stdin
	if name == "-" {
		name = "standard input"
	} else if f, err = os.Open(name); err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %s: %s\n", name, describeOpenError(err))
		return 1
	} else {
		defer f.Close()
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		fmt.Fprintf(stderr, "tcpsentry: %s: is a directory, not a capture file\n", name)
		return 1
	}

	if !prof.create(stderr) {
		return 1
	}
	mo, ok := serveMetrics(rf.metrics, &cfg, ef, stderr)
	if !ok {
		prof.discard()
		return 1
	}
	defer mo.close()
	if mo != nil && !*quiet {
		fmt.Fprintf(stderr, "tcpsentry: metrics on %s\n", mo.url())
	}
	// Replay is a command, not a service: its few log lines are text.
	out, err := ef.open(cfg.Name, false, stdout, newLogger(logText, slog.LevelInfo, stderr))
	if err != nil {
		prof.discard()
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	cfg.Sink = out.sink()
	mo.setNATS(out)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !prof.startCPU(stderr) {
		prof.discard()
		_ = out.finish(replayDeliverWait, stderr, true)
		return 1
	}
	var src io.Reader = f
	stopProgress := func() {}
	if !*quiet {
		if tty, cols, ok := progressTerminal(stderr, out.writer()); ok {
			if cfg.Observer == nil {
				cfg.Observer = &sensor.Observer{}
			}
			cr := &countingReader{r: f}
			src = cr
			var total int64 // unknown for a pipe or a device
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				total = fi.Size()
			}
			done, cleared := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(cleared)
				showProgress(tty, cols, &cr.n, total, cfg.Observer, done)
			}()
			stopProgress = func() { close(done); <-cleared }
		}
	}
	sum, err := sensor.Replay(ctx, src, cfg, out.writer())
	stopProgress()
	profOK := prof.finish(stderr)
	if mo != nil && testHoldMetrics != nil {
		testHoldMetrics(mo.url(), &sum)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %s: %v\n", name, err)
		if sum.Packets > 0 && !*quiet {
			writeSummary(stderr, name, &sum)
		}
		_ = out.finish(replayDeliverWait, stderr, *quiet)
		return 1
	}
	if sum.Truncated {
		fmt.Fprintf(stderr, "tcpsentry: warning: %s: the last record is truncated (the capture was cut short); everything before it was processed\n", name)
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "tcpsentry: interrupted; results cover the part of %s read so far\n", name)
	}
	if !*quiet {
		writeSummary(stderr, name, &sum)
	}
	if err := out.finish(replayDeliverWait, stderr, *quiet); err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	if !profOK {
		return 1
	}
	return 0
}

// profiles are the files of --cpuprofile and --memprofile; an empty path
// is no profile.
type profiles struct {
	cpuPath, memPath string
	cpu, mem         *os.File
	cpuOn            bool
}

// create creates the profile files, so that a bad path fails before any
// work; it says what is wrong on stderr.
func (p *profiles) create(stderr io.Writer) bool {
	for _, pf := range []struct {
		flag, path string
		f          **os.File
	}{{"cpuprofile", p.cpuPath, &p.cpu}, {"memprofile", p.memPath, &p.mem}} {
		if pf.path == "" {
			continue
		}
		f, err := os.Create(pf.path)
		if err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --%s: %s: %s\n", pf.flag, pf.path, describeCreateError(err))
			p.discard()
			return false
		}
		*pf.f = f
	}
	return true
}

// startCPU starts the CPU profile, if one was asked for.
func (p *profiles) startCPU(stderr io.Writer) bool {
	if p.cpu == nil {
		return true
	}
	if err := pprof.StartCPUProfile(p.cpu); err != nil {
		fmt.Fprintf(stderr, "tcpsentry: --cpuprofile: %s: %v\n", p.cpuPath, err)
		return false
	}
	p.cpuOn = true
	return true
}

// finish stops the CPU profile and writes the memory profile after a
// collection, so that it is current; it says on stderr what failed.
func (p *profiles) finish(stderr io.Writer) bool {
	ok := true
	if p.cpuOn {
		pprof.StopCPUProfile()
		p.cpuOn = false
	}
	if p.cpu != nil {
		if err := p.cpu.Close(); err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --cpuprofile: %s: %s\n", p.cpuPath, describeCreateError(err))
			ok = false
		}
		p.cpu = nil
	}
	if p.mem != nil {
		runtime.GC()
		err := pprof.Lookup("allocs").WriteTo(p.mem, 0)
		if cerr := p.mem.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --memprofile: %s: %s\n", p.memPath, describeCreateError(err))
			ok = false
		}
		p.mem = nil
	}
	return ok
}

// discard closes and removes the profile files when the replay did not
// run: an empty file would not be a profile.
func (p *profiles) discard() {
	if p.cpuOn {
		pprof.StopCPUProfile()
		p.cpuOn = false
	}
	for _, f := range []**os.File{&p.cpu, &p.mem} {
		if *f != nil {
			(*f).Close()
			os.Remove((*f).Name())
			*f = nil
		}
	}
}

// replayDeliverWait is how long a replay waits at its end for NATS to
// take the events it still holds.
const replayDeliverWait = 30 * time.Second

// describeOpenError is the reason a file could not be opened, without
// the path and operation the caller already names.
func describeOpenError(err error) string { return describeFileError(err, "no such file") }

// describeCreateError is the reason a file could not be created or
// written.
func describeCreateError(err error) string { return describeFileError(err, "no such directory") }

// describeFileError names the common reasons briefly; notExist is what a
// missing path means for the caller.
func describeFileError(err error, notExist string) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return notExist
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func defaultSensorName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "tcpsentry"
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}
