package detectors

import "math"

// Correlator merges the events and facts of every worker in capture-time
// order and runs what needs more than one connection: the causes of
// syn_unanswered, ts_regression, failed_connection_rate, rst_storm and the
// folding of repeats. It is one goroutine's, off the per-packet path.
//
// Order makes results independent of the number of workers: an item is
// processed only when every worker's watermark has passed its At, in
// (At, flow id, per-worker order), so every run of a capture sees the same
// sequence whatever the fanout. At the end the items of the workers'
// flushes are processed last, in the same order among themselves.
type Correlator struct {
	cfg  Config
	emit func(*Event)

	wm    []int64 // per worker
	final []bool
	nfin  int

	items *timeQueue
	evs   slab[Event] // queued events
	facts slab[queuedFact]
	fact  Fact    // the fact being processed
	flush []qitem // flush-phase items, sorted at the end
	clock int64   // At of the last processed item
	gen   uint64  // fold windows opened
	// Scratch events (a local passed to emit would escape to the heap):
	// agg for events the Correlator makes, report for fold reports.
	agg, report Event

	servers *aggTable[endpointKey, serverState]
	clocks  *aggTable[pairKey, tsClock]
	// pairSeed keys the clocks table's pair digests (pairOf).
	pairSeed uint64
	folds    *aggTable[foldKey, fold]
	foldQ    minHeap[foldRef]
	// regressed: flows whose SYN ts_regression flagged, for the cause of
	// their syn_unanswered (which follows within seconds). Sets of
	// regressedWays by flow id, the oldest giving way: one slot per id
	// lost a flagged flow to another flagged within the same seconds
	// (4 of 100 in a generated capture with 15 a second).
	regressed [regressedSize][regressedWays]struct {
		flow uint64
		at   int64
	}

	// Counts is the events emitted, by type; Folded the repeats folded
	// into them.
	Counts [NumTypes]uint64
	Folded [NumTypes]uint64
	// Suppressed counts the occurrences of disabled types (Config.Disabled)
	// that were not emitted, folded repeats included.
	Suppressed [NumTypes]uint64
	// RateLimited counts the events not emitted because their type was
	// over its rate limit (Config.EventRate): Counts + RateLimited is
	// what Counts would be without a limit.
	RateLimited [NumTypes]uint64
	// limits are the types' token buckets.
	limits [NumTypes]bucket
	// Late counts items processed before their turn because the queue was
	// full (order, and so worker independence, is lost for them).
	Late uint64
}

const (
	regressedSize = 4096
	regressedWays = 4
	// queueMax bounds the items waiting for the watermark, which trails
	// capture time by a second and a little more (replay's reorder
	// allowance): two facts per connection (its SYN, its end), so 2^20
	// keeps order up to about 400,000 new connections a second, in at
	// most about 120 MB. Beyond it items are processed early and counted
	// (Late). 2^16 lost the order, and ts_regression findings, at
	// 100,000 connections a second.
	queueMax = 1 << 20
	// queueInit is the capacity for queued facts at start: growing it
	// while packets flow costs allocations and garbage collection.
	queueInit = 1 << 16
)

// ServerTableSize bounds the table of server ports (entries of 720
// bytes: SYN/ACK second, failure and ending windows, top peers), about
// 47 MB allocated at start. A server port is judged while its entry
// lasts: at 2^14 the benchmark's capture with a million flows (tens of
// thousands of server ports, 900 new ones a second at its start) lost a
// server's recent SYN/ACK and called a full listen queue a silent drop.
const ServerTableSize = 1 << 16

// FoldTableSize bounds the table of fold windows (entries of 416 bytes).
const FoldTableSize = 1 << 14

// ClockTableSize bounds the TCP clocks table, one entry per (source,
// destination) pair that sent a SYN with a timestamp. A pair is only
// judged while its entry lasts, and a busy link brings a new pair with
// nearly every connection: at 2^18 entries the benchmark's capture with
// a million flows (up to 100,000 new pairs a second) lost 17 of 4,000
// ts_regression findings, their reference SYNs pushed out within 3 s.
// At 33 bytes an entry it takes about 35 MB, allocated at start.
const ClockTableSize = 1 << 20

// Arrays returns the Correlator's large tables, which NewCorrelator has
// already touched (they are resident from the start): a packet reaches
// them at a random slot. The sensor has the kernel move them into huge
// pages (ring.CollapseHugePages), which spares each of those reads a page
// walk.
func (c *Correlator) Arrays() []any {
	var a []any
	a = append(a, c.servers.arrays()...)
	a = append(a, c.clocks.arrays()...)
	return append(a, c.folds.arrays()...)
}

