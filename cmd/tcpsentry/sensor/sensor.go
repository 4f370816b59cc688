// Package sensor wires the pipeline: sources from ring, one Worker per
// source (decode, flow table, detectors), and the publisher that encodes
// events. It is the only package that knows all the others.
package sensor

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/detectors/events"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
	"github.com/tcpsentry/tcpsentry/ring"
)

// Config configures a sensor; the zero value of a field means its default.
type Config struct {
	// Workers is the number of workers (default: number of CPUs).
	Workers int
	// Flows is the flow-table capacity of the whole sensor, split evenly
	// over the workers (default 1,000,000).
	Flows int
	// Table holds the idle and handshake timeouts (Capacity and Seed are
	// set by the sensor).
	Table flowtable.Config
	// Detectors holds the detector thresholds, and which event types
	// are emitted at what severity.
	Detectors detectors.Config
	// Reload, when set, carries new detector settings to the running
	// sensor (see Reload.Set); they replace Detectors.
	Reload *Reload
	// Name is observer.name in events (default "tcpsentry").
	Name string
	// Version is observer.version in events.
	Version string
	// Interfaces names the capture interfaces (observer.ingress); empty
	// for a replay, taken from the capture by Capture.
	Interfaces []string
	// CPUs are the CPUs live workers are pinned to, worker i to
	// CPUs[i%len(CPUs)] (default: every CPU the process may use).
	CPUs []int

	// Sink, when set, gets every event as it is written: its action
	// (event.action), event.id and JSON body (the NATS publisher).
	Sink Sink

	// Observer, when set, is given the pipeline's counters as it runs
	// (see Observer.Snapshot).
	Observer *Observer

	// MapMemory has Replay fill Summary.Memory.
	MapMemory bool

	// Filter, in a replay, is a capture filter in tcpdump syntax: only
	// the frames it accepts are processed (ring.ReplayConfig.Filter).
	// A live capture runs its filter in the kernel (ring.LiveConfig).
	Filter string

	// flowEnded, when set, sees every connection as it leaves a
	// worker's table (the tests compare live and replay flow by flow).
	flowEnded func(worker int, c *flowtable.Conn)
}

// Sink takes encoded events. The slices are only valid during the call.
type Sink interface {
	Publish(action string, id, body []byte)
}

// Reload hands new detector settings to a running sensor without
// stopping it: flows, their state and the cross-connection state are
// kept. Share one between the caller and Config.Reload.
type Reload struct {
	cfg atomic.Pointer[detectors.Config]
}

// Set makes cfg the detectors' configuration. Each worker takes it
// before its next batch (it checks once per batch, never per packet),
// the correlator before the next batch it receives: an event is judged
// by the settings in force when its packets (or, for cross-connection
// events, the batch that brought them to the correlator) were handled.
func (r *Reload) Set(cfg detectors.Config) { r.cfg.Store(&cfg) }

// load returns the latest settings, nil before the first Set.
func (r *Reload) load() *detectors.Config {
	if r == nil {
		return nil
	}
	return r.cfg.Load()
}

// DefaultFlows is Config.Flows' default.
const DefaultFlows = 1_000_000

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Flows <= 0 {
		c.Flows = DefaultFlows
	}
	if c.Name == "" {
		c.Name = "tcpsentry"
	}
}

