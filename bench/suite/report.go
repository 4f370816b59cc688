//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tcpsentry/tcpsentry/bench/peers"
	"github.com/tcpsentry/tcpsentry/bench/plot"
	"github.com/tcpsentry/tcpsentry/bench/report"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
)

// Thresholds of the goals the report checks.
const (
	goalMemWall    = 1.0   // ns/packet at 1M flows ÷ one dependent random access
	goalPPS        = 8e6   // packets/s, 1 worker, 10k flows
	goalVsGopacket = 3.0   // × the gopacket decode + map reader
	goalScaling    = 1.8   // 2 workers ÷ 1 worker
	goalVsTshark   = 100.0 // × tshark's packets/s
	goalBytesFlow  = 128.0 // resident bytes per concurrent flow
	goalFlat       = 1.05  // peak RSS of the longer capture ÷ the shorter
)

// goal is one line of the goals table.
type goal struct {
	ID                     string
	What, Target, Measured string
	Met                    bool
	Known                  bool // measured at all
}

func (g goal) verdict() string {
	switch {
	case !g.Known:
		return "not measured"
	case g.Met:
		return "**met**"
	}
	return "**not met**"
}

// goals evaluates every goal on the results.
func goals(r *results) []goal {
	var out []goal
	mem := r.MemNs()
	if big := r.largest(); big != nil {
		g := goal{ID: "memwall", What: fmt.Sprintf("memory wall: ns/packet, 1 worker, %s concurrent flows ÷ one dependent random access", levelName(big.Level)), Target: fmt.Sprintf("≤ %.1f", goalMemWall)}
		m, ok := big.Median(1)
		ratios, _ := big.ChaseRatios()
		switch {
		case ok && len(ratios) > 0:
			// Each replay against the chase just before it (results
			// before this had only the chase at the start).
			ratio := report.Median(ratios)
			g.Measured = fmt.Sprintf("median of each run ÷ the chase just before it (%s) = %.2f; against the chase at the start: %.0f ns ÷ %.0f ns = %.2f (counting setup: %.0f ns, %.2f)",
				joinRatios(ratios), ratio, m.NsPerPacket(), mem, m.NsPerPacket()/mem, big.WholeNs(1), big.WholeNs(1)/mem)
			g.Known, g.Met = true, ratio <= goalMemWall
		case ok && mem > 0:
			ratio := m.NsPerPacket() / mem
			g.Measured = fmt.Sprintf("%.0f ns ÷ %.0f ns = %.2f (counting setup: %.0f ns, %.2f)", m.NsPerPacket(), mem, ratio, big.WholeNs(1), big.WholeNs(1)/mem)
			g.Known, g.Met = true, ratio <= goalMemWall
		}
		out = append(out, g)
	}
	std := r.Standard
	one, ok1 := std.Median(1)
	two, ok2 := std.Median(2)
	g := goal{ID: "pps", What: fmt.Sprintf("cache-resident: packets/s, 1 worker, %s concurrent flows", levelName(std.Level)), Target: "≥ " + report.Rate(goalPPS)}
	if ok1 {
		g.Measured, g.Known, g.Met = fmt.Sprintf("%s (counting setup: %s)", report.Rate(one.PPS()), report.Rate(1e9/std.WholeNs(1))), true, one.PPS() >= goalPPS
		if res, ok := r.residentMedian(); ok {
			// The floor under the figure: the same pipeline and traffic
			// with no flow table misses.
			g.Measured += fmt.Sprintf("; the same traffic with at most %d flows held (*resident*: the table in the L2 cache): %s, %.0f ns/packet against %.0f",
				res.Peak, report.Rate(res.PPS()), res.NsPerPacket(), one.NsPerPacket())
		}
	}
	out = append(out, g)
	g = goal{ID: "gopacket", What: "cache-resident: × a gopacket.NewPacket decode + Go map reader, same file", Target: fmt.Sprintf("≥ %.0f×", goalVsGopacket)}
	if ok1 && std.Gopacket != nil && std.Gopacket.PPS > 0 {
		x := one.PPS() / std.Gopacket.PPS
		g.Measured, g.Known, g.Met = fmt.Sprintf("%s ÷ %s = %.2f×", report.Rate(one.PPS()), report.Rate(std.Gopacket.PPS), x), true, x >= goalVsGopacket
	}
	out = append(out, g)
	g = goal{ID: "scaling", What: "scaling: 2 workers ÷ 1 worker", Target: fmt.Sprintf("≥ %.1f×", goalScaling)}
	if ok1 && ok2 {
		x := two.PPS() / one.PPS()
		g.Measured, g.Known, g.Met = fmt.Sprintf("%s ÷ %s = %.2f×", report.Rate(two.PPS()), report.Rate(one.PPS()), x), true, x >= goalScaling
		if b1, b2 := one.Busy(), two.Busy(); b1 > 0 && b2 > 0 && r.Host.Cores > 0 {
			// One worker already keeps more than one CPU busy (the
			// reader and the Correlator beside it): the CPUs left are
			// all that more workers can add.
			g.Measured += fmt.Sprintf("; CPUs busy: 1 worker %.2f (%.0f ns of CPU a packet), 2 workers %.2f (%.0f ns): at 1 worker's CPU a packet, %d CPUs allow at most %d ÷ %.2f = %.2f×",
				b1, one.CPUPerPacket(), b2, two.CPUPerPacket(), r.Host.Cores, r.Host.Cores, b1, float64(r.Host.Cores)/b1)
		}
	}
	out = append(out, g)
	g = goal{ID: "tshark", What: "peers: × tshark's packets/s, same file (tcpsentry 1 worker)", Target: fmt.Sprintf("≥ %.0f×", goalVsTshark)}
	if p := std.peer("tshark"); p != nil && ok1 {
		pps := std.peerPPS(p)
		x := one.PPS() / pps
		g.Measured, g.Known, g.Met = fmt.Sprintf("%s ÷ %s = %.0f×", report.Rate(one.PPS()), report.Rate(pps), x), true, x >= goalVsTshark
	}
	out = append(out, g)
	g = goal{ID: "quality", What: "recall and precision against the ground truth, every capture and worker count", Target: "100% and 100%"}
	perfect, runs, miss, extra := true, 0, 0, 0
	for _, f := range r.files() {
		for _, rs := range f.Replays {
			for _, c := range rs {
				runs++
				miss += len(c.Missing)
				extra += len(c.Extra)
			}
		}
		perfect = perfect && f.Perfect()
	}
	if runs > 0 {
		g.Measured = fmt.Sprintf("%d replays: %d events missing, %d unexpected", runs, miss, extra)
		g.Known, g.Met = true, perfect
	}
	out = append(out, g)
	if big := r.largest(); big != nil {
		g = goal{ID: "bytesflow", What: fmt.Sprintf("memory: resident bytes per flow the table holds, %s level (replay's RSS growth ÷ table capacity)", levelName(big.Level)), Target: fmt.Sprintf("≤ %.0f B", goalBytesFlow)}
		if m, ok := big.Median(1); ok && m.Flows > 0 {
			grow := float64(m.RSSPeak - m.RSSBefore)
			b := grow / float64(m.Flows)
			held := m.Peak // measured; results from before it was: the generator's count
			if held == 0 {
				held = big.Gen.MaxHeld
			}
			g.Measured = fmt.Sprintf("%.0f MB ÷ %d = %.0f B (%.0f B per flow held at once, %d)", grow/1e6, m.Flows, b, grow/float64(max(held, 1)), held)
			if st := stateBytes(m.Memory); st > 0 {
				g.Measured += fmt.Sprintf("; the tables' and detectors' state alone %.0f B", float64(st)/float64(m.Flows))
			}
			g.Known, g.Met = true, b <= goalBytesFlow
		}
		out = append(out, g)
	}
	g = goal{ID: "flat", What: "memory: peak RSS over a capture 10× longer, same flows", Target: fmt.Sprintf("≤ %.2f×", goalFlat)}
	if len(r.Flat) == 2 {
		a, b := r.Flat[0], r.Flat[1]
		x := float64(b.RSSPeak) / float64(a.RSSPeak)
		g.What = fmt.Sprintf("memory: peak RSS over a capture %d× longer, same flows", b.Times)
		g.Measured, g.Known, g.Met = fmt.Sprintf("%d MB → %d MB (%.3f×)", a.RSSPeak>>20, b.RSSPeak>>20, x), true, x <= goalFlat
	}
	out = append(out, g)
	g = goal{ID: "allocs", What: fmt.Sprintf("allocations per packet and GC cycles, %s-packet replay (1 worker)", millions(std.Gen.Packets)), Target: "0 and 0"}
	if ok1 {
		g.Measured = fmt.Sprintf("%d allocations in all (%.6f per packet), %d GC cycles", one.Mallocs, float64(one.Mallocs)/float64(one.Packets), one.GCs)
		g.Known, g.Met = true, one.GCs == 0 && float64(one.Mallocs)/float64(one.Packets) < 0.0005
	}
	out = append(out, g)
	if len(r.Flat) == 2 {
		a, b := r.Flat[0], r.Flat[1]
		g = goal{ID: "allocs-extra", What: fmt.Sprintf("allocations and GC cycles per extra packet (%d× capture minus 1×, streamed)", b.Times), Target: "0 and 0"}
		dp := float64(b.Packets) - float64(a.Packets)
		if dp > 0 {
			da := float64(b.Mallocs) - float64(a.Mallocs)
			dg := int(b.GCs) - int(a.GCs)
			g.Measured = fmt.Sprintf("%+.0f allocations, %+d GC cycles over %.1fM more packets (%.6f per packet)", da, dg, dp/1e6, da/dp)
			g.Known, g.Met = true, dg <= 0 && da/dp < 0.0005
		}
		out = append(out, g)
	}
	return out
}

