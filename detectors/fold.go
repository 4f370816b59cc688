package detectors

// foldKey is what repeats are folded by: (type, client ip, server ip,
// server port). Aggregate events have no client; ts_regression is per
// (source, destination) pair.
type foldKey struct {
	t      Type
	family uint8
	port   uint16
	client [16]byte
	server [16]byte
}

func (k foldKey) sum(seed uint64) uint64 {
	h := mix(seed, uint64(k.t)<<24|uint64(k.family)<<16|uint64(k.port))
	return mix16(mix16(h, &k.client), &k.server)
}

// fold is one open window: the event that opened it went out at once;
// repeats until `until` are counted into one report.
type fold struct {
	until      int64
	gen        uint64
	n          uint32
	first      Event // the first repeat
	start, end int64
	sev        Severity
}

type foldRef struct {
	until int64
	gen   uint64
	key   foldKey
}

// less orders open windows by their end, then by age.
func (a foldRef) less(b *foldRef) bool {
	if a.until != b.until {
		return a.until < b.until
	}
	return a.gen < b.gen
}

func (c *Correlator) foldWindow(t Type) int64 {
	if t == TypeTSRegression {
		return int64(c.cfg.TSFold)
	}
	return int64(c.cfg.Fold)
}

// fold sends e out when it opens a window, else counts it into the
// window's report. A disabled type stops here, after the aggregates it
// feeds.
func (c *Correlator) fold(e *Event) {
	if c.cfg.Disabled[e.Type] {
		c.Suppressed[e.Type]++
		return
	}
	k := foldKey{t: e.Type, family: e.Family, server: e.Server.Addr}
	switch e.Type {
	case TypeFailedConnectionRate, TypeRstStorm:
		k.port = e.Server.Port
	case TypeTSRegression:
		k.client = e.Client.Addr
	default:
		k.client = e.Client.Addr
		k.port = e.Server.Port
	}
	f, created := c.folds.get(k, e.At)
	if created {
		c.gen++
		f.until, f.gen = e.At+c.foldWindow(e.Type), c.gen
		c.foldQ.push(foldRef{until: f.until, gen: f.gen, key: k})
		if len(c.foldQ) > foldQMax {
			c.compactFoldQ()
		}
		c.out(e)
		return
	}
	if f.n == 0 {
		f.first = *e
		f.start, f.end, f.sev = e.Start, e.End, e.Severity
	}
	f.n++
	f.end = max(f.end, e.End)
	f.sev = max(f.sev, e.Severity)
	c.Folded[e.Type]++
}

// foldQMax bounds the queue of fold window ends. A window that gives way
// to another in the folds table (reported then) leaves its entry in the
// queue until its end; a flood from many clients, a key per SYN, would
// pile up a Fold's worth of them (6 million in a minute at 100,000 SYNs a
// second). Past foldQMax the queue keeps only the live windows, at most
// the table's size, so a compaction drops at least three quarters of it
// and costs O(1) a window in all.
const foldQMax = 4 * FoldTableSize

// compactFoldQ drops the entries of windows that gave way, in place.
func (c *Correlator) compactFoldQ() {
	q := c.foldQ[:0]
	for _, r := range c.foldQ {
		if f := c.folds.lookup(r.key); f != nil && f.gen == r.gen {
			q = append(q, r)
		}
	}
	c.foldQ = q
	c.foldQ.init()
}

// expireFolds closes the windows that ended by now.
func (c *Correlator) expireFolds(now int64) {
	for len(c.foldQ) > 0 && c.foldQ[0].until <= now {
		c.expire(c.foldQ.pop())
	}
}

func (c *Correlator) expire(r foldRef) {
	f := c.folds.lookup(r.key)
	if f == nil || f.gen != r.gen {
		return // gave way to another key, and was reported then
	}
	c.closeFold(f)
	c.folds.remove(r.key)
}

// closeFold reports a window's repeats, if any.
func (c *Correlator) closeFold(f *fold) {
	if f.n == 0 {
		return
	}
	e := &c.report
	*e = f.first
	e.Count = f.n
	e.Start, e.End, e.Severity = f.start, f.end, f.sev
	e.At = f.until
	f.n = 0
	c.out(e)
}

func (c *Correlator) out(e *Event) {
	if c.cfg.Disabled[e.Type] {
		// The report of a window opened before a reload disabled the type.
		c.Suppressed[e.Type] += uint64(e.Count)
		return
	}
	// The limit's clock is the event's time, but not past the item being
	// processed: a window that gives way early reports with its end, up
	// to a Fold ahead, which would otherwise refill the bucket for time
	// still to come.
	if !c.limits[e.Type].take(min(e.At, c.clock), c.cfg.EventRate, c.cfg.EventBurst) {
		c.RateLimited[e.Type]++
		return
	}
	if s := c.cfg.Severity[e.Type]; s != 0 {
		e.Severity = s
	}
	c.Counts[e.Type]++
	c.emit(e)
}