// Summary is what a replay or a capture did.
type Summary struct {
	Workers      int
	Packets      uint64
	Bytes        uint64 // on the wire
	Drops        [decode.NumReasons]uint64
	OptMalformed uint64
	Flows        flowtable.Stats            // summed over workers; Active after the final flush (0 when every flow ended), Flushed the flows the flush ended, Peak each worker's most held at once
	FlowCapacity int                        // the flow tables' slots, summed over workers
	Events       [detectors.NumTypes]uint64 // events written, by type
	Folded       [detectors.NumTypes]uint64 // repeats folded into them (tcpsentry.count)
	Suppressed   [detectors.NumTypes]uint64 // occurrences of disabled types, not written
	RateLimited  [detectors.NumTypes]uint64 // events not written: over their type's rate limit
	EventsLost   uint64
	// Late is the facts and events the correlator handled before their
	// turn because its queue was full: cross-connection findings about
	// them (timestamp regressions, rates) may be wrong or missing.
	Late      uint64
	Truncated bool // the capture's last record was cut short
	// Filter is a replay's capture filter (Config.Filter), and Filtered
	// the frames it left out: they are not in Packets.
	Filter   string
	Filtered uint64
	FirstTS  int64
	LastTS   int64
	Elapsed  time.Duration
	// Setup is the part of Elapsed spent building the pipeline before
	// its first packet: the flow tables, and the detectors' bounded
	// tables, which are faulted in whole at start (about 90 MB).
	Setup time.Duration
	// CPU is the processor time the process used after Setup, user and
	// system, every thread: the workers, the replay's reader, the
	// Correlator, the Go runtime (0 where it cannot be read). Divided by
	// Elapsed - Setup it is how many CPUs the pipeline kept busy: what
	// more workers can gain on a machine of so many CPUs.
	CPU time.Duration

	// Live capture only: the interfaces and their kernel counters.
	Interfaces []ring.Interface
	Kernel     []ring.IfaceStats
	// PerWorker is each worker's packet count (fanout balance).
	PerWorker []uint64

	// Memory maps the pipeline's large arrays at the end of a replay
	// (Config.MapMemory): by what they hold, the bytes allocated and
	// those resident. Nothing is given back to the system during a run,
	// so for these arrays the end is the peak.
	Memory []MemoryRegion
}

// MemoryRegion is what one kind of the pipeline's arrays takes.
type MemoryRegion struct {
	Name     string
	Bytes    int64 // allocated
	Resident int64 // in pages that are in memory
}

// DecodeFailures is the number of frames not decoded to a TCP segment.
func (s *Summary) DecodeFailures() (n uint64) {
	for _, d := range s.Drops[1:] {
		n += d
	}
	return n
}

// EventsTotal is the number of events written.
func (s *Summary) EventsTotal() (n uint64) {
	for _, e := range s.Events {
		n += e
	}
	return n
}

// pipeline is the workers and the publisher over a set of sources.
type pipeline struct {
	cfg     Config
	workers []*Worker
	pub     *publisher
	start   time.Time
	ready   time.Time   // built: tables made, detector state faulted in
	ended   atomic.Bool // every worker and the publisher are done
	// readyCPU is the process's CPU time at ready (Summary.CPU).
	readyCPU time.Duration
}

// Timestamps out of order within a worker's input, tolerated without
// losing the order of events: a recording may merge captures or come from
// a multi-queue NIC, so replay allows a second; a live ring holds
// packets in arrival order and stamps idle batches with its own lag
// (ring.LiveConfig.RetireTimeout), so live allows little, and events reach
// NATS a few hundred milliseconds after their packet.
const (
	replayReorder = int64(time.Second)
	liveReorder   = int64(50 * time.Millisecond)
)

// replayBatch is the replay's batch size: handing a batch from the reader
// to a worker wakes a parked goroutine (a futex call, several
// microseconds on a VM), so batches larger than a ring block's keep that
// cost per packet small.
const replayBatch = 1024

