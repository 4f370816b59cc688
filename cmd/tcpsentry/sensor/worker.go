package sensor

import (
	"errors"
	"io"
	"reflect"
	"slices"
	"time"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
	"github.com/tcpsentry/tcpsentry/ring"
)

// WorkerStats counts what one worker saw. The worker owns it; read it
// after the worker stopped.
type WorkerStats struct {
	Packets      uint64
	Bytes        uint64 // on the wire
	Drops        [decode.NumReasons]uint64
	OptMalformed uint64 // segments with a malformed TCP option (still tracked)
	// LastTS is the capture time of the last frame processed (0: none).
	LastTS int64
}

// Worker is one hot loop: it owns its source, flow table, detectors and
// event buffer; nothing on its per-packet path locks, allocates or reads
// the clock.
type Worker struct {
	src   ring.Source
	batch *ring.Batch
	// The groups of packets in the pipeline of Process, decoded and
	// probed ahead of tracking.
	groups [stages]pktGroup
	flows  *flowtable.Table
	det    *detectors.Set
	out    *detectors.Out
	stats  WorkerStats
	// live is stats and the table's counters for other goroutines,
	// copied by run once per batch, never by Process.
	live *workerLive
	// reorder is how far before the clock a packet's timestamp may be.
	reorder int64
	// endClock returns the capture time the whole input reached, read
	// once the source ended, so every worker ends at the same time; 0
	// when the input was cut short (each worker ends at its own clock).
	endClock func() int64
	// reload and tuned: the settings source and the ones in force.
	reload *Reload
	tuned  *detectors.Config
	// ahead has the table's memory faulted in ahead of its use.
	ahead populater
	// tune picks how Process works through a batch.
	tune modeTuner
	// ab compares two ways batch by batch in a build with the abtest
	// tag (ab_on.go); otherwise it is empty and unused.
	ab abTrial
}

// populater has another goroutine fault in the Conn slab of the flow
// table before the worker first touches it (ring.PopulatePages), a chunk
// ahead of the slots in use. A new connection in a fresh slot would
// otherwise stop the worker for a page fault, and in a huge page for the
// zeroing of 2 MiB: on this VM, which hands free memory back to its host
// (page reporting), faulting in 384 MiB of fresh memory took 1.07 s in
// huge pages (0.17 s in 4 KiB pages, which cost a page walk on nearly
// every later read), and at a million flows the faults were 13% of a
// replay's time (1.45 s of 11 s). The index and the cache of ended
// connections are read at random places, so they cannot be faulted in
// ahead: they fault in as they are touched, a few dozen huge pages in all.
//
// A sensor that was up for a while has touched its table already; a
// burst of new connections then costs what it costs later. The goroutine
// faults in one huge page per call, so that the process's memory map is
// never held for long (the Go runtime needs it to grow its heap), and a
// table takes at most a chunk more memory than its connections use.
type populater struct {
	req   chan [2]int // slab slots to fault in
	next  int         // first slot not asked for yet
	chunk int         // slots per request
}

// populateChunk is how much of the Conn slab one request faults in.
const populateChunk = 8 << 20

// startPopulate starts the goroutine; stopPopulate ends it.
func (w *Worker) startPopulate() {
	slabs := w.flows.SlotArrays() // the Conns first, then their links
	p := &w.ahead
	size := int(reflect.TypeFor[flowtable.Conn]().Size())
	p.chunk = max(1, populateChunk/size)
	perCall := max(1, ring.HugePageSize/size)
	p.req = make(chan [2]int, 1)
	go func(req <-chan [2]int) {
		setRole("faulting in the flow table")
		ok := true
		for r := range req {
			for lo := r[0]; ok && lo < r[1]; lo += perCall {
				ok = ring.PopulatePages(slabs[0], lo, min(lo+perCall, r[1]))
			}
			// The links' pages hold more slots each; a page across
			// two requests is left to the worker's first touch.
			for _, a := range slabs[1:] {
				if ok {
					ring.PopulatePages(a, r[0], r[1])
				}
			}
		}
	}(p.req)
	w.populateAhead()
}

func (w *Worker) stopPopulate() {
	if w.ahead.req != nil {
		close(w.ahead.req)
		w.ahead.req = nil
	}
}

