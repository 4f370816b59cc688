//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/peers"
	"github.com/tcpsentry/tcpsentry/bench/report"
	"github.com/tcpsentry/tcpsentry/bench/workload"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// config is one run of the suite.
type config struct {
	Levels   []int // concurrent flows of the sweep
	Workers  []int
	Repeat   int   // replays per case; the median is reported
	PeerMax  int   // peers run on captures of at most this many packets
	MemSize  int64 // the pointer chase's array
	MemSteps int
	Flat     int // the RSS-flatness capture is this many times longer
	MinFlows int // the smallest flow table (default: the sensor's)
	Profile  bool

	// Standard is the realistic capture: the cache-resident case, the
	// peers' file, the detection check.
	Standard workload.Options
	// ResidentSlots, when not 0, adds the standard traffic from this few
	// slots (Options.Concurrent): so few flows at once that the flow
	// table stays in the L2 cache. Its 1-worker replays are the
	// pipeline's cost without the table's cache misses, the floor under
	// the standard capture's figure.
	ResidentSlots int
	// Sweep gives the capture of one concurrency level: many keep-alive
	// clients, mostly idle, so that a million flows are open at once
	// in a capture that fits in memory.
	Sweep func(level int) workload.Options
}

func defaultConfig() config {
	std := workload.DefaultOptions()
	std.Connections = 130_000 // about 10 million packets
	return config{
		Levels:   []int{10_000, 100_000, 1_000_000},
		Workers:  []int{1, 2},
		Repeat:   3,
		PeerMax:  12_000_000,
		MemSize:  1 << 30,
		MemSteps: 20_000_000,
		Flat:     10,
		MinFlows: sensor.DefaultFlows,
		Standard: std,
		// 64 slots: about 1,300 flows held at once, 0.3 MB of
		// connections, in the 1 MiB L2 cache with their index.
		ResidentSlots: 64,
		Sweep:         sweepOptions,
	}
}

// sweepOptions: twice as many connections as slots (so that the slots
// stay busy: at most about level flows open at once), at least 200,000;
// 1-2 exchanges of small responses with pauses of up to 4 minutes between
// them, the slots starting over level/50,000 s: new connections come at
// 30,000-50,000 a second at 1M open, as on a busy front end.
func sweepOptions(level int) workload.Options {
	o := workload.DefaultOptions()
	o.Concurrent = level
	o.Connections = max(2*level, 200_000)
	o.Exchanges = 2
	o.MaxResponse = 2000
	o.ThinkMax = 4 * time.Minute
	o.Ramp = max(time.Second, time.Duration(level)*time.Second/50_000)
	return o
}

// quickConfig is the smoke run: small captures, few steps.
func quickConfig() config {
	c := defaultConfig()
	c.Levels = []int{1000, 5000}
	c.Repeat = 1
	c.MemSize, c.MemSteps = 64<<20, 1_000_000
	c.Flat = 3
	c.MinFlows = 100_000
	c.Standard.Connections, c.Standard.Concurrent = 3000, 1000
	c.ResidentSlots = 16
	c.Sweep = func(level int) workload.Options {
		o := sweepOptions(level)
		o.Connections = 2 * level
		return o
	}
	return c
}

// results is everything a run measured; it is also written as JSON.
type results struct {
	Date   time.Time
	Host   report.Host
	Args   []string
	Tools  map[string]string // version, or why it is missing
	Memref memrefResult
	// MemrefHuge is the same chase in 2 MiB pages, as tcpsentry's tables
	// are (not the goal's reference: shown beside it).
	MemrefHuge memrefResult
	Standard   *fileResult
	// Resident is the standard traffic from Config.ResidentSlots slots.
	Resident *fileResult `json:",omitempty"`
	Sweep    []*fileResult
	Flat     []flatRun
	Live     *liveResults `json:",omitempty"`
	LiveSkip string       `json:",omitempty"`
}

// MemNs is the memory wall: the median dependent random access.
func (r *results) MemNs() float64 { return report.Median(r.Memref.Rounds) }

// fileResult is one capture and everything run on it.
type fileResult struct {
	Name     string
	Level    int // concurrent flows asked for
	Options  workload.Options
	Gen      workload.Stats
	Size     int64 // file bytes
	Replays  map[int][]caseRun
	Gopacket *gopacketResult
	Peers    []peers.Result
	PeerSkip string            `json:",omitempty"` // why the peers did not run
	PeerErrs map[string]string `json:",omitempty"`
	Stages   []stage           // CPU by stage of a profiled 1-worker replay
	Roles    []stage           // the same CPU by goroutine
	Profile  string            `json:",omitempty"` // the top of that profile
}