// newPipeline builds a worker per source; batch is the most frames a
// worker takes at a time (0: ring.DefaultBatchSize).
func newPipeline(cfg Config, srcs []ring.Source, out io.Writer, endClock func() int64, reorder int64, batch int) (*pipeline, error) {
	p := &pipeline{cfg: cfg, start: time.Now()}
	p.pub = newPublisher(cfg, out, len(srcs))
	tcfg := cfg.Table
	tcfg.Seed = flowtable.RandomSeed()
	tcfg.Capacity = (cfg.Flows + len(srcs) - 1) / len(srcs)
	for i, src := range srcs {
		w, err := newWorker(i, src, tcfg, cfg.Detectors, p.pub.sender(i), cfg.flowEnded)
		if err != nil {
			p.pub.abort()
			return nil, err
		}
		w.live = newWorkerLive(len(cfg.Interfaces), w.flows.Capacity())
		w.endClock = endClock
		w.reload = cfg.Reload
		w.reorder = reorder
		if batch > 0 {
			w.batch = ring.NewBatch(batch)
		}
		p.workers = append(p.workers, w)
	}
	if cfg.Observer != nil {
		ifaces := cfg.Interfaces
		if len(ifaces) == 0 {
			ifaces = []string{ReplayInterface}
		}
		cfg.Observer.attach(p, ifaces)
	}
	p.ready = time.Now()
	p.readyCPU, _ = ring.ProcessCPU()
	return p, nil
}

// run runs every worker in its goroutine, pinned to cpus[i%len(cpus)]
// when cpus is not empty, until its source ends; failed is called on the
// first worker error. It returns the first error, the publisher's
// included.
func (p *pipeline) run(cpus []int, failed func(), log *slog.Logger) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.workers))
	for i, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			setRole("worker")
			if len(cpus) > 0 {
				if err := ring.PinThread(cpus[i%len(cpus)]); err != nil && log != nil {
					log.Warn("worker runs unpinned", "worker", i, "cpu", cpus[i%len(cpus)], "error", err.Error())
				}
			}
			errs[i] = w.run()
			if errs[i] != nil && failed != nil {
				failed()
			}
		}()
	}
	wg.Wait()
	perr := p.pub.wait()
	p.ended.Store(true)
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return perr
}

func (p *pipeline) summary() Summary {
	sum := Summary{Workers: len(p.workers), Elapsed: time.Since(p.start), Setup: p.ready.Sub(p.start)}
	if cpu, ok := ring.ProcessCPU(); ok && p.readyCPU > 0 {
		sum.CPU = cpu - p.readyCPU
	}
	for _, w := range p.workers {
		st := w.stats
		sum.Packets += st.Packets
		sum.Bytes += st.Bytes
		sum.OptMalformed += st.OptMalformed
		sum.PerWorker = append(sum.PerWorker, st.Packets)
		for i, d := range st.Drops {
			sum.Drops[i] += d
		}
		fs := w.flows.Stats()
		sum.Flows.Created += fs.Created
		sum.Flows.Active += fs.Active
		sum.Flows.Peak += fs.Peak
		sum.FlowCapacity += w.flows.Capacity()
		sum.Flows.EvictedIdle += fs.EvictedIdle
		sum.Flows.EvictedFull += fs.EvictedFull
		sum.Flows.Reused += fs.Reused
		sum.Flows.Flushed += fs.Flushed
		sum.EventsLost += w.out.Dropped
	}
	sum.Events = p.pub.cor.Counts
	sum.Folded = p.pub.cor.Folded
	sum.Suppressed = p.pub.cor.Suppressed
	sum.RateLimited = p.pub.cor.RateLimited
	sum.Late = p.pub.cor.Late
	return sum
}