// stateBytes is what the goal calls preallocated state: the resident
// bytes of the flow tables and the detectors' tables, without the
// Correlator's queue (items in transit) and what the map does not name.
func stateBytes(mem []sensor.MemoryRegion) (n int64) {
	for _, r := range mem {
		if r.Name != detectors.MemoryQueue {
			n += r.Resident
		}
	}
	return n
}

func millions(n int) string { return fmt.Sprintf("%.1fM", float64(n)/1e6) }

// files is every capture run.
func (r *results) files() []*fileResult {
	var out []*fileResult
	for _, f := range []*fileResult{r.Standard, r.Resident} {
		if f != nil {
			out = append(out, f)
		}
	}
	return append(out, r.Sweep...)
}

// residentMedian is the median 1-worker replay of the resident capture.
func (r *results) residentMedian() (caseRun, bool) {
	if r.Resident == nil {
		return caseRun{}, false
	}
	return r.Resident.Median(1)
}

// largest is the sweep's highest level.
func (r *results) largest() *fileResult {
	if len(r.Sweep) == 0 {
		return nil
	}
	return r.Sweep[len(r.Sweep)-1]
}

// peer is tool's run on the file, if it ran.
func (f *fileResult) peer(tool string) *peers.Result {
	for i := range f.Peers {
		if f.Peers[i].Tool == tool {
			return &f.Peers[i]
		}
	}
	return nil
}