// caseRun is one replay with what the child cost and how well it did.
type caseRun struct {
	replayResult
	Child childRun
	// Chase is the memory wall measured again just before this replay
	// (ns per access, one round), for the replays the goal compares with
	// it; 0 when not measured.
	Chase   float64 `json:",omitempty"`
	Quality []workload.Quality
	Missing []workload.Truth `json:",omitempty"`
	Extra   []workload.Truth `json:",omitempty"`
}

// Median is the run with the median packets/s of workers w.
func (f *fileResult) Median(w int) (caseRun, bool) {
	rs := slices.Clone(f.Replays[w])
	if len(rs) == 0 {
		return caseRun{}, false
	}
	slices.SortFunc(rs, func(a, b caseRun) int {
		switch {
		case a.PPS() < b.PPS():
			return -1
		case a.PPS() > b.PPS():
			return 1
		}
		return 0
	})
	return rs[len(rs)/2], true
}

// WholeNs is the median of w workers' replays in ns per packet counting
// setup too (Elapsed ÷ Packets), the way reports before Setup measured.
func (f *fileResult) WholeNs(w int) float64 {
	var ns []float64
	for _, c := range f.Replays[w] {
		if c.Packets > 0 {
			ns = append(ns, float64(c.Elapsed.Nanoseconds())/float64(c.Packets))
		}
	}
	return report.Median(ns)
}

// ChaseRatios returns, for each 1-worker replay measured with a chase
// just before it, its ns/packet over that chase, in run order.
func (f *fileResult) ChaseRatios() (ratios, chases []float64) {
	for _, c := range f.Replays[1] {
		if c.Chase > 0 && c.Packets > 0 {
			ratios = append(ratios, c.NsPerPacket()/c.Chase)
			chases = append(chases, c.Chase)
		}
	}
	return ratios, chases
}

// Perfect reports whether every replay of the file found exactly the
// truth.
func (f *fileResult) Perfect() bool {
	for _, rs := range f.Replays {
		for _, r := range rs {
			if len(r.Missing) > 0 || len(r.Extra) > 0 {
				return false
			}
		}
	}
	return len(f.Replays) > 0
}

// flatRun is a streamed replay of the RSS-flatness check.
type flatRun struct {
	Times int // the capture is this many times the sweep's first level's
	Gen   workload.Stats
	replayResult
	Child childRun
}

// suite runs the benchmark.
type suite struct {
	cfg  config
	run  runner
	work string // scratch directory for the captures
	res  *results
}

func (s *suite) all(ctx context.Context) error {
	s.res.Host = report.Describe()
	s.res.Tools = map[string]string{}
	for _, t := range peerTools {
		if ok, why := peers.Available(t); !ok {
			s.res.Tools[t] = why
		}
	}
	s.run.logf("memory wall: pointer chase over %d MiB, %d steps", s.cfg.MemSize>>20, s.cfg.MemSteps)
	if _, err := s.run.child(ctx, &s.res.Memref, nil, "memref",
		"-size", strconv.FormatInt(s.cfg.MemSize, 10), "-steps", strconv.Itoa(s.cfg.MemSteps), "-rounds", "3"); err != nil {
		return err
	}
	if _, err := s.run.child(ctx, &s.res.MemrefHuge, nil, "memref", "-huge",
		"-size", strconv.FormatInt(s.cfg.MemSize, 10), "-steps", strconv.Itoa(s.cfg.MemSteps), "-rounds", "3"); err != nil {
		return err
	}
	s.run.logf("memory wall: %.0f ns per access (%.0f ns in 2 MiB pages)", s.res.MemNs(), report.Median(s.res.MemrefHuge.Rounds))

	std := &fileResult{Name: "standard", Level: s.cfg.Standard.Concurrent, Options: s.cfg.Standard}
	if err := s.file(ctx, std, fileRun{profile: true}); err != nil {
		return err
	}
	s.res.Standard = std
	if n := s.cfg.ResidentSlots; n > 0 {
		o := s.cfg.Standard
		o.Concurrent = n
		f := &fileResult{Name: "resident", Level: n, Options: o}
		if err := s.file(ctx, f, fileRun{profile: true, reference: true}); err != nil {
			return err
		}
		s.res.Resident = f
	}
	for i, lvl := range s.cfg.Levels {
		f := &fileResult{Name: fmt.Sprintf("sweep-%s", levelName(lvl)), Level: lvl, Options: s.cfg.Sweep(lvl)}
		// The largest level is the memory wall's: its profile shows it,
		// and each of its 1-worker replays comes with a chase.
		last := i == len(s.cfg.Levels)-1
		if err := s.file(ctx, f, fileRun{profile: last, chase: last}); err != nil {
			return err
		}
		s.res.Sweep = append(s.res.Sweep, f)
	}
	if len(s.cfg.Levels) > 0 && s.cfg.Flat > 1 {
		if err := s.flat(ctx); err != nil {
			return err
		}
	}
	return nil
}