// populateAhead asks for the next chunk of the slab once the slots in use
// come within half a chunk of what was asked for. It never waits.
func (w *Worker) populateAhead() {
	p := &w.ahead
	limit := w.flows.Capacity()
	if p.req == nil || p.next >= limit || w.flows.Fresh()+p.chunk/2 < p.next {
		return
	}
	end := min(p.next+p.chunk, limit)
	select {
	case p.req <- [2]int{p.next, end}:
		p.next = end
	default:
	}
}

// newWorker builds worker id; send hands its event batches on (see
// detectors.NewOut).
func newWorker(id int, src ring.Source, tcfg flowtable.Config, dcfg detectors.Config, send func(*detectors.Batch) *detectors.Batch, ended func(worker int, c *flowtable.Conn)) (*Worker, error) {
	w := &Worker{src: src, batch: ring.NewBatch(0)}
	w.out = detectors.NewOut(id, send)
	slots, err := tcfg.Slots()
	if err != nil {
		return nil, err
	}
	w.det = detectors.NewSet(dcfg, w.out, slots)
	var h flowtable.Handler = w.det
	if ended != nil {
		h = endHook{w.det, func(c *flowtable.Conn) { ended(id, c) }}
	}
	t, err := flowtable.New(tcfg, h)
	if err != nil {
		return nil, err
	}
	for _, a := range t.Arrays() {
		ring.AdviseHugePages(a) // untouched yet: see Table.Arrays
	}
	w.flows = t
	w.live = newWorkerLive(1, t.Capacity())
	return w, nil
}

// Process works on groups of group packets. With a large table it runs
// them through a software pipeline of stages groups, the way DPDK's bulk
// lookups do: while group g is decoded, the index entries of its flows
// are read ahead; those of group g-1 give the Conns to read; group g-2's
// Conns say which will move in their idle list (their links are read),
// group g-3's links give the neighbours to read; and group g-4 is
// tracked. Each read is a prefetch instruction (flowtable.Prefetch),
// which does not wait: all of a step's misses are in flight together
// while the worker goes on, and each has a group's work to arrive.
// Packets are still tracked one at a time, in order.
//
// Prefetches, not loads: with a pass of loads (one stage fewer, and the
// Conns' links read with the neighbours), the worker waited for each
// pass's slowest miss. At a million flows the prefetching pipeline took
// 270-296 ns a packet against 313-329 for loads, 3 alternating runs each
// of the read-ahead way alone.
const (
	group  = 32
	stages = 5
)

// pktGroup is one group of packets in the pipeline: frames lo to lo+n of
// the batch; ok[i] says pkts[i] is a TCP segment.
type pktGroup struct {
	lo, n  int
	pkts   [group]decode.Packet
	probes [group]flowtable.Probe
	ok     [group]bool
}

// Reading ahead pays when the flows' lines are not in the caches, which
// depends on the traffic more than on the size of the table. On the
// benchmark's standard capture (131,000 flows held, long responses)
// tracking each group as it is decoded is the faster way: 104-135 ns a
// packet against 122-152 reading ahead, 5 alternating rounds. On
// sweep-1M reading ahead is: 231-303 against 307-321, 3 rounds (with
// the loads before prefetch instructions; those only widened the gap).
// So the worker times both: at the start of every round of tuneRound
// batches it alternates them for tuneTrial batches and keeps the faster
// for the rest. Both give the same results; only speed differs. Below
// pipelineFlows flows it never reads ahead.
const (
	pipelineFlows = 1 << 13
	tuneRound     = 256
	tuneTrial     = 16
)

// modeTuner chooses between the two ways of Process (see tuneRound).
type modeTuner struct {
	batch int // batches into the round
	// rate has the trial's batches of each way, in picoseconds per packet
	// (n[way] of them).
	rate   [2][tuneTrial / 2]int64
	n      [2]int
	chosen int // the way for the rest of the round: 1 reads ahead
	// force, for tests: 1 group by group, 2 read ahead, 3 alternate
	// batch by batch; 0 tunes.
	force int
}