// peerPPS is a peer's packets/s over its wall time.
func (f *fileResult) peerPPS(p *peers.Result) float64 {
	if p.Took <= 0 {
		return 0
	}
	return float64(f.Gen.Packets) / p.Took.Seconds()
}

// writeReport writes report.md, the charts and results.json to dir.
func writeReport(dir string, r *results, cfg config) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# tcpsentry benchmark, %s\n\n", r.Date.Format("2006-01-02"))
	p("Machine: %s, %d cores, Linux %s, %s", r.Host.CPU, r.Host.Cores, r.Host.Kernel, r.Host.Go)
	if r.Host.PGO != "" {
		p(", a profile-guided build (%s)", r.Host.PGO)
	}
	p(".\n")
	p("Peers: ")
	for i, t := range []string{"tshark", "tcpdump", "tcptrace", "argus"} {
		if i > 0 {
			p("; ")
		}
		p("%s", r.Tools[t])
	}
	p(".\n\nCommand: `%s` (the live part: `%s`).\n", strings.Join(r.Args, " "), liveCommand(r))
	p("Every replay reads the capture into memory first and runs in its own process;\n")
	p("the figures are medians of %d runs. tcpsentry's events are compared with the\n", cfg.Repeat)
	p("generator's ground truth (bench/workload) on every run.\n\n")

	p("## Goals\n\n| goal | target | measured | |\n|---|---|---|---|\n")
	for _, g := range goals(r) {
		p("| %s | %s | %s | %s |\n", g.What, g.Target, g.Measured, g.verdict())
	}

	p("\n## Captures\n\n")
	p("Generated by bench/workload (`go run ./bench/gen` writes the same): *standard* is the\n")
	p("realistic mix (HTTP-like responses of 200 B to 1 MB, 1-4 exchanges per connection,\n")
	p("20%% IPv6, 10%% 802.1Q, 0.2%% loss after the sensor, every anomaly kind at 1 per 1,000\n")
	p("connections); the *sweep* captures hold many keep-alive clients with small responses\n")
	p("(at most 2,000 B) and pauses of up to 4 minutes, the slots starting over level/50,000 s,\n")
	p("so that up to a million flows are open at once in a capture that fits in memory. The\n")
	p("sensor's table keeps a flow until 10 s after its last packet (its timeout for a closed\n")
	p("connection), so it holds more flows at once than are open: *held* counts those. The\n")
	p("flow table holds the sensor's default 1,000,000 flows, or the most held plus a quarter.\n")
	if f := r.Resident; f != nil {
		p("*%s* is the standard capture's traffic from %d slots: so few flows at once that the\n", f.Name, f.Options.Concurrent)
		p("flow table stays in the L2 cache. Replayed with 1 worker only, it is the pipeline's\n")
		p("cost without the table's cache misses, the floor under the standard capture's figure.\n")
	}
	p("\n")
	p("| capture | connections | slots | flows open at once (most) | flows held at once (most) | packets | file MB | events expected |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.files() {
		expected := 0
		if c, ok := f.Median(1); ok {
			for _, q := range c.Quality {
				expected += q.Truth
			}
		}
		p("| %s | %d | %d | %d | %d | %d | %.0f | %d |\n", f.Name, f.Options.Connections, f.Options.Concurrent, f.Gen.MaxOpen, f.Gen.MaxHeld, f.Gen.Packets, float64(f.Size)/1e6, expected)
	}

	p("\n## Replay\n\n")
	p("| capture | workers | packets/s | ns/packet | CPUs busy | setup ms | flows/s created | table slots | flows held (most) | allocations/packet | GC cycles | peak RSS MB | RSS growth MB | table evictions (full) | out of order | events | missing | unexpected |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, f := range r.files() {
		for _, w := range cfg.Workers {
			c, ok := f.Median(w)
			if !ok {
				continue
			}
			flowsPS := float64(c.Created) / c.Running().Seconds()
			held := ""
			if c.Peak > 0 {
				held = strconv.Itoa(c.Peak)
			}
			p("| %s | %d | %s | %.0f | %s | %d | %s | %d | %s | %.6f | %d | %d | %d | %d | %d | %d | %d | %d |\n", f.Name, w, report.Rate(c.PPS()), c.NsPerPacket(),
				busyCell(c.Busy()), c.Setup.Milliseconds(), report.Rate(flowsPS), c.Flows, held, float64(c.Mallocs)/float64(max(c.Packets, 1)), c.GCs, c.Child.MaxRSS>>20, (c.RSSPeak-c.RSSBefore)>>20,
				c.EvictedFull, c.Late, c.Events, len(c.Missing), len(c.Extra))
		}
	}
	p("\nPackets/s, ns/packet and flows/s count from the end of *setup*: building the flow\n")
	p("tables and faulting in the detectors' bounded tables (about 90 MB), once per run,\n")
	p("before the first packet. It is given apart; on this VM it is mostly the first touch\n")
	p("of fresh memory (docs/performance.md). CPUs busy: the process's CPU time (every\n")
	p("thread: workers, reader, Correlator, Go runtime) over its wall time, both from the\n")
	p("end of setup. Flows held: the most the flow tables held at once, measured (with\n")
	p("2 workers, each worker's most, summed); the captures' table above has the\n")
	p("generator's count, which leaves out the few flows that stay longer than 10 s.\n")
	p("Peak RSS is the replay process's (the capture in memory included); RSS growth is\n")
	p("what the replay added to it (flow tables, detector state, buffers). Out of order:\n")
	p("items the correlator handled before their turn because its queue was full.\n")

	if c, ok := r.Standard.Median(1); ok {
		p("\n### Detection quality, standard capture, 1 worker\n\n| event type | expected | reported | matched | recall | precision |\n|---|---:|---:|---:|---:|---:|\n")
		for _, q := range c.Quality {
			p("| %s | %d | %d | %d | %.1f%% | %.1f%% |\n", q.Type, q.Truth, q.Reported, q.Matched, 100*q.Recall, 100*q.Precision)
		}
		p("\nThe anomalies carry their cause (`event.reason`); a match needs type, cause, client and server.\n")
	}

	p("\n## Peers and references on the same files\n\n")
	p("tcpsentry replays from memory; the peers read the file from the page cache (it was\njust written). Ratio = tcpsentry 1 worker ÷ the tool.\n\n")
	p("| capture | reader | packets/s | ratio | CPU s | peak RSS MB | output lines |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, f := range r.files() {
		one, ok := f.Median(1)
		if !ok || f == r.Resident { // no peers ran on it
			continue
		}
		p("| %s | tcpsentry, 1 worker | %s | 1 | %.2f | %d | %d events |\n", f.Name, report.Rate(one.PPS()), one.Child.CPU.Seconds(), one.Child.MaxRSS>>20, one.Events)
		if two, ok := f.Median(2); ok {
			p("| %s | tcpsentry, 2 workers | %s | %.2f | %.2f | %d | %d events |\n", f.Name, report.Rate(two.PPS()), one.PPS()/two.PPS(), two.Child.CPU.Seconds(), two.Child.MaxRSS>>20, two.Events)
		}
		if g := f.Gopacket; g != nil && g.PPS > 0 {
			p("| %s | gopacket.NewPacket + Go map (reference) | %s | %.2f | | | %d flows |\n", f.Name, report.Rate(g.PPS), one.PPS()/g.PPS, g.Flows)
		}
		for i := range f.Peers {
			pr := &f.Peers[i]
			pps := f.peerPPS(pr)
			p("| %s | `%s` | %s | %.1f | %.2f | %d | %d |\n", f.Name, pr.Command, report.Rate(pps), one.PPS()/pps, pr.CPU.Seconds(), pr.MaxRSS>>20, pr.Lines)
		}
		if f.PeerSkip != "" {
			p("| %s | peers | not run: %s | | | | |\n", f.Name, f.PeerSkip)
		}
		for _, t := range sortedKeys(f.PeerErrs) {
			p("| %s | %s | failed: %s | | | | |\n", f.Name, t, f.PeerErrs[t])
		}
	}
	p("\nMemory wall (reference): one dependent random access over %d MiB takes %.0f ns (median of %v).\n",
		r.Memref.Size>>20, r.MemNs(), roundAll(r.Memref.Rounds))
	if big := r.largest(); big != nil {
		if ratios, chases := big.ChaseRatios(); len(ratios) > 0 {
			p("Before each 1-worker replay of %s the chase ran once more: %v ns; each replay's ns/packet over the chase just before it: %s (the goal's line is their median).\n",
				big.Name, roundAll(chases), joinRatios(ratios))
		}
	}
	if len(r.MemrefHuge.Rounds) > 0 {
		p("In 2 MiB pages, as tcpsentry's flow table and detector tables are (so a miss walks no page tables), the same chase takes %.0f ns (median of %v); the goal's reference is the first.\n",
			report.Median(r.MemrefHuge.Rounds), roundAll(r.MemrefHuge.Rounds))
	}
	p("Other peers: Zeek and Suricata are not installable on this machine (no Debian package\nin its sources, no network); tcptrace and Argus (a record per connection with its TCP\nstate, counted with its client ra) are, and are above.\n")

	p("\n## Where the time goes\n\n")
	p("CPU of a 1-worker replay under the profiler, split by the package of the function a\n")
	p("sample is in (inlined functions count as their caller's). The reader and the worker\nrun in parallel, so CPU per packet can exceed wall time per packet.\n")
	for _, f := range r.files() {
		if len(f.Stages) == 0 {
			continue
		}
		p("\n**%s** (%d flows held at once at most)\n\n| stage | CPU ns/packet | share |\n|---|---:|---:|\n", f.Name, f.Gen.MaxHeld)
		for _, s := range f.Stages {
			p("| %s | %.0f | %.1f%% |\n", s.Name, s.NsPerPacket, 100*s.Share)
		}
		if len(f.Roles) > 0 {
			p("\nThe same samples by goroutine:\n\n| goroutine | CPU ns/packet | share |\n|---|---:|---:|\n")
			for _, s := range f.Roles {
				p("| %s | %.0f | %.1f%% |\n", s.Name, s.NsPerPacket, 100*s.Share)
			}
		}
	}

	if big := r.largest(); big != nil {
		if m, ok := big.Median(1); ok && len(m.Memory) > 0 && m.Flows > 0 {
			p("\n## Where the memory goes\n\n")
			p("%s, 1 worker, a table of %d slots (at most %d flows held at once): what the\n", big.Name, m.Flows, big.Gen.MaxHeld)
			p("pipeline's large arrays take at the end of the replay, and what of them is resident\n(mincore). Nothing is given back during a run, so for these arrays the end is the peak.\n\n")
			p("| arrays | allocated MB | resident MB | resident B per slot | share of the growth |\n|---|---:|---:|---:|---:|\n")
			grow := m.RSSPeak - m.RSSBefore
			var sum int64
			row := func(name string, alloc string, res int64) {
				p("| %s | %s | %.1f | %.0f | %.0f%% |\n", name, alloc, float64(res)/1e6, float64(res)/float64(m.Flows), 100*float64(res)/float64(max(grow, 1)))
			}
			for _, g := range m.Memory {
				row(g.Name, fmt.Sprintf("%.1f", float64(g.Bytes)/1e6), g.Resident)
				sum += g.Resident
			}
			row("the rest: the Go runtime, stacks, the replay reader's buffers", "", grow-sum)
			row("**growth of the replay's RSS**", "", grow)
		}
	}

	if len(r.Flat) == 2 {
		p("\n## Memory over a longer capture\n\nThe sweep's first level streamed from the generator into one worker (no file), as it is and %d× longer:\n\n", r.Flat[1].Times)
		p("| capture | packets | flows held at once (most) | peak RSS MB | allocations | GC cycles |\n|---|---:|---:|---:|---:|---:|\n")
		for _, fr := range r.Flat {
			p("| %d× | %d | %d | %d | %d | %d |\n", fr.Times, fr.Packets, fr.Gen.MaxHeld, fr.RSSPeak>>20, fr.Mallocs, fr.GCs)
		}
	}

	charts, err := writeCharts(dir, r)
	if err != nil {
		return err
	}
	p("\n## Charts\n\n")
	for _, c := range charts {
		p("![%s](%s)\n\n", c[0], c[1])
	}

	p("## Live capture\n\n")
	if r.Live == nil {
		p("Not run: %s. Run it with `-live` (root).\n", r.LiveSkip)
	} else {
		p("bench/live's report (`%s`):\n\n%s\n", r.Live.Command, demoteHeadings(r.Live.Markdown))
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "results.json"), r)
}