// fileRun says what runs on a capture besides the replays.
type fileRun struct {
	profile bool // a profiled 1-worker replay, split by stage
	chase   bool // the memory wall again just before each 1-worker replay
	// reference: a capture that only measures tcpsentry against itself:
	// 1-worker replays, no gopacket reader, no peers.
	reference bool
}

// file generates one capture and runs on it what how says.
func (s *suite) file(ctx context.Context, f *fileResult, how fileRun) error {
	name := filepath.Join(s.work, f.Name+".pcap")
	s.run.logf("%s: generating %d connections, %d concurrent", f.Name, f.Options.Connections, f.Options.Concurrent)
	st, err := generate(name, f.Options)
	if err != nil {
		return err
	}
	defer os.Remove(name)
	truth := st.Truth
	st.Truth = nil
	f.Gen = st
	if fi, err := os.Stat(name); err == nil {
		f.Size = fi.Size()
	}
	s.run.logf("%s: %d packets, %d MB, at most %d flows open at once, %d held", f.Name, st.Packets, f.Size>>20, st.MaxOpen, st.MaxHeld)
	flows := tableSize(s.cfg.MinFlows, st.MaxHeld)
	f.Replays = map[int][]caseRun{}
	events := filepath.Join(s.work, f.Name+".events.jsonl")
	defer os.Remove(events)
	workers := s.cfg.Workers
	if how.reference {
		workers = []int{1}
	}
	for _, w := range workers {
		for i := range s.cfg.Repeat {
			var r caseRun
			if how.chase && w == 1 {
				// The machine's memory drifts by more than the goal's
				// margin within a suite run: the replay is compared
				// with a chase minutes before it, not half an hour.
				var m memrefResult
				if _, err := s.run.child(ctx, &m, nil, "memref",
					"-size", strconv.FormatInt(s.cfg.MemSize, 10), "-steps", strconv.Itoa(s.cfg.MemSteps), "-rounds", "1"); err != nil {
					return err
				}
				if len(m.Rounds) > 0 {
					r.Chase = m.Rounds[0]
				}
			}
			cr, err := s.run.child(ctx, &r.replayResult, nil, "replay", "-file", name, "-inmem",
				"-workers", strconv.Itoa(w), "-flows", strconv.Itoa(flows), "-events", events, "-memmap")
			if err != nil {
				return err
			}
			r.Child = cr
			if err := r.score(events, truth); err != nil {
				return err
			}
			s.run.logf("%s: %d worker(s), run %d: %.2fM packets/s, %.0f ns/packet, %d events (%d missing, %d unexpected)",
				f.Name, w, i+1, r.PPS()/1e6, r.NsPerPacket(), r.Events, len(r.Missing), len(r.Extra))
			if r.Chase > 0 {
				s.run.logf("%s: the chase before it: %.0f ns per access, ratio %.2f", f.Name, r.Chase, r.NsPerPacket()/r.Chase)
			}
			f.Replays[w] = append(f.Replays[w], r)
		}
	}
	if !how.reference {
		var g gopacketResult
		if _, err := s.run.child(ctx, &g, nil, "gopacket", "-file", name); err != nil {
			return err
		}
		f.Gopacket = &g
		s.run.logf("%s: gopacket decode + map: %.2fM packets/s", f.Name, g.PPS/1e6)
	}
	if how.profile || s.cfg.Profile {
		if err := s.profile(ctx, f, name, flows); err != nil {
			return err
		}
	}
	if how.reference {
		return nil
	}
	if st.Packets > s.cfg.PeerMax {
		f.PeerSkip = fmt.Sprintf("%d packets is more than -peer-max %d (tshark reads about 100k packets/s and holds every conversation in memory)", st.Packets, s.cfg.PeerMax)
		return nil
	}
	f.PeerErrs = map[string]string{}
	for _, tool := range peerTools {
		if ok, _ := peers.Available(tool); !ok {
			continue
		}
		s.run.logf("%s: %s", f.Name, tool)
		var res peers.Result
		var err error
		switch tool {
		case "tshark":
			res, err = peers.Tshark(ctx, name)
		case "tcpdump":
			res, err = peers.Tcpdump(ctx, name)
		case "tcptrace":
			res, err = peers.Tcptrace(ctx, name)
		case "argus":
			res, err = peers.Argus(ctx, name)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.PeerErrs[tool] = err.Error()
			continue
		}
		res.Command = strings.ReplaceAll(res.Command, name, filepath.Base(name))
		if s.res.Tools[tool] == "" {
			s.res.Tools[tool] = res.Version
		}
		f.Peers = append(f.Peers, res)
		s.run.logf("%s: %s: %.2fM packets/s", f.Name, tool, float64(st.Packets)/res.Took.Seconds()/1e6)
	}
	return nil
}