// Replay runs the pipeline over a pcap or pcapng stream and writes events
// as JSON lines to out. Cancelling ctx stops reading; the flows of the
// frames processed so far are still ended, at the capture time each
// worker reached, and their events written; the Summary counts those
// frames (frames read ahead are not processed). A truncated last record
// is not an error (Summary.Truncated says so).
func Replay(ctx context.Context, r io.Reader, cfg Config, out io.Writer) (Summary, error) {
	cfg.defaults()
	rcfg := ring.ReplayConfig{Workers: cfg.Workers, BatchSize: replayBatch, Filter: cfg.Filter}
	if cfg.Workers > 1 {
		rcfg.Hash = fanoutHash(flowtable.RandomSeed())
	}
	rp, err := ring.OpenReplay(r, rcfg)
	if err != nil {
		return Summary{}, err
	}
	srcs := rp.Sources()
	// Cut short (ctx), the reader has read frames that no worker will
	// take: the end of the input is then where each worker got to, so
	// that no timer fires on the time of a packet nobody saw.
	endClock := func() int64 {
		if ctx.Err() != nil {
			return 0
		}
		return rp.Stats().LastTS
	}
	p, err := newPipeline(cfg, srcs, out, endClock, replayReorder, replayBatch)
	if err != nil {
		rp.Close()
		return Summary{}, err
	}
	stop := context.AfterFunc(ctx, func() {
		for _, s := range srcs {
			s.Close()
		}
	})
	defer stop()
	err = p.run(nil, nil, nil)
	sum := p.summary()
	if cfg.MapMemory {
		sum.Memory = p.mapMemory()
	}
	st := rp.Stats()
	sum.Truncated = st.Truncated
	sum.Filter, sum.Filtered = cfg.Filter, st.Filtered
	sum.FirstTS, sum.LastTS = st.FirstTS, st.LastTS
	if ctx.Err() != nil {
		// The summary covers the frames processed, not those read ahead.
		sum.LastTS = 0
		for _, w := range p.workers {
			sum.LastTS = max(sum.LastTS, w.stats.LastTS)
		}
	}
	if err != nil {
		return sum, err
	}
	return sum, rp.Err()
}

