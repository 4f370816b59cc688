package detectors

import "math"

// serverState is the Correlator's view of one server:port (or, for
// rst_storm, one host:port that ends connections).
type serverState struct {
	synAckSec int64 // latest second in which it sent a SYN/ACK

	fail      window // failed attempts, by failCause index
	failAlarm bool   // a failed_connection_rate fired and the rate has not dropped since
	failFirst int64
	failTop   topK

	ends     window // [0] RST endings, [1] all endings
	rstAlarm bool
	rstFirst int64
	rstTop   topK
}

// window counts over a sliding window of windowBuckets buckets.
type window [windowBuckets]struct {
	idx int64
	n   [4]uint32
}

const windowBuckets = 10

// sum returns the counts of the buckets within the window ending in
// bucket idx.
func (w *window) sum(idx int64) (s [4]uint32) {
	for i := range w {
		if b := &w[i]; b.idx > idx-windowBuckets && b.idx <= idx {
			for j := range s {
				s[j] += b.n[j]
			}
		}
	}
	return s
}

func (w *window) add(idx int64, j int) {
	b := &w[idx%windowBuckets]
	if b.idx != idx {
		b.idx, b.n = idx, [4]uint32{}
	}
	b.n[j]++
}

// topK keeps the most frequent addresses (space-saving: a new address
// takes the place of the least counted one).
type topK struct {
	n    int
	peer [MaxTop + 1]Peer
}

func (t *topK) add(a [16]byte) {
	for i := 0; i < t.n; i++ {
		if t.peer[i].Addr == a {
			t.peer[i].Count++
			return
		}
	}
	if t.n < len(t.peer) {
		t.peer[t.n] = Peer{Addr: a, Count: 1}
		t.n++
		return
	}
	m := 0
	for i := 1; i < t.n; i++ {
		if t.peer[i].Count < t.peer[m].Count {
			m = i
		}
	}
	t.peer[m] = Peer{Addr: a, Count: t.peer[m].Count + 1}
}

