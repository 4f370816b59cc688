package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/config"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
)

const configUsage = `usage: tcpsentry config check [FILE]
       tcpsentry config default

check    reads FILE (default ` + config.DefaultPath + `) as tcpsentry run
         would and prints "ok", or the first problem as FILE:LINE: KEY: REASON
default  prints a configuration file with every setting at its default,
         each under a comment saying what it does
`

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) > 2 {
			fmt.Fprint(stderr, configUsage)
			return 2
		}
		path := config.DefaultPath
		if len(args) == 2 {
			path = args[1]
		}
		if err := checkConfig(path); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintln(stdout, "ok")
		return 0
	case "default":
		if len(args) > 1 {
			fmt.Fprint(stderr, configUsage)
			return 2
		}
		if err := config.WriteDefault(stdout, newRunFlags(io.Discard).fs, layout(), defaultHeader()); err != nil {
			fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, configUsage)
		return 0
	}
	fmt.Fprintf(stderr, "tcpsentry: config: unknown command %q\n%s", args[0], configUsage)
	return 2
}

func defaultHeader() string {
	return "tcpsentry configuration, made by 'tcpsentry config default' (tcpsentry " + version + ").\n" +
		"Keys are the long flags of 'tcpsentry run' ('tcpsentry run -h'); a flag given on the command line " +
		"overrides the file. Check a file with 'tcpsentry config check FILE'.\n" +
		"tcpsentry run reads " + config.DefaultPath + " if it exists (--config names another). On SIGHUP it " +
		"reads the file again: the detectors section, fold, event-rate and event-burst apply at once, other changes at the next restart.\n" +
		"tcpsentry replay --config FILE takes the detectors section, fold, the event rate limit and the flow-table timeouts."
}

// checkConfig reads path and sets every value on run's flags.
func checkConfig(path string) error {
	scratch := newRunFlags(io.Discard)
	f, err := config.Read(path, scratch.fs, layout())
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s: %s", path, describeOpenError(err))
		}
		return err
	}
	if err := f.Apply(scratch.fs, nil); err != nil {
		return err
	}
	return checkRing(scratch, f)
}

// settings says where the settings of run or replay came from, and what
// they were once the file was applied (before the command's own
// adjustments), for SIGHUP to compare.
type settings struct {
	path    string // the file read; "" for none
	missing string // the default file, which did not exist
	off     bool   // --config none
	values  map[string]string
}

func (s *settings) describe() string {
	switch {
	case s.path != "":
		return "settings from " + s.path
	case s.missing != "":
		return "no config file (" + s.missing + " does not exist): settings from flags and defaults"
	}
	return "no config file: settings from flags and defaults"
}

// loadConfig reads the file of --config (path), checks every value in it
// as run's flags take them, and sets on fs those that the command line
// did not set and that only accepts (nil: all), and the per-type settings
// on det. Without --config on the command line a missing file is no
// error.
func loadConfig(fs *flag.FlagSet, path string, only func(string) bool, det *detectors.Config) (*settings, error) {
	st := &settings{}
	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "config" })
	if path == "" || path == "none" {
		st.off = path == "none"
		st.values = snapshot(fs)
		return st, nil
	}
	scratch := newRunFlags(io.Discard)
	f, err := config.Read(path, scratch.fs, layout())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			st.missing = path
			st.values = snapshot(fs)
			return st, nil
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("--config %s: %s", path, describeOpenError(err))
		}
		return nil, err
	}
	if err := f.Apply(scratch.fs, nil); err != nil {
		return nil, err
	}
	// As config check would: the file's values over the defaults.
	if err := checkRing(scratch, f); err != nil {
		return nil, err
	}
	if err := f.Apply(fs, only); err != nil {
		return nil, err
	}
	f.ApplyTypes(det)
	st.path = path
	st.values = snapshot(fs)
	return st, nil
}

// snapshot is the value of every flag of fs.
func snapshot(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(fl *flag.Flag) { m[fl.Name] = fl.Value.String() })
	return m
}

// isTuning says whether a flag is one of registerTuning's (what replay
// takes from a file).
func isTuning(name string) bool {
	return slices.ContainsFunc(tunings, func(t tuning) bool { return t.name == name })
}

// isReloadable says whether SIGHUP applies a flag's new value.
func isReloadable(name string) bool {
	return slices.ContainsFunc(tunings, func(t tuning) bool { return t.name == name && t.reload })
}

// reloader reads run's configuration again on SIGHUP and hands the new
// detector settings to the running sensor.
type reloader struct {
	args []string         // run's command line, which still wins
	st   *settings        // in force
	cfg  detectors.Config // in force
	to   *sensor.Reload
	log  *slog.Logger
}

// watchHUP calls r.reload on every SIGHUP until stop is called.
func watchHUP(r *reloader) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				r.reload()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
			<-finished
		})
	}
}

func (r *reloader) reload() {
	if r.st.off {
		r.log.Info("SIGHUP: no config file to read (--config none)")
		return
	}
	var errb strings.Builder
	nf, st, _, ok := resolveRun(r.args, &errb)
	if !ok {
		msg := strings.TrimPrefix(strings.TrimSpace(errb.String()), "tcpsentry: ")
		r.log.Error("reload failed, the settings in force stay", "error", msg)
		return
	}
	where := st.path
	if where == "" {
		where = st.missing + " (gone: defaults)"
	}
	var changed, restart []string
	names := make([]string, 0, len(r.st.values))
	for n := range r.st.values {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		old, cur := r.st.values[n], st.values[n]
		if old == cur || n == "config" {
			continue
		}
		d := fmt.Sprintf("%s %s -> %s", n, showValue(old), showValue(cur))
		if isReloadable(n) {
			changed = append(changed, d)
			r.st.values[n] = cur
		} else {
			restart = append(restart, d)
		}
	}
	ncfg := nf.cfg.Detectors
	for t := detectors.TypeNone + 1; t < detectors.NumTypes; t++ {
		if o, n := r.cfg.Disabled[t], ncfg.Disabled[t]; o != n {
			changed = append(changed, fmt.Sprintf("%s.enabled %t -> %t", t, !o, !n))
		}
		if o, n := r.cfg.Severity[t], ncfg.Severity[t]; o != n {
			changed = append(changed, fmt.Sprintf("%s.severity %s -> %s", t, severityWord(o), severityWord(n)))
		}
	}
	if ncfg != r.cfg {
		r.to.Set(ncfg)
		r.cfg = ncfg
	}
	if len(changed) == 0 {
		r.log.Info("reloaded: no detector setting changed", "config", where)
	} else {
		r.log.Info("reloaded", "config", where, "changed", strings.Join(changed, ", "))
	}
	if len(restart) > 0 {
		r.log.Warn("reloaded: these changes need a restart and are not applied", "config", where, "changes", strings.Join(restart, ", "))
	}
}

func showValue(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

func severityWord(s detectors.Severity) string {
	if s == 0 {
		return "default"
	}
	return s.String()
}