// way returns how to work through the next batch, and whether to time it.
func (t *modeTuner) way(tuning bool) (way int, timed bool) {
	switch {
	case t.force == 3:
		t.batch++
		return t.batch & 1, false
	case t.force > 0:
		return t.force - 1, false
	case !tuning:
		return 0, false
	case t.batch < tuneTrial:
		return t.batch & 1, true
	}
	return t.chosen, false
}

// timed records a timed batch of the trial: pkts packets in ns.
func (t *modeTuner) timed(way int, ns, pkts int64) {
	if i := t.n[way]; i < len(t.rate[way]) && pkts > 0 {
		t.rate[way][i] = ns * 1000 / pkts
		t.n[way]++
	}
}

// done counts a batch of the tuning and, after the trial, picks the way
// faster per packet, measured side by side: by the median of its
// batches, not their sum, since a batch during which the worker lost its
// CPU (the reader and the Correlator share two here) or faulted in
// memory takes many times as long and would decide alone. Summed, the
// tuner kept the slower way for 8-32% of the standard capture's
// packets.
func (t *modeTuner) done() {
	t.batch++
	if t.batch == tuneTrial {
		t.chosen = 0
		if t.n[0] > 0 && t.n[1] > 0 && median(t.rate[1][:t.n[1]]) < median(t.rate[0][:t.n[0]]) {
			t.chosen = 1
		}
		t.n = [2]int{}
	}
	if t.batch == tuneRound {
		t.batch = 0
	}
}