// Capture runs the pipeline over a live capture until ctx is cancelled
// (or a worker fails), then ends every flow as at the end of a capture
// (pending timers fire), writes the last events to out and closes live.
// cfg.Workers is live's number of sources. Once a second it reads the
// kernel's counters; log (nil: none) gets a warning when an interface
// starts dropping packets or failing, reminders while it goes on, and
// a record when it stops (see watchDrops).
func Capture(ctx context.Context, live *ring.Live, cfg Config, out io.Writer, log *slog.Logger) (Summary, error) {
	srcs := live.Sources()
	cfg.Workers = len(srcs)
	cfg.defaults()
	cfg.Interfaces = cfg.Interfaces[:0:0]
	for _, ifc := range live.Interfaces() {
		cfg.Interfaces = append(cfg.Interfaces, ifc.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var stopTS atomic.Int64
	stopNow := func() {
		stopTS.CompareAndSwap(0, time.Now().UnixNano())
		live.Stop()
	}
	p, err := newPipeline(cfg, srcs, out, stopTS.Load, liveReorder, 0)
	if err != nil {
		live.Close()
		return Summary{}, err
	}
	cpus := cfg.CPUs
	if len(cpus) == 0 {
		cpus, _ = ring.CPUs()
	}
	stop := context.AfterFunc(ctx, stopNow)
	defer stop()
	watchDone := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchDrops(live, log, watchDone, cfg.Observer)
	}()
	err = p.run(cpus, stopNow, log)
	close(watchDone)
	<-watched
	live.Close() // every worker has stopped: no frame is in use
	sum := p.summary()
	sum.Interfaces = live.Interfaces()
	sum.Kernel = live.Stats()
	if cfg.Observer != nil {
		cfg.Observer.setKernel(append([]ring.IfaceStats(nil), sum.Kernel...))
	}
	return sum, err
}

// watchDrops reads the kernel's counters once a second, logs each
// change of an interface's drops and socket errors (see episode), and
// hands the counters to obs (when not nil): reading them resets the
// kernel's, so nobody else may.
func watchDrops(live *ring.Live, log *slog.Logger, done <-chan struct{}, obs *Observer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ifs := live.Interfaces()
	prev := live.Stats()
	if obs != nil {
		obs.setKernel(prev)
	}
	drops := make([]episode, len(ifs))
	errs := make([]episode, len(ifs))
	links := make([]linkState, len(ifs))
	for {
		var now time.Time
		select {
		case <-done:
			return
		case now = <-tick.C:
		}
		cur := live.Stats()
		if obs != nil {
			obs.setKernel(cur) // a copy: Stats returns a new slice
		}
		for i := range cur {
			name := ifs[i].Name
			pk := cur[i].Packets - prev[i].Packets
			e := &drops[i]
			switch e.update(now, cur[i].Drops-prev[i].Drops, pk) {
			case episodeStarted:
				log.Warn("kernel DROPPING packets: the ring is full, the workers fall behind; analysis of the affected flows is incomplete",
					"interface", name, "dropped", e.n, "packets", e.pk, "in_s", 1)
			case episodeGoesOn:
				dn, dp, in := e.said()
				log.Warn("kernel still DROPPING packets", "interface", name, "dropped", dn, "packets", dp, "in_s", in.Seconds(), "since", e.start.Format(time.RFC3339))
			case episodeEnded:
				log.Warn("kernel drops stopped", "interface", name, "dropped", e.n, "packets", e.pk, "lasted_s", e.lasted().Seconds())
			}
			nerr := cur[i].Errors - prev[i].Errors
			if up, known := live.LinkUp(i); known {
				// The link's lines tell of its ENETDOWN errors.
				nerr -= links[i].update(log, name, now, up, cur[i].NetDown-prev[i].NetDown)
			}
			e = &errs[i]
			switch e.update(now, nerr, pk) {
			case episodeStarted:
				log.Warn("capture socket errors (link down?)", "interface", name, "errors", e.n)
			case episodeGoesOn:
				dn, _, in := e.said()
				log.Warn("capture socket errors go on", "interface", name, "errors", dn, "in_s", in.Seconds(), "since", e.start.Format(time.RFC3339))
			case episodeEnded:
				log.Info("capture socket errors stopped", "interface", name, "errors", e.n, "lasted_s", e.lasted().Seconds())
			}
		}
		prev = cur
	}
}

// linkState follows whether an interface is up, so that the log says
// when capture on it stops and when it resumes. The kernel keeps the
// capture sockets while the link is down (each gets one ENETDOWN error
// when it goes down) and feeds them again once it is up.
type linkState struct {
	down  bool
	since time.Time
}

// update takes the link's state read at now and the ENETDOWN errors of
// the last second, logs a change, and returns the errors it told of.
func (s *linkState) update(log *slog.Logger, name string, now time.Time, up bool, downs uint64) uint64 {
	switch {
	case !up && !s.down:
		s.down, s.since = true, now
		log.Warn("interface DOWN: nothing is captured on it until it is up again", "interface", name)
	case up && s.down:
		s.down = false
		log.Info("interface up again: capture resumed", "interface", name, "down_s", now.Sub(s.since).Round(time.Second).Seconds())
	case up && downs > 0:
		// Down and up again between two looks: only the errors tell.
		log.Warn("interface went down and came back up within a second: capture resumed; what it carried meanwhile was not captured", "interface", name)
	}
	return downs
}

// An episode is a run of seconds in which something bad (drops, socket
// errors) happened on an interface, told in a few lines rather than one
// a second: one when it starts, a reminder every episodeRemind while it
// goes on, and one with its totals once episodeQuiet passed without.
type episode struct {
	on                bool
	start, last, told time.Time
	n, pk             uint64 // since it started: the bad ones, all packets
	nTold, pkTold     uint64 // n and pk at the last line
	sinceTold         time.Duration
}

const (
	episodeRemind = time.Minute
	episodeQuiet  = 10 * time.Second
)

type episodeChange int

const (
	episodeNone episodeChange = iota
	episodeStarted
	episodeGoesOn
	episodeEnded
)

// update takes one second's counts, n bad of pk packets, read at now.
func (e *episode) update(now time.Time, n, pk uint64) episodeChange {
	if !e.on {
		if n == 0 {
			return episodeNone
		}
		*e = episode{on: true, start: now.Add(-time.Second), last: now, told: now, n: n, pk: pk, nTold: n, pkTold: pk}
		return episodeStarted
	}
	e.pk += pk
	if n > 0 {
		e.n += n
		e.last = now
		if now.Sub(e.told) >= episodeRemind {
			e.sinceTold = now.Sub(e.told)
			e.told = now
			return episodeGoesOn
		}
		return episodeNone
	}
	if now.Sub(e.last) >= episodeQuiet {
		e.on = false
		return episodeEnded
	}
	return episodeNone
}

// said returns the counts since the previous line, and marks them told.
func (e *episode) said() (n, pk uint64, in time.Duration) {
	n, pk, in = e.n-e.nTold, e.pk-e.pkTold, e.sinceTold
	e.nTold, e.pkTold = e.n, e.pk
	return n, pk, in
}

// lasted is the time from the first bad second to the last.
func (e *episode) lasted() time.Duration { return e.last.Sub(e.start) }

// fanoutHash is replay's software PACKET_FANOUT_HASH: a seeded hash of a
// frame's two endpoints (address and port) that does not depend on their
// order, so both directions of a connection reach the same worker. It
// runs on the single reader goroutine, which owns p. It reads the frame
// only down to the ports (decode.Endpoints): decoding it whole and hashing
// its flow key took the reader 63 ns a packet, half a worker's work, on
// the CPU a second worker needs. BenchmarkFanoutHash: 17 ns a frame (24
// with five murmur mixes instead of two products per endpoint and one mix).
func fanoutHash(seed uint64) ring.HashFunc {
	var p decode.Packet
	k1, k2 := mix64(seed)|1, mix64(^seed)|1
	return func(frame []byte, link ring.LinkType) (uint64, bool) {
		if decode.Endpoints(frame, int(link), &p) != decode.OK {
			return 0, false
		}
		// The sum is the same both ways; one mix of it moves every bit.
		return mix64(endpointHash(&p.Src, p.SrcPort, seed, k1, k2) + endpointHash(&p.Dst, p.DstPort, seed, k1, k2)), true
	}
}

// endpointHash spreads an address and port with seed: odd multipliers
// are one-to-one, and the two products do not wait for each other.
func endpointHash(a *[16]byte, port uint16, seed, k1, k2 uint64) uint64 {
	return (binary.LittleEndian.Uint64(a[:8])^seed)*k1 + (binary.LittleEndian.Uint64(a[8:])+uint64(port))*k2
}

// setRole labels the calling goroutine, and those it starts, in CPU
// profiles (pprof -tags role): the benchmark splits a replay's CPU by
// goroutine with it. A label costs nothing while no profile is taken.
func setRole(role string) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("role", role)))
}

