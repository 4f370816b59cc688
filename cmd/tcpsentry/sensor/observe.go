package sensor

import (
	"sync"
	"sync/atomic"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
	"github.com/tcpsentry/tcpsentry/ring"
)

// ReplayInterface is the interface name a replay's counters carry in a
// Snapshot: a recording has no capture interface.
const ReplayInterface = "replay"

// Observer reads the counters of a running sensor from other goroutines
// (a metrics endpoint). Set Config.Observer to one; Snapshot then returns
// the figures of the pipeline as of each worker's last batch, and, once
// it has ended, its final figures. The zero value is ready to use.
type Observer struct {
	mu     sync.Mutex
	p      *pipeline
	ifaces []string
	kernel []ring.IfaceStats // live: the last once-a-second read
}

// Snapshot is what a sensor has done so far. Counters of one worker are
// published together after each batch but read one by one, so while it
// runs two of them (packets and bytes, say) may be a batch apart; once
// the sensor has ended they are exact.
type Snapshot struct {
	// Running is false before the sensor started (then the rest is
	// empty) and after it ended.
	Running bool
	// Interfaces names the capture interfaces, ReplayInterface in a
	// replay; it indexes WorkerSnapshot.Iface and Kernel.
	Interfaces []string
	Workers    []WorkerSnapshot
	// Kernel is each interface's kernel counters as last read (once a
	// second); nil in a replay.
	Kernel []ring.IfaceStats
	Events [detectors.NumTypes]uint64 // events written, by type
	Folded [detectors.NumTypes]uint64 // repeats folded into them
	// RateLimited is the events not written because their type was over
	// its rate limit (detectors.Config.EventRate).
	RateLimited [detectors.NumTypes]uint64
	Late        uint64 // see Summary.Late
}

// WorkerSnapshot is one worker's counters.
type WorkerSnapshot struct {
	WorkerStats
	// Iface is the worker's packets and bytes by interface.
	Iface         []IfaceCount
	Flows         flowtable.Stats
	FlowsCapacity int
	// EventsLost is events and facts lost because no batch was free
	// (the publisher fell behind: the event ring was full).
	EventsLost uint64
}

// IfaceCount is packets and bytes (on the wire) seen on one interface.
type IfaceCount struct {
	Packets, Bytes uint64
}

// attach makes p the observed pipeline.
func (o *Observer) attach(p *pipeline, ifaces []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.ifaces, o.kernel = p, ifaces, nil
}

// setKernel keeps the latest kernel counters (the caller's copy).
func (o *Observer) setKernel(k []ring.IfaceStats) {
	o.mu.Lock()
	o.kernel = k
	o.mu.Unlock()
}

// Snapshot returns the counters now.
func (o *Observer) Snapshot() Snapshot {
	o.mu.Lock()
	p := o.p
	s := Snapshot{Interfaces: o.ifaces}
	if o.kernel != nil {
		s.Kernel = append([]ring.IfaceStats(nil), o.kernel...)
	}
	o.mu.Unlock()
	if p == nil {
		return s
	}
	s.Running = !p.ended.Load()
	for _, w := range p.workers {
		s.Workers = append(s.Workers, w.live.read())
	}
	p.pub.live.read(&s)
	return s
}

// workerLive is a worker's counters for readers on other goroutines. The
// worker stores them once per batch (publish), never per packet, and only
// those that changed: an atomic store is a locked instruction.
type workerLive struct {
	packets, bytes, optMalformed atomic.Uint64
	drops                        [decode.NumReasons]atomic.Uint64
	iface                        []ifaceLive
	active, peak                 atomic.Uint64
	created, evictedIdle         atomic.Uint64
	evictedFull, reused, flushed atomic.Uint64
	eventsLost                   atomic.Uint64
	capacity                     int
	// The worker's own totals at its last publish, to count a batch's
	// packets to its interface.
	lastPackets, lastBytes uint64
}

type ifaceLive struct{ packets, bytes atomic.Uint64 }

func newWorkerLive(ifaces, capacity int) *workerLive {
	return &workerLive{iface: make([]ifaceLive, max(1, ifaces)), capacity: capacity}
}

// set stores v in a unless it holds it already.
func set(a *atomic.Uint64, v uint64) {
	if a.Load() != v {
		a.Store(v)
	}
}

// publish copies w's counters after a batch from interface iface.
func (l *workerLive) publish(w *Worker, iface int) {
	st := &w.stats
	if dp := st.Packets - l.lastPackets; dp > 0 {
		if iface < 0 || iface >= len(l.iface) {
			iface = 0 // cannot happen: a source reads only its interfaces
		}
		l.iface[iface].packets.Add(dp)
		l.iface[iface].bytes.Add(st.Bytes - l.lastBytes)
		l.lastPackets, l.lastBytes = st.Packets, st.Bytes
		l.packets.Store(st.Packets)
		l.bytes.Store(st.Bytes)
	}
	set(&l.optMalformed, st.OptMalformed)
	for r := range st.Drops {
		set(&l.drops[r], st.Drops[r])
	}
	fs := w.flows.Stats()
	set(&l.active, uint64(fs.Active))
	set(&l.peak, uint64(fs.Peak))
	set(&l.created, fs.Created)
	set(&l.evictedIdle, fs.EvictedIdle)
	set(&l.evictedFull, fs.EvictedFull)
	set(&l.reused, fs.Reused)
	set(&l.flushed, fs.Flushed)
	set(&l.eventsLost, w.out.Dropped)
}

func (l *workerLive) read() WorkerSnapshot {
	s := WorkerSnapshot{FlowsCapacity: l.capacity}
	s.Packets = l.packets.Load()
	s.Bytes = l.bytes.Load()
	s.OptMalformed = l.optMalformed.Load()
	for r := range s.Drops {
		s.Drops[r] = l.drops[r].Load()
	}
	for i := range l.iface {
		s.Iface = append(s.Iface, IfaceCount{l.iface[i].packets.Load(), l.iface[i].bytes.Load()})
	}
	s.Flows = flowtable.Stats{
		Active:      int(l.active.Load()),
		Peak:        int(l.peak.Load()),
		Created:     l.created.Load(),
		EvictedIdle: l.evictedIdle.Load(),
		EvictedFull: l.evictedFull.Load(),
		Reused:      l.reused.Load(),
		Flushed:     l.flushed.Load(),
	}
	s.EventsLost = l.eventsLost.Load()
	return s
}

// publisherLive is the Correlator's counters, stored by the publisher
// after each batch it takes.
type publisherLive struct {
	events, folded, limited [detectors.NumTypes]atomic.Uint64
	late                    atomic.Uint64
}

func (l *publisherLive) publish(c *detectors.Correlator) {
	for t := range c.Counts {
		set(&l.events[t], c.Counts[t])
		set(&l.folded[t], c.Folded[t])
		set(&l.limited[t], c.RateLimited[t])
	}
	set(&l.late, c.Late)
}

func (l *publisherLive) read(s *Snapshot) {
	for t := range s.Events {
		s.Events[t] = l.events[t].Load()
		s.Folded[t] = l.folded[t].Load()
		s.RateLimited[t] = l.limited[t].Load()
	}
	s.Late = l.late.Load()
}