// fill copies the top MaxTop into e, most first (ties: lower address).
func (t *topK) fill(e *Event) {
	p := t.peer
	for i := 1; i < t.n; i++ {
		for j := i; j > 0 && (p[j].Count > p[j-1].Count ||
			p[j].Count == p[j-1].Count && string(p[j].Addr[:]) < string(p[j-1].Addr[:])); j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
	e.NTop = uint8(min(t.n, MaxTop))
	copy(e.Top[:], p[:e.NTop])
}

// failCause indexes serverState.fail.
func failCause(c Cause) int {
	switch c {
	case CauseNoListener:
		return 0
	case CauseListenQueueOverflow:
		return 2
	case CausePAWSNATTimestamps:
		return 3
	}
	return 1 // silent_drop
}

var failCauses = [4]Cause{CauseNoListener, CauseSilentDrop, CauseListenQueueOverflow, CausePAWSNATTimestamps}

// failure counts a refused or unanswered attempt against its server:port
// and fires failed_connection_rate once per episode: when the attempts
// within FailedWindow reach FailedConnections, and again only after they
// dropped below.
func (c *Correlator) failure(e *Event, st *serverState) {
	width := int64(c.cfg.FailedWindow) / windowBuckets
	idx := e.At / width
	before := st.fail.sum(idx)
	total := before[0] + before[1] + before[2] + before[3]
	if total == 0 {
		st.failTop = topK{}
		st.failFirst = e.Start
	}
	if int(total) < c.cfg.FailedConnections {
		st.failAlarm = false
	}
	st.fail.add(idx, failCause(e.Cause))
	st.failTop.add(e.Client.Addr)
	total++
	if int(total) < c.cfg.FailedConnections || st.failAlarm {
		return
	}
	st.failAlarm = true
	now := st.fail.sum(idx)
	a := &c.agg
	*a = Event{Type: TypeFailedConnectionRate, Severity: SeverityWarning, Family: e.Family, Count: 1,
		Iface: e.Iface, NVLAN: e.NVLAN, VLAN: e.VLAN, Server: e.Server, At: e.At}
	a.Start, a.End = st.failFirst, e.At
	best := 0
	for i := range now {
		if now[i] > now[best] {
			best = i
		}
	}
	a.Cause = failCauses[best]
	st.failTop.fill(a)
	if a.NTop > 0 {
		a.Client.Addr = a.Top[0].Addr
	}
	a.AddEvidence(EvFailures, int64(total))
	a.AddEvidence(EvRefused, int64(now[0]))
	a.AddEvidence(EvUnanswered, int64(now[1]+now[2]+now[3]))
	a.AddEvidence(EvWindowS, int64(c.cfg.FailedWindow/1e9))
	a.AddEvidence(EvRatePerS, rateMilli(int64(total), a.Start, a.End, int64(c.cfg.FailedWindow)))
	c.fold(a)
}

// rateMilli is n events between start and end per second, in
// thousandths: (n-1) intervals over the span, or n over the window when
// the span is too short to measure.
func rateMilli(n, start, end, window int64) int64 {
	if end-start >= int64(1e8) && n > 1 {
		return (n - 1) * 1e12 / (end - start)
	}
	return n * 1e12 / window
}

// endFact counts a connection's ending against its server:port and fires
// rst_storm when the server ended RSTEndings of them with a RST within
// RSTWindow and those are at least RSTShare percent of its endings.
func (c *Correlator) endFact(f *Fact) {
	st, _ := c.servers.get(endpointOf(f.Family, f.Server), f.At)
	width := int64(c.cfg.RSTWindow) / windowBuckets
	idx := f.At / width
	before := st.ends.sum(idx)
	if before[0] == 0 {
		st.rstTop = topK{}
		st.rstFirst = f.At
	}
	if int(before[0]) < c.cfg.RSTEndings {
		st.rstAlarm = false
	}
	st.ends.add(idx, 1)
	if !f.RST {
		return
	}
	st.ends.add(idx, 0)
	st.rstTop.add(f.Client.Addr)
	now := st.ends.sum(idx)
	rst, all := int(now[0]), int(now[1])
	if rst < c.cfg.RSTEndings || rst*100 < c.cfg.RSTShare*all || st.rstAlarm {
		return
	}
	st.rstAlarm = true
	a := &c.agg
	*a = Event{Type: TypeRstStorm, Cause: CauseRstStorm, Severity: SeverityWarning, Family: f.Family, Count: 1,
		NVLAN: f.NVLAN, VLAN: f.VLAN, Server: f.Server, At: f.At}
	a.Start, a.End = st.rstFirst, f.At
	st.rstTop.fill(a)
	if a.NTop > 0 {
		a.Client.Addr = a.Top[0].Addr
	}
	a.AddEvidence(EvRstEndings, int64(rst))
	a.AddEvidence(EvEndings, int64(all))
	a.AddEvidence(EvRstSharePct, int64(rst*100/all))
	a.AddEvidence(EvWindowS, int64(c.cfg.RSTWindow/1e9))
	a.AddEvidence(EvRatePerS, rateMilli(int64(rst), a.Start, a.End, int64(c.cfg.RSTWindow)))
	c.fold(a)
}

// pairKey names a (source, destination) address pair by a seeded 64-bit
// digest of the pair rather than the 33 bytes of it: the clocks table
// then takes 33 bytes an entry (key, clock, tag and last use) instead of
// 81, so it holds four times the pairs in about the same memory. Two
// pairs share a digest with odds of about one in 2^44 per SYN at a
// million entries, and the seed keeps anyone from choosing such pairs.
type pairKey uint64

func (k pairKey) sum(seed uint64) uint64 { return mix(seed, uint64(k)) }

// pairOf returns the key of family's pair src→dst under seed.
func pairOf(seed uint64, family uint8, src, dst *[16]byte) pairKey {
	return pairKey(mix16(mix16(mix(seed, uint64(family)), src), dst))
}

// tsClock is what the SYNs from one source to one destination show of
// the source's TCP timestamp clock.
type tsClock struct {
	refAt  int64  // capture time of the reference SYN
	refVal uint32 // its TSval
	hz     uint32 // the clock's rate in ticks/s, from tsRates; 0 until known
}

// tsRates are the TCP timestamp clock rates seen in the wild (ticks/s):
// Linux before 4.10 ran at HZ (100, 250, 300 or 1000), the BSDs and many
// appliances at 1000, some at 1 or 10.
var tsRates = [...]uint32{1, 10, 100, 250, 300, 1000}

// tsClockMaxAge: a reference older than this predicts nothing.
const tsClockMaxAge = int64(3600e9)

// synFact runs ts_regression on a client's first SYN with a timestamp.
func (c *Correlator) synFact(f *Fact) {
	ck, created := c.clocks.get(pairOf(c.pairSeed, f.Family, &f.Client.Addr, &f.Server.Addr), f.At)
	if created || f.At-ck.refAt > tsClockMaxAge || f.At < ck.refAt {
		*ck = tsClock{refAt: f.At, refVal: f.TSval}
		return
	}
	dt := float64(f.At-ck.refAt) / 1e9
	dv := float64(int32(f.TSval - ck.refVal))
	if ck.hz == 0 {
		// Clocked once two successive SYNs advance the TSval at a
		// plausible rate.
		if dt > 0 && dv > 0 {
			r := dv / dt
			for _, hz := range tsRates {
				if f := float64(hz); r >= f*0.8 && r <= f*1.2 {
					ck.hz = hz
					break
				}
			}
		}
		ck.refAt, ck.refVal = f.At, f.TSval
		return
	}
	hz := float64(ck.hz)
	predicted := float64(ck.refVal) + hz*dt
	slack := 0.2*hz*dt + hz/2 + 2
	off := float64(int32(f.TSval - uint32(int64(predicted)&math.MaxUint32)))
	if off >= -slack {
		// On this clock, or a clock ahead of it (which becomes the
		// reference, as the server's per-peer memory would).
		ck.refAt, ck.refVal = f.At, f.TSval
		return
	}
	set := &c.regressed[f.FlowID%regressedSize]
	w := 0
	for i := range set {
		if set[i].flow == f.FlowID || set[i].at < set[w].at {
			w = i
			if set[i].flow == f.FlowID {
				break
			}
		}
	}
	set[w].flow, set[w].at = f.FlowID, f.At
	e := &c.agg
	*e = Event{Type: TypeTSRegression, Cause: CauseNATTimestamps, Severity: SeverityNotice, Family: f.Family,
		Count: 1, NVLAN: f.NVLAN, VLAN: f.VLAN, Client: f.Client, Server: f.Server, FlowID: f.FlowID, At: f.At}
	e.Start, e.End = f.At, f.At
	e.AddEvidence(EvTSval, int64(f.TSval))
	e.AddEvidence(EvPredictedTSval, int64(uint32(int64(predicted)&math.MaxUint32)))
	e.AddEvidence(EvRegressionTicks, int64(-off))
	e.AddEvidence(EvClockHz, int64(ck.hz))
	c.fold(e)
}

func (c *Correlator) wasRegressed(flow uint64) bool {
	if flow == 0 {
		return false
	}
	for _, r := range c.regressed[flow%regressedSize] {
		if r.flow == flow {
			return true
		}
	}
	return false
}
