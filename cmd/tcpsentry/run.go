package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/privdrop"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/ring"
	"github.com/tcpsentry/tcpsentry/ring/filter"
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

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		ifaces    listFlag
		cfg       sensor.Config
		lcfg      ring.LiveConfig
		blockSize = sizeFlag(ring.DefaultBlockSize)
		cpuList   string
		filterStr string
		netns     string
	)
	fs.Var(&ifaces, "i", "interface to capture on (repeatable: -i eth1 -i lo)")
	fs.IntVar(&cfg.Workers, "workers", 0, "number of workers, each with one socket per interface (default: one per CPU of --cpus)")
	fs.StringVar(&cpuList, "cpus", "", "CPUs to pin the workers to, e.g. 0-3,6 (default: every CPU the process may use)")
	fs.StringVar(&filterStr, "filter", "", "capture filter in tcpdump syntax, run in the kernel, e.g. 'tcp and not port 22'")
	fs.BoolVar(&lcfg.NoPromisc, "no-promisc", false, "leave promiscuous mode off (it is on for every interface but loopback)")
	fs.Var(&blockSize, "ring-block-size", "size of one ring block (power of two; K, M suffixes)")
	fs.IntVar(&lcfg.Blocks, "ring-blocks", ring.DefaultBlocks, "ring blocks per socket")
	fs.IntVar(&lcfg.FrameSize, "ring-frame-size", ring.DefaultFrameSize, "ring frame size (tp_frame_size)")
	fs.DurationVar(&lcfg.RetireTimeout, "ring-timeout", ring.DefaultRetireTimeout, "block-retire timeout: how long a partly filled block waits")
	fs.StringVar(&netns, "netns", "", "capture in this network namespace (a name from 'ip netns' or a path)")
	fs.IntVar(&cfg.Flows, "flows", sensor.DefaultFlows, "flow table capacity of the sensor, split over the workers")
	fs.StringVar(&cfg.Name, "sensor", defaultSensorName(), "sensor name (observer.name, event id prefix)")
	quiet := fs.Bool("quiet", false, "no start line and no summary on stderr (warnings still)")
	var runAs userFlag
	fs.Var(&runAs, "user", "as root, switch to this user once the sockets are open (default: "+defaultUser+" if that user exists; '' or root: stay root)")
	var ef eventFlags
	ef.register(fs, true)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tcpsentry run -i IFACE [-i IFACE...] [flags]\n\nCaptures live traffic and publishes events to NATS (by default an embedded\nbroker on 127.0.0.1:4222; read them with 'tcpsentry events --follow') until\ninterrupted (SIGINT or SIGTERM), then prints a summary on stderr.\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "tcpsentry: run takes no arguments (got %q); a filter goes in --filter\n", strings.Join(pos, " "))
		return 2
	}
	if len(ifaces) == 0 {
		fmt.Fprintf(stderr, "tcpsentry: run needs an interface: -i IFACE (interfaces here: %s)\n", strings.Join(interfaceNames(), ", "))
		return 2
	}
	if !checkSizes(&cfg, stderr) {
		return 2
	}
	allowed, err := ring.CPUs()
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: reading the CPU affinity: %v\n", err)
		return 1
	}
	cpus := allowed
	if cpuList != "" {
		if cpus, err = parseCPUList(cpuList, allowed); err != nil {
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
	lcfg.Interfaces, lcfg.Workers, lcfg.BlockSize, lcfg.Netns = ifaces, cfg.Workers, int(blockSize), netns
	// Compiled here once to tell a bad expression from a capture error;
	// the ring compiles it again for each interface's link type.
	if _, err := filter.Compile(filterStr, uint16(ring.LinkTypeEthernet), filter.Options{KernelVLAN: true}); err != nil {
		fmt.Fprintf(stderr, "tcpsentry: --filter: %s\n", strings.TrimPrefix(err.Error(), "filter: "))
		return 2
	}
	lcfg.Filter = filterStr
	priv, err := planPrivileges(runAs, os.Geteuid(), privdrop.Lookup)
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
	// The events file is opened with the sockets, before the privileges
	// go; the broker starts after, as the user who owns its store.
	out, err := ef.openFile(stdout)
	if err == nil && priv.to != nil {
		if _, embedded := ef.useNATS(); embedded {
			err = ownDataDir(ef.dataDir, priv.to)
		}
	}
	if err == nil && !keepPrivileges {
		err = dropPrivileges(priv, *quiet, stderr)
	}
	if err == nil {
		err = ef.connect(out, cfg.Name, true, stderr)
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
	if !*quiet {
		writeStart(stderr, live, lcfg, cfg, filterStr, out)
	}
	for _, ifc := range live.Interfaces() {
		if len(ifc.Offloads) > 0 {
			fmt.Fprintf(stderr, "tcpsentry: warning: %s: %s on: the capture sees coalesced giant frames instead of the segments on the wire, which distorts sequence analysis; turn them off with 'ethtool -K %s gro off lro off tso off gso off'\n",
				ifc.Name, strings.Join(ifc.Offloads, ", "), ifc.Name)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := sensor.Capture(ctx, live, cfg, out.writer(), stderr)
	if !*quiet || err != nil {
		writeLiveSummary(stderr, &sum)
	}
	ferr := out.finish(runDeliverWait, stderr, *quiet)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	if ferr != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", ferr)
		return 1
	}
	return 0
}

// parseCPUList parses "0-3,6" and checks every CPU is one the process
// may run on.
func parseCPUList(s string, allowed []int) ([]int, error) {
	ok := map[int]bool{}
	for _, c := range allowed {
		ok[c] = true
	}
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
			if !ok[c] {
				return nil, fmt.Errorf("CPU %d is not available to this process (available: %s)", c, formatCPUs(allowed))
			}
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

func writeStart(w io.Writer, live *ring.Live, lcfg ring.LiveConfig, cfg sensor.Config, expr string, out *eventOut) {
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
		fmt.Fprintf(w, "tcpsentry: filter %q (%d BPF instructions, run in the kernel)\n", expr, n)
	}
	if out.where != "" {
		fmt.Fprintf(w, "tcpsentry: events to %s\n", out.where)
	}
	// The capturing line comes last: it says that the sockets are bound.
	per := int64(lcfg.BlockSize) * int64(lcfg.Blocks)
	fmt.Fprintf(w, "tcpsentry: capturing on %s with %d worker(s) on CPUs %s; ring %d x %s blocks = %s per socket, %s in all (%d socket(s))\n",
		strings.Join(ifs, ", "), cfg.Workers, formatCPUs(firstN(cfg.CPUs, cfg.Workers)), lcfg.Blocks, bytesHuman(uint64(lcfg.BlockSize)),
		bytesHuman(uint64(per)), bytesHuman(uint64(lcfg.MemoryBytes())), cfg.Workers*len(lcfg.Interfaces))
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
