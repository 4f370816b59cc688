package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/config"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/metrics"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/privdrop"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/ring"
)

// listFlag is a repeatable string flag (-i eth0 -i lo).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// sizeFlag is a byte size with an optional K, M or G suffix (powers of
// 1024), as in "1M" or "65536".
type sizeFlag int

func (s *sizeFlag) String() string { return strconv.Itoa(int(*s)) }
func (s *sizeFlag) Set(v string) error {
	mult := 1
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "B"), "I")
	switch {
	case strings.HasSuffix(t, "K"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > 1<<40/mult {
		return fmt.Errorf("not a size: %q (say 65536, 64K or 1M)", v)
	}
	*s = sizeFlag(n * mult)
	return nil
}

// runFlags are the flags of run and the values they set.
type runFlags struct {
	fs        *flag.FlagSet
	ifaces    listFlag
	cfg       sensor.Config
	lcfg      ring.LiveConfig
	cpuList   string
	filterStr string
	netns     string
	quiet     bool
	ef        eventFlags
	config    string
	metrics   string // --metrics-addr
	runAs     userFlag
	log       logFlags
	status    time.Duration // --status-interval
}

// newRunFlags returns run's flag set; errors go to stderr.
func newRunFlags(stderr io.Writer) *runFlags {
	r := &runFlags{lcfg: ring.LiveConfig{BlockSize: ring.DefaultBlockSize, Blocks: ring.DefaultBlocks, FrameSize: ring.DefaultFrameSize, RetireTimeout: ring.DefaultRetireTimeout, Snaplen: ring.DefaultSnaplen}}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	r.fs = fs
	fs.Var(&r.ifaces, "i", "interface to capture on (repeatable: -i eth1 -i lo)")
	fs.Var(intFlag{&r.cfg.Workers, 0, maxWorkers}, "workers", "`number` of workers, each with one socket per interface (default: one per CPU of --cpus)")
	fs.Var(strFlag{&r.cpuList, checkCPUList}, "cpus", "`CPUs` to pin the workers to, e.g. 0-3,6 (default: every CPU the process may use; whether they are available here is checked at start)")
	fs.Var(strFlag{&r.filterStr, checkFilter}, "filter", "capture filter `expression` in tcpdump syntax, run in the kernel, e.g. 'tcp and not port 22'")
	fs.Var(snaplenFlag{&r.lcfg.Snaplen}, "snaplen", "`bytes` of each frame the kernel copies for the sensor, which reads headers only (0: whole frames, as tcpdump -s 0)")
	fs.BoolVar(&r.lcfg.NoPromisc, "no-promisc", false, "leave promiscuous mode off (it is on for every interface but loopback)")
	// The ring's limits (ring/live_linux.go), checked here so that a file
	// names the line; the ring checks them again.
	fs.Var(blockSizeFlag{&r.lcfg.BlockSize}, "ring-block-size", "`size` of one ring block (power of two, from the page size to 1G; K, M suffixes)")
	fs.Var(intFlag{&r.lcfg.Blocks, 2, 1 << 20}, "ring-blocks", "`number` of ring blocks per socket")
	fs.Var(frameSizeFlag{&r.lcfg.FrameSize}, "ring-frame-size", "ring frame `size` (tp_frame_size: a multiple of 16, at least 128, at most the block size)")
	fs.Var(durFlag{&r.lcfg.RetireTimeout, time.Millisecond, time.Minute}, "ring-timeout", "block-retire timeout: how long a partly filled block waits (`duration`)")
	fs.StringVar(&r.netns, "netns", "", "capture in this network namespace (a name from 'ip netns' or a path)")
	r.cfg.Flows = sensor.DefaultFlows
	fs.Var(intFlag{&r.cfg.Flows, 1, maxFlows}, "flows", "flow table `capacity` of the sensor, split over the workers")
	r.cfg.Name = defaultSensorName()
	fs.Var(strFlag{&r.cfg.Name, checkSensorName}, "sensor", "sensor `name` (observer.name, event id prefix, NATS subject token)")
	fs.BoolVar(&r.quiet, "quiet", false, "no start lines and no summary on stderr (warnings and status lines still)")
	r.log.register(fs)
	r.status = defaultStatusInterval
	fs.Var(intervalFlag{&r.status}, "status-interval", "log a status line (packets/s, kernel drops, flows, events/s) this often; 0 for none")
	registerMetrics(fs, &r.metrics, metrics.DefaultAddr)
	fs.Var(&r.runAs, "user", "as root, switch to this user once the sockets are open (default: "+defaultUser+" if that user exists; '' or root: stay root)")
	r.ef.register(fs, true)
	registerTuning(fs, &r.cfg)
	configFlag(fs, &r.config, config.DefaultPath)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tcpsentry run -i IFACE [-i IFACE...] [flags]\n\nCaptures live traffic and publishes events to NATS (by default an embedded\nbroker on 127.0.0.1:4222; read them with 'tcpsentry events --follow') until\ninterrupted (SIGINT or SIGTERM), then prints a summary on stderr. SIGHUP\nreads the --config file again and applies its detector settings.\n\nflags:\n")
		fs.PrintDefaults()
	}
	return r
}