func liveCommand(r *results) string {
	if r.Live != nil {
		return r.Live.Command
	}
	return "not run"
}

func roundAll(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x + 0.5)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	slices.Sort(k)
	return k
}

// demoteHeadings pushes Markdown headings two levels down, under our
// "## Live capture".
func demoteHeadings(md string) string {
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#") {
			lines[i] = "##" + l
		}
	}
	return strings.Join(lines, "\n")
}

// writeCharts draws the charts; it returns their titles and file names.
func writeCharts(dir string, r *results) ([][2]string, error) {
	var out [][2]string
	write := func(name string, c *plot.Chart) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := c.WriteSVG(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		out = append(out, [2]string{c.Title, name})
		return nil
	}
	if len(r.Sweep) > 0 {
		series := map[string]*plot.Series{}
		var order []string
		add := func(name string, x, y float64) {
			if y <= 0 || x <= 0 {
				return
			}
			s := series[name]
			if s == nil {
				s = &plot.Series{Name: name}
				series[name] = s
				order = append(order, name)
			}
			s.Points = append(s.Points, plot.Point{X: x, Y: y})
		}
		nsChart := &plot.Chart{Title: "Replay time per packet vs concurrent flows", XLabel: "flows held at once", YLabel: "ns per packet", LogX: true, LogY: true}
		for _, f := range r.Sweep {
			x := float64(f.Gen.MaxHeld)
			for _, w := range []int{1, 2} {
				if c, ok := f.Median(w); ok {
					add(fmt.Sprintf("tcpsentry, %d worker(s)", w), x, c.PPS())
				}
			}
			if f.Gopacket != nil {
				add("gopacket decode + Go map", x, f.Gopacket.PPS)
			}
			for i := range f.Peers {
				add(f.Peers[i].Tool, x, f.peerPPS(&f.Peers[i]))
			}
		}
		pps := &plot.Chart{Title: "Replay packets/s vs concurrent flows", XLabel: "flows held at once", YLabel: "packets/s", LogX: true, LogY: true}
		for _, n := range order {
			pps.Series = append(pps.Series, *series[n])
		}
		if err := write("pps-vs-flows.svg", pps); err != nil {
			return nil, err
		}
		ns1 := plot.Series{Name: "tcpsentry, 1 worker"}
		wall := plot.Series{Name: "one dependent random access (memory wall)"}
		for _, f := range r.Sweep {
			if c, ok := f.Median(1); ok && f.Gen.MaxHeld > 0 {
				ns1.Points = append(ns1.Points, plot.Point{X: float64(f.Gen.MaxHeld), Y: c.NsPerPacket()})
				if r.MemNs() > 0 {
					wall.Points = append(wall.Points, plot.Point{X: float64(f.Gen.MaxHeld), Y: r.MemNs()})
				}
			}
		}
		if len(ns1.Points) > 0 {
			nsChart.Series = append(nsChart.Series, ns1)
			if len(wall.Points) > 0 {
				nsChart.Series = append(nsChart.Series, wall)
			}
			if err := write("ns-vs-flows.svg", nsChart); err != nil {
				return nil, err
			}
		}
	}
	if r.Live != nil && len(r.Live.Points) > 0 {
		names := map[string]string{}
		for _, rd := range r.Live.Readers {
			names[rd.Key] = rd.Name
		}
		series := map[string]*plot.Series{}
		var order []string
		for _, pt := range r.Live.Points {
			x := float64(pt.Rate)
			if pt.Rate == 0 {
				x = pt.SentPPS // top speed: what the sender reached
			}
			if x <= 0 {
				continue
			}
			s := series[pt.Reader]
			if s == nil {
				name := names[pt.Reader]
				if name == "" {
					name = pt.Reader
				}
				s = &plot.Series{Name: name}
				series[pt.Reader] = s
				order = append(order, pt.Reader)
			}
			s.Points = append(s.Points, plot.Point{X: x, Y: pt.LossPct})
		}
		loss := &plot.Chart{Title: "Live capture: loss vs offered rate", XLabel: "offered packets/s", YLabel: "loss %", LogX: true}
		for _, k := range order {
			s := series[k]
			slices.SortFunc(s.Points, func(a, b plot.Point) int {
				switch {
				case a.X < b.X:
					return -1
				case a.X > b.X:
					return 1
				}
				return 0
			})
			loss.Series = append(loss.Series, *s)
		}
		if len(loss.Series) > 0 {
			if err := write("loss-vs-rate.svg", loss); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// joinRatios lists ratios with two decimals, comma-separated.
func joinRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, x := range rs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}

// busyCell is a CPUs-busy figure for a table, blank when not measured
// (results from before it was).
func busyCell(b float64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", b)
}