// MemoryQueue names the Correlator's queue in MemoryRegions: items in
// transit, not state kept.
const MemoryQueue = "correlator: queued facts and events"

// MemoryRegions names the Correlator's arrays for a map of what the
// sensor's memory holds (see sensor.Config.MapMemory): the fixed tables,
// and the queue of items waiting for every worker's watermark, which
// grows with the connections that start or end within the reorder
// allowance (or all at once, in the workers' final flush).
func (c *Correlator) MemoryRegions(yield func(name string, array any)) {
	for _, a := range c.servers.arrays() {
		yield("correlator: server ports", a)
	}
	for _, a := range c.clocks.arrays() {
		yield("correlator: TCP clocks", a)
	}
	for _, a := range c.folds.arrays() {
		yield("correlator: fold windows", a)
	}
	yield("correlator: fold windows", []foldRef(c.foldQ))
	const q = MemoryQueue
	c.facts.regions(q, yield)
	c.evs.regions(q, yield)
	yield(q, c.items.ready)
	for _, ch := range c.items.chunks {
		yield(q, ch)
	}
	yield(q, c.flush)
}

// NewCorrelator returns a correlator for workers workers; emit receives
// each outgoing event (the pointer is valid for the call).
func NewCorrelator(cfg Config, workers int, emit func(*Event)) *Correlator {
	cfg.defaults()
	c := &Correlator{
		cfg:   cfg,
		emit:  emit,
		wm:    make([]int64, workers),
		final: make([]bool, workers),
	}
	for i := range c.wm {
		c.wm[i] = math.MinInt64
	}
	c.items = newTimeQueue(256)
	c.facts.reserve(queueInit)
	c.servers = newAggTable[endpointKey, serverState](ServerTableSize, nil)
	c.clocks = newAggTable[pairKey, tsClock](ClockTableSize, nil)
	c.pairSeed = randomSeed()
	c.folds = newAggTable[foldKey, fold](FoldTableSize, func(k *foldKey, f *fold) { c.closeFold(f) })
	c.foldQ = make(minHeap[foldRef], 0, foldQMax+1)
	return c
}

// SetConfig replaces the configuration for the items processed from now
// on; call it from the goroutine that calls Add. Open fold windows keep
// their end; a changed FailedWindow or RSTWindow starts its counts afresh
// (the old buckets no longer line up with the new width).
func (c *Correlator) SetConfig(cfg Config) {
	cfg.defaults()
	c.cfg = cfg
}

// queuedFact is a Fact waiting in the queue without what its qitem holds
// (At, FlowID, seq): 48 bytes, not 72. At 1M flows hundreds of thousands
// of them wait at once while connections open fastest.
type queuedFact struct {
	Kind           FactKind
	Family         uint8
	RST            bool
	NVLAN          uint8
	VLAN           [2]uint16
	TSval          uint32
	Client, Server Endpoint
}

// qitem is a queued event (ev >= 0) or fact (fact >= 0).
type qitem struct {
	at   int64
	flow uint64
	seq  uint64
	ev   int32
	fact int32
}

func (a qitem) less(b *qitem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.flow != b.flow {
		return a.flow < b.flow
	}
	return a.seq < b.seq
}

// Add takes a worker's batch (the caller may reuse it after) and
// processes every item all watermarks have passed.
func (c *Correlator) Add(b *Batch) {
	for i := range b.Events {
		e := &b.Events[i]
		q := qitem{at: e.At, flow: e.FlowID, seq: e.seq, ev: c.evs.put(e), fact: -1}
		if e.flush {
			c.flush = append(c.flush, q)
		} else {
			c.push(q)
		}
	}
	for i := range b.Facts {
		f := &b.Facts[i]
		qf := queuedFact{Kind: f.Kind, Family: f.Family, RST: f.RST, NVLAN: f.NVLAN, VLAN: f.VLAN,
			TSval: f.TSval, Client: f.Client, Server: f.Server}
		c.push(qitem{at: f.At, flow: f.FlowID, seq: f.seq, ev: -1, fact: c.facts.put(&qf)})
	}
	if b.Worker >= 0 && b.Worker < len(c.wm) {
		if b.Watermark > c.wm[b.Worker] {
			c.wm[b.Worker] = b.Watermark
		}
		if b.Final && !c.final[b.Worker] {
			c.final[b.Worker] = true
			c.nfin++
		}
	}
	c.run()
}