// peerTools are the peers the suite runs, in the order it runs them.
var peerTools = []string{"tcpdump", "tcptrace", "argus", "tshark"}

// score reads the events a replay wrote and compares them with the truth.
func (r *caseRun) score(events string, truth []workload.Truth) error {
	fh, err := os.Open(events)
	if err != nil {
		return err
	}
	defer fh.Close()
	got, err := workload.ParseEvents(bufio.NewReader(fh))
	if err != nil {
		return fmt.Errorf("%s: %w", events, err)
	}
	r.Quality = workload.Score(truth, got)
	r.Missing, r.Extra = workload.Diff(truth, got)
	return nil
}

// profile replays once more with one worker under the CPU profiler and
// splits the samples by stage.
func (s *suite) profile(ctx context.Context, f *fileResult, name string, flows int) error {
	prof := filepath.Join(s.work, f.Name+".cpu.pprof")
	defer os.Remove(prof)
	var r replayResult
	if _, err := s.run.child(ctx, &r, nil, "replay", "-file", name, "-inmem", "-workers", "1",
		"-flows", strconv.Itoa(flows), "-cpuprofile", prof); err != nil {
		return err
	}
	top, err := pprofTop(ctx, prof)
	if err != nil {
		return err
	}
	f.Stages = stages(top, r.Packets)
	tags, err := pprofRun(ctx, "-tags", prof)
	if err != nil {
		return err
	}
	f.Roles = roles(tags, r.Packets)
	f.Profile = topLines(top, 25)
	return nil
}

// flat replays the sweep's first level streamed from the generator, as
// tableSize is the flow table for a capture whose flows are held
// (workload.Stats.MaxHeld): at least min (the sensor's default), else
// held with a quarter more room, for flows that end without a close and
// stay half-open for 30 s and for the unequal split between workers. The
// report shows the evictions of a full table, which must stay 0.
func tableSize(min, held int) int {
	return max(min, held+held/4)
}

// it is and Flat times longer, with one worker: peak RSS must not grow
// with the length, and the difference in allocations and GC cycles is
// what the extra packets cost.
func (s *suite) flat(ctx context.Context) error {
	// A streamed capture's MaxHeld is known only once it is written:
	// size both runs' tables by a dry run of the shorter one (the
	// longer holds as many flows at once).
	dry, err := workload.Write(io.Discard, s.cfg.Sweep(s.cfg.Levels[0]))
	if err != nil {
		return err
	}
	flows := tableSize(s.cfg.MinFlows, dry.MaxHeld)
	for _, times := range []int{1, s.cfg.Flat} {
		o := s.cfg.Sweep(s.cfg.Levels[0])
		o.Connections *= times
		fr := flatRun{Times: times}
		s.run.logf("flatness: %d× (%d connections), streamed", times, o.Connections)
		cr, err := s.run.child(ctx, &fr.replayResult, func(w io.Writer) error {
			st, err := workload.Write(w, o)
			st.Truth = nil
			fr.Gen = st
			return err
		}, "replay", "-file", "-", "-workers", "1", "-flows", strconv.Itoa(flows))
		if err != nil {
			return err
		}
		fr.Child = cr
		s.res.Flat = append(s.res.Flat, fr)
		s.run.logf("flatness: %d×: %d packets, peak RSS %d MB", times, fr.Packets, fr.RSSPeak>>20)
	}
	return nil
}

// generate writes a capture and returns what it holds.
func generate(name string, o workload.Options) (workload.Stats, error) {
	return workload.WriteFile(name, o)
}

// pprofTop is `go tool pprof -top` of a profile, every function.
func pprofTop(ctx context.Context, prof string) (string, error) {
	return pprofRun(ctx, "-top", "-nodecount=100000", prof)
}

// pprofRun is the output of `go tool pprof args...`.
func pprofRun(ctx context.Context, args ...string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the profile needs the go command (go tool pprof): " + err.Error())
	}
	out, err := exec.CommandContext(ctx, gobin, append([]string{"tool", "pprof"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go tool pprof: %v: %s", err, lastLine(string(ee.Stderr)))
		}
		return "", fmt.Errorf("go tool pprof: %w", err)
	}
	return string(out), nil
}

func levelName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}