// mix64 is the murmur3 finalizer: every input bit moves every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	return x ^ x>>33
}

// publisher runs the Correlator over every worker's batches and writes
// its events as JSON lines. Each worker has a few batches that travel to
// the publisher and back; in replay a worker waits for a free one (a
// recording can wait), so nothing is lost.
type publisher struct {
	in    chan *detectors.Batch
	free  []chan *detectors.Batch
	cor   *detectors.Correlator
	done  chan error
	enc   *events.Encoder
	bw    *bufio.Writer
	buf   []byte
	seq   uint64
	sink  Sink
	id    []byte
	werr  error
	abort func()
	live  publisherLive
	// reload and tuned: the settings source and the ones in force.
	reload *Reload
	tuned  *detectors.Config
}

// batchesPerWorker is how many batches each worker has in flight.
const batchesPerWorker = 8

func newPublisher(cfg Config, out io.Writer, workers int) *publisher {
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	p := &publisher{
		in:   make(chan *detectors.Batch, workers*batchesPerWorker),
		free: make([]chan *detectors.Batch, workers),
		done: make(chan error, 1),
		enc: &events.Encoder{
			Sensor:     cfg.Name,
			Version:    cfg.Version,
			Interfaces: cfg.Interfaces,
			IDPrefix:   cfg.Name + "-" + hex.EncodeToString(rnd[:]) + "-",
		},
		buf:    make([]byte, 0, 4096),
		sink:   cfg.Sink,
		id:     make([]byte, 0, 64),
		reload: cfg.Reload,
	}
	if out != nil {
		p.bw = bufio.NewWriterSize(out, 64<<10)
	}
	for i := range p.free {
		p.free[i] = make(chan *detectors.Batch, batchesPerWorker)
		for range batchesPerWorker - 1 { // the worker's Out holds one
			p.free[i] <- detectors.NewBatch()
		}
	}
	p.cor = detectors.NewCorrelator(cfg.Detectors, workers, p.write)
	for _, a := range p.cor.Arrays() {
		ring.CollapseHugePages(a) // touched already: see Correlator.Arrays
	}
	stop := make(chan struct{})
	var once sync.Once
	p.abort = func() { once.Do(func() { close(stop) }) }
	go func() {
		setRole("correlator and publisher")
		for !p.cor.Done() {
			var b *detectors.Batch
			select {
			case b = <-p.in:
			case <-stop:
				p.done <- nil
				return
			}
			if c := p.reload.load(); c != p.tuned {
				p.tuned = c
				p.cor.SetConfig(*c)
			}
			p.cor.Add(b)
			p.live.publish(p.cor)
			if len(p.in) == 0 && p.bw != nil {
				// Nothing else waiting: let a live reader see the events
				// now rather than when 64 KiB have gathered.
				if err := p.bw.Flush(); err != nil && p.werr == nil {
					p.werr = fmt.Errorf("writing events: %w", err)
				}
			}
			b.Events, b.Facts, b.Final = b.Events[:0], b.Facts[:0], false
			if b.Worker >= 0 && b.Worker < len(p.free) {
				select {
				case p.free[b.Worker] <- b:
				default:
				}
			}
		}
		p.cor.Finish()
		p.live.publish(p.cor)
		if p.bw != nil {
			if err := p.bw.Flush(); err != nil && p.werr == nil {
				p.werr = fmt.Errorf("writing events: %w", err)
			}
		}
		p.done <- p.werr
	}()
	return p
}