// resolveRun parses run's command line and applies the configuration
// file under it. code is the exit code when it fails (0 for -h).
func resolveRun(args []string, stderr io.Writer) (r *runFlags, st *settings, code int, ok bool) {
	r = newRunFlags(stderr)
	pos, err := parseInterspersed(r.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, nil, 0, false
	}
	if err != nil {
		return nil, nil, 2, false
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "tcpsentry: run takes no arguments (got %q); a filter goes in --filter\n", strings.Join(pos, " "))
		return nil, nil, 2, false
	}
	st, err = loadConfig(r.fs, r.config, nil, &r.cfg.Detectors)
	if err == nil {
		// The file alone passed (loadConfig); the command line may not.
		err = checkRing(r, nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return nil, nil, 2, false
	}
	return r, st, 0, true
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	rf, st, code, ok := resolveRun(args, stderr)
	if !ok {
		return code
	}
	cfg, lcfg, filterStr, netns := rf.cfg, rf.lcfg, rf.filterStr, rf.netns
	if len(rf.ifaces) == 0 {
		fmt.Fprintf(stderr, "tcpsentry: run needs an interface: -i IFACE (interfaces here: %s)\n", strings.Join(interfaceNames(), ", "))
		return 2
	}
	allowed, err := ring.CPUs()
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: reading the CPU affinity: %v\n", err)
		return 1
	}
	cpus := allowed
	// Its syntax was checked by the flag; what this machine lets the
	// process use is known only here.
	if rf.cpuList != "" {
		if cpus, err = parseCPUList(rf.cpuList, allowed); err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --cpus: %v\n", err)
			return 2
		}
	}
	if cfg.Workers == 0 {
		cfg.Workers = len(cpus)
	}
	cfg.CPUs = cpus
	cfg.Version = versionString()
	if netns != "" && !strings.Contains(netns, "/") {
		netns = "/var/run/netns/" + netns
	}
	// The filter compiled for Ethernet in its flag's Set; the ring
	// compiles it again for each interface's link type.
	lcfg.Interfaces, lcfg.Workers, lcfg.Netns, lcfg.Filter = rf.ifaces, cfg.Workers, netns, filterStr
	// Errors up to the start lines are plain one-liners on stderr, as
	// tcpdump's; from there on the log says what happens.
	log := newLogger(rf.log.format, rf.log.level, stderr)
	priv, err := planPrivileges(rf.runAs, os.Geteuid(), privdrop.Lookup)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	if keepPrivileges {
		priv = privPlan{}
	}

	live, err := ring.OpenLive(lcfg)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	// After the sockets: a wrong interface or a missing capability is
	// said before a broker starts. The ring holds what arrives meanwhile.
	mo, ok := serveMetrics(rf.metrics, &cfg, &rf.ef, stderr)
	if !ok {
		live.Close()
		return 1
	}
	defer mo.close()
	// The events file is opened with the sockets, before the privileges
	// go; the broker starts after, as the user who owns its store.
	ef := &rf.ef
	out, err := ef.openFile(stdout)
	if err == nil && priv.to != nil {
		if _, embedded := ef.useNATS(); embedded {
			err = ownDataDir(ef.dataDir, priv.to)
		}
	}
	if err == nil && !keepPrivileges {
		err = dropPrivileges(priv, rf.quiet, log)
	}
	if err == nil {
		err = ef.connect(out, cfg.Name, true, log)
	}
	if err != nil {
		if out != nil {
			out.close()
		}
		live.Close()
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	cfg.Sink = out.sink()
	mo.setNATS(out)
	cfg.Reload = &sensor.Reload{}
	// Before the start lines: once they are out, a SIGHUP must not kill.
	stopHUP := watchHUP(&reloader{args: args, st: st, cfg: cfg.Detectors, to: cfg.Reload, log: log})
	defer stopHUP()
	if !rf.quiet {
		writeStart(log, live, lcfg, cfg, filterStr, out, st, mo.url())
	}
	for _, ifc := range live.Interfaces() {
		if len(ifc.Offloads) > 0 {
			log.Warn("offloads on: the capture sees coalesced giant frames instead of the segments on the wire, which distorts sequence analysis; turn them off with the command given",
				"interface", ifc.Name, "offloads", strings.Join(ifc.Offloads, ","), "command", "ethtool -K "+ifc.Name+" gro off lro off tso off gso off")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopStatus := func() {}
	if rf.status > 0 {
		if cfg.Observer == nil {
			cfg.Observer = &sensor.Observer{}
		}
		done, ended := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(ended)
			logStatus(log, cfg.Observer, rf.status, done)
		}()
		stopStatus = func() { close(done); <-ended }
	}
	sum, err := sensor.Capture(ctx, live, cfg, out.writer(), log)
	stopStatus()
	stopHUP()
	if !rf.quiet || err != nil {
		writeLiveSummary(stderr, &sum)
	}
	ferr := out.finish(runDeliverWait, stderr, rf.quiet)
	if err != nil {
		log.Error("capture failed", "error", err.Error())
		return 1
	}
	if ferr != nil {
		log.Error("stopping", "error", ferr.Error())
		return 1
	}
	return 0
}

// parseCPUList parses "0-3,6" and checks every CPU is one the process
// may run on.
func parseCPUList(s string, allowed []int) ([]int, error) {
	cpus, err := parseCPUs(s)
	if err != nil {
		return nil, err
	}
	for _, c := range cpus {
		if !slices.Contains(allowed, c) {
			return nil, fmt.Errorf("CPU %d is not available to this process (available: %s)", c, formatCPUs(allowed))
		}
	}
	return cpus, nil
}

// parseCPUs parses "0-3,6", without duplicates, in the order given.
func parseCPUs(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b-a > 4096 {
			return nil, fmt.Errorf("%q is not a CPU list (say 0-3,6)", s)
		}
		for c := a; c <= b; c++ {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func formatCPUs(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// runDeliverWait is how long a stopping run waits for NATS to take the
// events it still holds.
const runDeliverWait = 5 * time.Second

func writeStart(log *slog.Logger, live *ring.Live, lcfg ring.LiveConfig, cfg sensor.Config, expr string, out *eventOut, st *settings, metricsURL string) {
	var ifs []string
	for _, ifc := range live.Interfaces() {
		d := "Ethernet"
		switch {
		case ifc.Loopback:
			d = "loopback"
		case ifc.Link == ring.LinkTypeRaw:
			d = "raw IP"
		}
		if !ifc.Loopback && !lcfg.NoPromisc {
			d += ", promiscuous"
		}
		ifs = append(ifs, fmt.Sprintf("%s (%s)", ifc.Name, d))
	}
	if expr != "" {
		n := 0
		for _, ifc := range live.Interfaces() {
			n = max(n, ifc.FilterLen)
		}
		log.Info("capture filter, run in the kernel", "filter", expr, "bpf_instructions", n)
	}
	if out.where != nil {
		log.Info("events to NATS", out.where...)
	}
	if metricsURL != "" {
		log.Info("serving metrics", "url", metricsURL)
	}
	switch {
	case st.path != "":
		log.Info("settings from a config file", "config", st.path)
	case st.missing != "":
		log.Info("no config file: settings from flags and defaults", "missing", st.missing)
	default:
		log.Info("no config file: settings from flags and defaults")
	}
	// The capturing line comes last: it says that the sockets are bound.
	per := int64(lcfg.BlockSize) * int64(lcfg.Blocks)
	log.Info("capturing", "interfaces", strings.Join(ifs, ", "), "workers", cfg.Workers, "cpus", formatCPUs(firstN(cfg.CPUs, cfg.Workers)),
		"ring", fmt.Sprintf("%d x %s blocks = %s per socket", lcfg.Blocks, bytesHuman(uint64(lcfg.BlockSize)), bytesHuman(uint64(per))),
		"ring_total", bytesHuman(uint64(lcfg.MemoryBytes())), "sockets", cfg.Workers*len(lcfg.Interfaces), "snaplen", lcfg.Snaplen)
}

// firstN is the CPUs the workers use: the first n of the list, or all of
// it when workers share CPUs.
func firstN(cpus []int, n int) []int {
	if n < len(cpus) {
		return cpus[:n]
	}
	return cpus
}

// writeLiveSummary prints the stop summary of a live capture.
func writeLiveSummary(w io.Writer, s *sensor.Summary) {
	var names []string
	for _, ifc := range s.Interfaces {
		names = append(names, ifc.Name)
	}
	secs := s.Elapsed.Seconds()
	pps := 0.0
	if secs > 0 {
		pps = float64(s.Packets) / secs
	}
	fmt.Fprintf(w, "tcpsentry run -i %s\n", strings.Join(names, " -i "))
	fmt.Fprintf(w, "  packets   %d (%s on the wire) in %s: %.0f packets/s, %d worker(s) (%s)\n",
		s.Packets, bytesHuman(s.Bytes), s.Elapsed.Round(time.Millisecond), pps, s.Workers, perWorker(s.PerWorker))
	for i, k := range s.Kernel {
		line := fmt.Sprintf("  kernel    %s: %d packets, %d dropped, %d ring full (queue freezes)", s.Interfaces[i].Name, k.Packets, k.Drops, k.Freezes)
		if k.Drops > 0 {
			line += fmt.Sprintf(" -- DROPPED %.2f%%: the capture is incomplete; add workers or ring blocks", 100*float64(k.Drops)/float64(k.Packets))
		}
		if k.Losing > 0 {
			line += fmt.Sprintf("; %d frames marked losing", k.Losing)
		}
		if k.CsumNotReady > 0 {
			line += fmt.Sprintf("; %d locally sent with checksum offload (not bad)", k.CsumNotReady)
		}
		if k.Errors > 0 {
			line += fmt.Sprintf("; %d socket errors", k.Errors)
			if k.NetDown > 0 {
				line += fmt.Sprintf(" (%d ENETDOWN: the link went down, one per socket each time)", k.NetDown)
			}
		}
		fmt.Fprintln(w, line)
	}
	writeCounts(w, s)
}

func perWorker(n []uint64) string {
	var parts []string
	for _, v := range n {
		parts = append(parts, strconv.FormatUint(v, 10))
	}
	return strings.Join(parts, "/")
}

// interfaceNames lists the interfaces of this namespace, for an error
// message; nil when they cannot be read.
func interfaceNames() []string {
	l, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, i := range l {
		out = append(out, i.Name)
	}
	return out
}