func (c *Correlator) push(q qitem) {
	c.items.push(q)
	if c.items.Len() > queueMax {
		c.Late++
		c.process(c.items.pop())
	}
}

// run processes the queued items below every worker's watermark.
func (c *Correlator) run() {
	wm := int64(math.MaxInt64)
	for _, w := range c.wm {
		wm = min(wm, w)
	}
	for c.items.Len() > 0 && (c.items.min().at < wm || c.nfin == len(c.wm)) {
		c.process(c.items.pop())
	}
	// Every item before wm is done and every later one is at or after it:
	// fold windows that closed before wm report now, on a quiet link too,
	// in the same place in the output as if an item had come.
	if wm > math.MinInt64 && wm < math.MaxInt64 {
		c.clock = max(c.clock, wm-1)
		for len(c.foldQ) > 0 && c.foldQ[0].until < wm {
			c.expire(c.foldQ.pop())
		}
	}
}

// Done reports whether every worker sent its final batch.
func (c *Correlator) Done() bool { return c.nfin == len(c.wm) }

// Finish processes what is left — the workers' flushes last, in order —
// and closes every fold window. Call it once all workers are final.
func (c *Correlator) Finish() {
	for c.items.Len() > 0 {
		c.process(c.items.pop())
	}
	var fl minHeap[qitem]
	for _, q := range c.flush {
		fl.push(q)
	}
	for len(fl) > 0 {
		c.process(fl.pop())
	}
	c.flush = c.flush[:0]
	for len(c.foldQ) > 0 {
		c.expire(c.foldQ.pop())
	}
}

func (c *Correlator) process(q qitem) {
	if q.at > c.clock {
		c.clock = q.at
	}
	c.expireFolds(c.clock)
	if q.ev >= 0 {
		c.event(c.evs.at(q.ev))
		c.evs.release(q.ev)
		return
	}
	qf, f := c.facts.at(q.fact), &c.fact
	*f = Fact{At: q.at, FlowID: q.flow, seq: q.seq, Kind: qf.Kind, Family: qf.Family, RST: qf.RST,
		NVLAN: qf.NVLAN, VLAN: qf.VLAN, TSval: qf.TSval, Client: qf.Client, Server: qf.Server}
	switch f.Kind {
	case FactSYN:
		c.synFact(f)
	case FactSynAck:
		st, _ := c.servers.get(endpointOf(f.Family, f.Server), f.At)
		if sec := f.At / 1e9; sec > st.synAckSec {
			st.synAckSec = sec
		}
	case FactEnd:
		c.endFact(f)
	}
	c.facts.release(q.fact)
}

// event finishes a per-connection event: the causes that need other
// connections, the aggregates it feeds, then folding.
func (c *Correlator) event(e *Event) {
	switch e.Type {
	case TypeSynUnanswered:
		st, _ := c.servers.get(endpointOf(e.Family, e.Server), e.At)
		switch {
		case c.wasRegressed(e.FlowID):
			e.Cause = CausePAWSNATTimestamps
			e.Severity = SeverityCritical
		case st.synAckSec > e.Start/1e9 && st.synAckSec <= e.At/1e9:
			// The server answered other SYNs to this port in a later
			// second than this SYN's: it is up, and drops this one.
			e.Cause = CauseListenQueueOverflow
		}
		c.fold(e)
		c.failure(e, st)
	case TypeRequestUnanswered:
		// A server that fell silent on this connection but answered SYNs
		// to the same port meanwhile is up: it discards the request (a
		// full accept queue after a SYN cookie, a crashed application).
		if e.Cause == CausePathBlackhole {
			if st := c.servers.lookup(endpointOf(e.Family, e.Server)); st != nil &&
				st.synAckSec > e.Start/1e9 && st.synAckSec <= e.At/1e9 {
				e.Cause = CauseServerDiscarding
			}
		}
		c.fold(e)
	case TypeConnectionRefused:
		st, _ := c.servers.get(endpointOf(e.Family, e.Server), e.At)
		c.fold(e)
		c.failure(e, st)
	default:
		c.fold(e)
	}
}

// endpointKey names a host:port (the port 0 for a host).
type endpointKey struct {
	family uint8
	port   uint16
	addr   [16]byte
}

func (k endpointKey) sum(seed uint64) uint64 {
	return mix16(mix(seed, uint64(k.family)<<16|uint64(k.port)), &k.addr)
}

func endpointOf(family uint8, ep Endpoint) endpointKey {
	return endpointKey{family: family, port: ep.Port, addr: ep.Addr}
}