// median returns the median of v (the lower middle one of an even
// count), reordering v.
func median(v []int64) int64 {
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// Process runs one batch through decode, the flow table and the
// detectors. It is the whole per-packet path.
func (w *Worker) Process(b *ring.Batch) {
	if abBuild && w.ab.active() {
		w.ab.run(w, b)
	} else {
		w.process(b)
	}
	if b.N > 0 {
		w.stats.LastTS = b.TS[b.N-1]
	}
	if b.Clock > 0 {
		w.flows.Advance(b.Clock)
	}
	// Everything this worker emits from now on is due at or after this:
	// expiries not before the table's horizon, packets not more than
	// w.reorder before the clock. The watermark holds back the
	// Correlator, so it is also how late an event is published.
	w.out.Publish(w.flows.Horizon() - w.reorder)
}

// process tracks b's packets the way the tuner picks.
func (w *Worker) process(b *ring.Batch) {
	tuning := w.tune.force == 0 && b.N > 0 && w.flows.Stats().Active >= pipelineFlows
	way, timed := w.tune.way(tuning)
	var start time.Time
	if timed {
		start = time.Now()
	}
	if way == 0 {
		w.byGroup(b)
	} else {
		w.pipeline(b)
	}
	if timed {
		w.tune.timed(way, int64(time.Since(start)), int64(b.N))
	}
	if tuning {
		w.tune.done()
	}
}

// byGroup tracks each group as soon as it is decoded, while its packets
// are in the L1 cache. The group's index entries are read ahead in
// between, all of them at once: on the standard capture, whose index
// (4 MB) is larger than the L2 cache, a batch took 4.5-9.3% less time
// than without, the medians of 4,904 batches each way alternated in one
// replay, 8 replays (the abtest harness, ab_on.go, variant noindex).
func (w *Worker) byGroup(b *ring.Batch) {
	for lo := 0; lo < b.N; lo += group {
		w.decode(b, &w.groups[0], lo)
		w.queueIndex(&w.groups[0])
		w.flows.Prefetch()
		w.track(b, &w.groups[0])
	}
}

// pipeline runs b through the stages of the read-ahead pipeline (see
// group).
func (w *Worker) pipeline(b *ring.Batch) {
	ng := (b.N + group - 1) / group
	for g := 0; g < ng+stages-1; g++ {
		if g < ng {
			w.decode(b, &w.groups[g%stages], g*group)
			w.queueIndex(&w.groups[g%stages])
		}
		if k := g - 1; k >= 0 && k < ng {
			w.prefetchConns(&w.groups[k%stages])
		}
		if k := g - 2; k >= 0 && k < ng {
			w.prefetchRelinks(b, &w.groups[k%stages])
		}
		if k := g - 3; k >= 0 && k < ng {
			w.prefetchLinks(&w.groups[k%stages])
		}
		w.flows.Prefetch()
		if k := g - 4; k >= 0 && k < ng {
			w.track(b, &w.groups[k%stages])
		}
	}
}

// decode decodes the frames of b from lo on into gr and probes their
// flows.
func (w *Worker) decode(b *ring.Batch, gr *pktGroup, lo int) {
	link, iface := int(b.Link), uint8(b.Iface)
	gr.lo, gr.n = lo, min(group, b.N-lo)
	for j := range gr.n {
		i := lo + j
		p := &gr.pkts[j]
		w.stats.Packets++
		w.stats.Bytes += uint64(b.WireLen[i])
		r := decode.Parse(b.Frames[i], link, p)
		if gr.ok[j] = r == decode.OK; !gr.ok[j] {
			w.stats.Drops[r]++
			continue
		}
		if tag := b.VLAN[i]; tag != 0 {
			p.OuterVLAN(uint16(tag))
		}
		p.Iface = iface
		if p.Opts&decode.OptMalformed != 0 {
			w.stats.OptMalformed++
		}
		w.flows.Probe(p, &gr.probes[j])
	}
}

// queueIndex queues the index entries of gr's flows to be read ahead.
func (w *Worker) queueIndex(gr *pktGroup) {
	for j := range gr.n {
		if gr.ok[j] {
			w.flows.PrefetchIndex(&gr.probes[j])
		}
	}
}

// prefetchConns queues the Conns of gr's packets.
func (w *Worker) prefetchConns(gr *pktGroup) {
	for j := range gr.n {
		if gr.ok[j] {
			w.flows.PrefetchConn(&gr.probes[j])
		}
	}
}

// prefetchRelinks queues the links of gr's Conns that will move in their
// idle list.
func (w *Worker) prefetchRelinks(b *ring.Batch, gr *pktGroup) {
	for j := range gr.n {
		if gr.ok[j] {
			w.flows.PrefetchRelink(&gr.probes[j], b.TS[gr.lo+j])
		}
	}
}

// prefetchLinks queues the idle-list neighbours of those Conns.
func (w *Worker) prefetchLinks(gr *pktGroup) {
	for j := range gr.n {
		if gr.ok[j] {
			w.flows.PrefetchLinks(&gr.probes[j])
		}
	}
}

// track tracks gr's packets and runs the detectors on them, in order.
func (w *Worker) track(b *ring.Batch, gr *pktGroup) {
	for j := range gr.n {
		if !gr.ok[j] {
			continue
		}
		ts := b.TS[gr.lo+j]
		c, seg := w.flows.Track(&gr.pkts[j], &gr.probes[j], ts)
		w.det.Segment(c, &gr.pkts[j], seg, ts)
	}
}

// run processes batches until the source ends, then ends every flow as at
// the end of a capture (pending timers fire) and hands on the events.
func (w *Worker) run() error {
	var err error
	w.startPopulate()
	defer w.stopPopulate()
	for {
		if err = w.src.NextBatch(w.batch); err != nil {
			break
		}
		if c := w.reload.load(); c != w.tuned {
			w.tuned = c
			w.det.SetConfig(*c)
		}
		w.Process(w.batch)
		w.populateAhead()
		w.live.publish(w, w.batch.Iface)
	}
	w.finish()
	if abBuild {
		w.ab.report()
	}
	w.live.publish(w, 0)
	if errors.Is(err, io.EOF) || errors.Is(err, ring.ErrClosed) {
		return nil
	}
	return err
}

// finish ends the worker as at the end of the capture: first what is due
// by the input's last capture time (the same for every worker), then, as
// the flush, whatever is still open.
func (w *Worker) finish() {
	end := w.flows.Now()
	if w.endClock != nil {
		end = max(end, w.endClock())
	}
	w.flows.AdvanceExact(end)
	w.out.Flushing()
	w.flows.Flush()
	w.out.Close()
}

// endHook passes every connection's end to a function after the
// detectors saw it (Config.flowEnded).
type endHook struct {
	*detectors.Set
	f func(c *flowtable.Conn)
}

func (h endHook) Evicted(c *flowtable.Conn, why flowtable.Evict, when int64) {
	h.Set.Evicted(c, why, when)
	h.f(c)
}