// sender is worker w's detectors.Out send function.
func (p *publisher) sender(w int) func(*detectors.Batch) *detectors.Batch {
	return func(b *detectors.Batch) *detectors.Batch {
		if b != nil {
			final := b.Final // b is the publisher's once sent
			p.in <- b
			if final {
				return nil
			}
		}
		return <-p.free[w]
	}
}

// write encodes one event of the Correlator.
func (p *publisher) write(e *detectors.Event) {
	p.seq++
	p.buf = p.enc.AppendJSON(p.buf[:0], e, p.seq)
	if p.sink != nil {
		p.id = p.enc.AppendID(p.id[:0], p.seq)
		p.sink.Publish(e.Type.String(), p.id, p.buf)
	}
	if p.bw != nil && p.werr == nil {
		p.buf = append(p.buf, '\n')
		if _, err := p.bw.Write(p.buf); err != nil {
			p.werr = fmt.Errorf("writing events: %w", err)
		}
	}
}

// wait waits for the publisher to finish after every worker ended.
func (p *publisher) wait() error { return <-p.done }

// mapMemory measures the workers' and the Correlator's arrays, summed by
// name over the workers, in the order first named.
func (p *pipeline) mapMemory() []MemoryRegion {
	var out []MemoryRegion
	add := func(name string, a any) {
		size, res, ok := ring.Resident(a)
		if !ok {
			return
		}
		for i := range out {
			if out[i].Name == name {
				out[i].Bytes += size
				out[i].Resident += res
				return
			}
		}
		out = append(out, MemoryRegion{Name: name, Bytes: size, Resident: res})
	}
	for _, w := range p.workers {
		w.flows.MemoryRegions(add)
		w.det.MemoryRegions(add)
	}
	p.pub.cor.MemoryRegions(add)
	return out
}
