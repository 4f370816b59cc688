// Package flowtable owns per-worker connection state: canonical flow keys,
// a preallocated open-addressing table of Conns, TCP tracking per segment,
// idle eviction on packet time and the handshake timer. One Table belongs
// to one worker and is not safe for concurrent use. It never reads the
// clock: time is the capture time of the packets it is given.
package flowtable

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Config sizes a Table and sets its timers. The zero value of a field
// means its default.
type Config struct {
	// Capacity is the number of connections the table holds (default
	// 65536, at most MaxCapacity). All memory is allocated by New: per
	// connection a 192-byte Conn, 16 bytes of list links, 16 to 32 bytes
	// of index and 4 of the cache of ended connections, about 240 bytes
	// in all.
	Capacity int
	// Seed keys the flow hash; 0 draws a random one. Share one random seed
	// per process so an attacker cannot craft colliding keys.
	Seed uint64
	// HalfOpen, Established and Closed are idle timeouts for connections
	// in the handshake, established, and after a FIN or RST (defaults
	// 30 s, 5 min, 10 s).
	HalfOpen, Established, Closed time.Duration
	// Handshake is how long a SYN may wait for an answer before the
	// handler's HandshakeTimeout is called (default 3 s).
	Handshake time.Duration
	// MaxHalfOpen is the share of a full table that connections in the
	// handshake (a SYN or SYN/ACK seen, no handshake completed) may hold
	// (default Capacity/2, at most Capacity). When the table is full, a
	// new connection takes the place of the connection idle longest; but
	// while MaxHalfOpen or more of the connections are half-open, it
	// takes the place of the half-open one idle longest instead. A SYN
	// flood from random sources, each SYN a new connection, then churns
	// through its own share of the table and leaves the established
	// connections in place, however fast it comes. Below the share (any
	// ordinary traffic) the table is plain least recently used.
	MaxHalfOpen int
}

// MaxCapacity is the largest Config.Capacity: slot numbers take the low
// 27 bits of an index entry.
const MaxCapacity = 1<<slotBits - 2

// Defaults.
const (
	DefaultCapacity    = 1 << 16
	DefaultHalfOpen    = 30 * time.Second
	DefaultEstablished = 5 * time.Minute
	DefaultClosed      = 10 * time.Second
	DefaultHandshake   = 3 * time.Second
)

// relinkGranularity bounds how often a busy connection is moved to the
// tail of its idle list: at most once per second of packet time, so the
// per-packet cost is a compare, and eviction is at most this late.
const relinkGranularity = int64(time.Second)

// Evict says why a connection left the table.
type Evict uint8

const (
	EvictIdle   Evict = iota // idle longer than its timeout
	EvictFull                // the oldest connection, to make room
	EvictReused              // a new SYN took over the 4-tuple
	EvictFlush               // end of capture: Flush
)

func (e Evict) String() string {
	return [...]string{"idle", "full", "reused", "flush"}[e]
}

// Handler is told about timer expiries and evictions. It runs inside
// Packet, Advance and Flush; c is valid only for the call.
type Handler interface {
	// HandshakeTimeout: c's SYN has had no SYN/ACK or RST for
	// Config.Handshake (at is the deadline), or c is leaving the table
	// with its timer pending (at is c's last packet). Both are capture
	// times of c's own, so the result does not depend on other flows.
	// when is the time the expiry is due, as for Evicted.
	HandshakeTimeout(c *Conn, at, when int64)
	// Evicted: c is about to leave the table (its slot is reused after).
	// when is the capture time this is due, computed from c alone
	// wherever possible so that it does not depend on which other flows
	// share the table: the idle deadline (c's last packet + timeout) for
	// EvictIdle, the taking packet's time for EvictReused, c's last packet
	// for EvictFlush, and the table clock for EvictFull. It is never more
	// than WhenSlack before the table clock of any earlier call.
	Evicted(c *Conn, why Evict, when int64)
	// Previous: c's 4-tuple had a connection before c, which p describes.
	// The table tells it once per connection: at the SYN that replaced
	// the old connection in the table, or else at the server's bare ACK
	// to c's SYN (SegAckToSYN) when its memory of ended connections still
	// held the old one. The Conn has no room for it: what needs it keeps
	// it.
	Previous(c *Conn, p Prev)
}

// WhenSlack bounds how late the table reports an expiry: an idle
// connection may leave up to one relink period after its deadline.
const WhenSlack = relinkGranularity

// Stats counts what a table did; read it from the owning worker.
type Stats struct {
	Active      int    // connections in the table now
	Created     uint64 // connections created (including reuse of a 4-tuple)
	EvictedIdle uint64
	EvictedFull uint64
	Reused      uint64 // a new SYN replaced a finished or stale connection
	Flushed     uint64
	// Peak is the most connections the table held at once: the slots
	// ever used, since a freed slot is taken again before a fresh one.
	Peak int
}

// idle classes, each a list ordered by link time.
const (
	classHalfOpen = iota
	classEstablished
	classClosed
	numClasses
)

type list struct{ head, tail uint32 } // slab index + 1; 0 = none

// links are a slot's places in its idle list and in the handshake timer
// list (slab index + 1; 0 = none), and the free list's through next. They
// are kept beside the slab, not in the Conn: four slots' links share a
// cache line, and the Conn keeps its room for what the detectors read.
type links struct {
	prev, next   uint32
	tprev, tnext uint32
}

const slotBits = 27
const slotMask = 1<<slotBits - 1

// Table is a per-worker connection table: a slab of Conns (fixed at New)
// and an open-addressing index of (hash, slot) entries with linear
// probing and backward-shift deletion, so there are no tombstones and
// probe sequences stay short under churn.
type Table struct {
	conns []Conn
	links []links  // by slab index, beside conns
	index []uint64 // hash bits above slotBits | slot+1; 0 = empty
	mask  uint64
	free  uint32 // free list through links.next (slab index + 1)
	// fresh counts slots ever used: slots above it have never been
	// touched, so a large table costs resident memory only as it fills.
	fresh   uint32
	h       Handler
	hasher  Hasher
	now     int64
	nextDue int64
	timeout [numClasses]int64
	hshake  int64
	lists   [numClasses]list
	// inClass counts the connections in each idle list; maxHalfOpen is
	// Config.MaxHalfOpen.
	inClass     [numClasses]int
	maxHalfOpen int
	timers      list
	stats       Stats
	// recent remembers connections that ended and left the table, by key
	// hash, so that a new SYN on their 4-tuple still learns of them
	// (TIME_WAIT lasts 60 s, a closed connection stays 10 s): lossy, as
	// a cache, and fixed in size. Sets of recentWays entries: a new end
	// takes the place of the set's oldest, so the memory holds the latest
	// ends, not a random part of them (see recentWays).
	recent []recentConn
	ahead  aheadQueue
}

// ErrCapacity is returned by New for a capacity out of range.
var ErrCapacity = errors.New("flowtable: capacity out of range")

// New allocates a table for cfg.Capacity connections; h receives timer
// expiries and evictions and must not be nil.
func New(cfg Config, h Handler) (*Table, error) {
	var err error
	if cfg.Capacity, err = cfg.Slots(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = RandomSeed()
	}
	def := func(d, v time.Duration) int64 {
		if d <= 0 {
			return int64(v)
		}
		return int64(d)
	}
	n := 2
	for n < 2*cfg.Capacity { // load factor <= 1/2
		n <<= 1
	}
	t := &Table{
		conns:  make([]Conn, cfg.Capacity),
		links:  make([]links, cfg.Capacity),
		index:  make([]uint64, n),
		mask:   uint64(n - 1),
		h:      h,
		hasher: Hasher{seed: cfg.Seed},
		hshake: def(cfg.Handshake, DefaultHandshake),
	}
	t.timeout[classHalfOpen] = def(cfg.HalfOpen, DefaultHalfOpen)
	t.timeout[classEstablished] = def(cfg.Established, DefaultEstablished)
	t.timeout[classClosed] = def(cfg.Closed, DefaultClosed)
	t.maxHalfOpen = min(cfg.MaxHalfOpen, cfg.Capacity)
	if t.maxHalfOpen <= 0 {
		t.maxHalfOpen = max(1, cfg.Capacity/2)
	}
	t.nextDue = 1<<63 - 1
	r := 256
	for r < cfg.Capacity/8 && r < 1<<20 {
		r <<= 1
	}
	t.recent = make([]recentConn, r)
	return t, nil
}

// Slots returns the number of connections a table built from cfg holds:
// Capacity, or its default.
func (cfg Config) Slots() (int, error) {
	if cfg.Capacity == 0 {
		return DefaultCapacity, nil
	}
	if cfg.Capacity < 1 || cfg.Capacity > MaxCapacity {
		return 0, fmt.Errorf("%w: %d (1..%d)", ErrCapacity, cfg.Capacity, MaxCapacity)
	}
	return cfg.Capacity, nil
}

// Arrays returns the table's large arrays, which New leaves untouched:
// every packet reads a random index slot and a random Conn, and a new
// connection a random entry of the ended ones. The sensor has the kernel
// back them with huge pages before the first packet
// (ring.AdviseHugePages), which spares each of those reads a page walk.
// The Conn slab comes first; see Fresh.
func (t *Table) Arrays() []any { return []any{t.conns, t.index, t.recent, t.links} }

// SlotArrays returns the arrays indexed by slab slot (the Conns and their
// links): a new connection touches both at its slot (see Fresh).
func (t *Table) SlotArrays() []any { return []any{t.conns, t.links} }

// MemoryRegions names the table's large arrays for a map of what the
// sensor's memory holds (see sensor.Config.MapMemory).
func (t *Table) MemoryRegions(yield func(name string, array any)) {
	yield("flow table: connections", t.conns)
	yield("flow table: links", t.links)
	yield("flow table: index", t.index)
	yield("flow table: ended connections", t.recent)
}

// Fresh returns how many slots of the Conn slab were ever used: new
// connections take the slab's slots in order, so its first Fresh() Conns
// have been touched and the others never were (until the table was full
// once, when Fresh() is Capacity()).
func (t *Table) Fresh() int { return int(t.fresh) }

// recentConn is a connection that ended and left the table (or was
// replaced on its 4-tuple by a new SYN).
type recentConn struct {
	hash      uint64
	prev      Prev
	clientIsA bool
}

// recentWays is the size of a set of the memory of ended connections: two
// cache lines. Direct-mapped, an end survived t seconds of others ending
// at rate r in n entries with a chance of e^(-r*t/n); in sets it is lost
// only once its set has had recentWays newer ends. For a 4-tuple reused
// 30 s after its connection left the table, at 2,000 ends a second into
// the 131,072 entries of a table of a million, that is 63% direct-mapped
// and 89% in sets of 4 (a Poisson count of mean 1.83 below 4).
const recentWays = 4

// recentSet is the set of the memory of ended connections for key hash h.
func (t *Table) recentSet(h uint64) []recentConn {
	i := int(h&uint64(len(t.recent)/recentWays-1)) * recentWays
	return t.recent[i : i+recentWays]
}

// remember keeps an ended connection that leaves the table.
func (t *Table) remember(c *Conn) {
	if c.EndTS == 0 || c.Midstream {
		return
	}
	p := Prev{EndTS: c.EndTS}
	if cl := &c.Side[Client]; cl.Has(SideTS) {
		p.TSval, p.HasTS = cl.TSval, true
	}
	t.rememberPrev(t.Hash(&c.Key), c.ClientIsA, p)
}

// rememberPrev keeps p for the connection with key hash h whose client is
// endpoint A (clientIsA) of the key.
func (t *Table) rememberPrev(h uint64, clientIsA bool, p Prev) {
	set := t.recentSet(h)
	v := 0 // a free entry, the same 4-tuple's, or else the oldest end
	for i := range set {
		if set[i].hash == 0 || set[i].hash == h {
			v = i
			break
		}
		if set[i].prev.EndTS < set[v].prev.EndTS {
			v = i
		}
	}
	set[v] = recentConn{hash: h, prev: p, clientIsA: clientIsA}
}

// recall returns, and forgets, what the table remembers of an ended
// connection with c's key and client.
func (t *Table) recall(c *Conn) (Prev, bool) {
	h := t.Hash(&c.Key)
	if h == 0 {
		return Prev{}, false // 0 marks a free entry
	}
	set := t.recentSet(h)
	for i := range set {
		if r := &set[i]; r.hash == h && r.clientIsA == c.ClientIsA {
			r.hash = 0
			return r.prev, true
		}
	}
	return Prev{}, false
}

// RandomSeed returns a random non-zero hash seed.
func RandomSeed() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails on Linux (crypto/rand panics otherwise)
		if s := binary.LittleEndian.Uint64(b[:]); s != 0 {
			return s
		}
	}
}

// Capacity is the number of connections the table holds.
func (t *Table) Capacity() int { return len(t.conns) }

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	st := t.stats
	st.Peak = int(t.fresh)
	return st
}

// Now is the table's packet clock: the latest capture time seen.
func (t *Table) Now() int64 { return t.now }

// Hash returns the table's seeded flow hash of k.
func (t *Table) Hash(k *Key) uint64 { return t.hasher.Sum(k) }

func home(e uint64) uint64 { return e >> slotBits }

// Lookup returns the connection with key k, or nil.
func (t *Table) Lookup(k *Key) *Conn {
	h := t.Hash(k)
	tag := h &^ slotMask
	for i := (h >> slotBits) & t.mask; ; i = (i + 1) & t.mask {
		e := t.index[i]
		if e == 0 {
			return nil
		}
		if e&^slotMask == tag {
			if c := &t.conns[e&slotMask-1]; c.Key.equal(k) {
				return c
			}
		}
	}
}

// Probe is a packet's flow key and its hash, computed ahead of Track.
// A worker fills the probes of a group of packets and then runs each
// read-ahead pass over the whole group, and calls Prefetch after it,
// before it tracks any packet: the cache misses of the packets' lookups
// then overlap instead of following one another, as in DPDK's bulk
// lookup. With a large table a lookup is otherwise a chain of dependent
// misses: index entry, Conn, the Conn's links when it is moved to the
// tail of its idle list, and its neighbours there. The passes, in order:
// PrefetchIndex, PrefetchConn, PrefetchRelink, PrefetchLinks; each
// reads what the one before asked for, so a worker runs them on
// different groups, a group apart. They only read, and only decide what
// is read ahead: Track gives the same result without them.
type Probe struct {
	key   Key
	hash  uint64
	fromA bool
	// ctl: a SYN, FIN or RST, which also touches the Conn's colder lines
	// (handshake and end times, history, the detectors' notes).
	ctl bool
	// relink: the packet will move the Conn to the tail of its idle list
	// (PrefetchRelink).
	relink bool
	slot   uint32 // slab index + 1 of the Conn PrefetchConn found, 0 if none
}

// Probe fills pr for p. It is KeyOf and Hash in one, on the address
// words it loads once: the canonical order and the hash both use them.
func (t *Table) Probe(p *decode.Packet, pr *Probe) {
	s0, s1 := be64(p.Src[0:8]), be64(p.Src[8:16])
	d0, d1 := be64(p.Dst[0:8]), be64(p.Dst[8:16])
	sp, dp := p.SrcPort, p.DstPort
	// less(Src, Dst) on the words.
	fromA := s0 < d0 || s0 == d0 && (s1 < d1 || s1 == d1 && sp <= dp)
	k := &pr.key
	if fromA {
		k.A, k.B, k.PortA, k.PortB = p.Src, p.Dst, sp, dp
	} else {
		k.A, k.B, k.PortA, k.PortB = p.Dst, p.Src, dp, sp
		s0, s1, d0, d1, sp, dp = d0, d1, s0, s1, dp, sp
	}
	k.VLAN, k.Family, k.Iface = p.VLAN, p.Family, p.Iface
	pr.fromA = fromA
	pr.ctl = p.Flags&(decode.FlagSYN|decode.FlagFIN|decode.FlagRST) != 0
	pr.hash = t.hasher.sum(s0, s1, d0, d1,
		uint64(sp)<<48|uint64(dp)<<32|uint64(p.VLAN[0])<<16|uint64(p.VLAN[1]),
		uint64(p.Family)<<8|uint64(p.Iface))
	pr.slot, pr.relink = 0, false
}

// The read-ahead passes. Each queues the lines it wants and Prefetch
// starts reading them; a pass reads only what the pass before it asked
// for, so each of a packet's misses (index entry, Conn, idle-list
// neighbours) is in flight while the worker works on other groups. See
// Probe.

// linesPerConn is the number of 64-byte lines of a Conn (TestConnLayout).
const linesPerConn = 3

// Lines of a Conn the passes read: see Conn's layout.
const (
	lineKey   = 0 // key, stage, clocks: every segment
	lineSides = 1 // both Sides: every segment
	lineCold  = 2 // the detectors' notes, handshake and end times, history
)

// aheadMax is how many lines of each kind a queue holds before Prefetch
// is called for it anyway.
const aheadMax = 128

// aheadQueue is what the read-ahead passes asked for and Prefetch has
// not started yet.
type aheadQueue struct {
	index      [aheadMax]uint32 // index positions
	lines      [aheadMax]uint32 // slab lines: slot index * linesPerConn + line
	links      [aheadMax]uint32 // slot indexes whose links are wanted
	nIdx, nLin int
	nLnk       int
	// sink keeps what the loads of the portable prefetch read, so that
	// the compiler keeps them; its value means nothing.
	sink uint64
}

func (t *Table) aheadIndex(pos uint64) {
	q := &t.ahead
	if q.nIdx == aheadMax {
		t.Prefetch()
	}
	q.index[q.nIdx] = uint32(pos)
	q.nIdx++
}

// aheadConn queues line of the Conn in slot s (slab index + 1).
func (t *Table) aheadConn(s uint32, line uint32) {
	q := &t.ahead
	if q.nLin == aheadMax {
		t.Prefetch()
	}
	q.lines[q.nLin] = (s-1)*linesPerConn + line
	q.nLin++
}

// aheadLinks queues the links of slot s (slab index + 1).
func (t *Table) aheadLinks(s uint32) {
	q := &t.ahead
	if q.nLnk == aheadMax {
		t.Prefetch()
	}
	q.links[q.nLnk] = s - 1
	q.nLnk++
}

// Prefetch starts reading every line the passes queued since it was last
// called. It does not wait for them.
func (t *Table) Prefetch() {
	q := &t.ahead
	if q.nIdx > 0 {
		q.sink += prefetchIndex(t.index, q.index[:q.nIdx])
		q.nIdx = 0
	}
	if q.nLin > 0 {
		q.sink += prefetchSlab(t.conns, q.lines[:q.nLin])
		q.nLin = 0
	}
	if q.nLnk > 0 {
		q.sink += prefetchLinks(t.links, q.links[:q.nLnk])
		q.nLnk = 0
	}
}

// PrefetchIndex queues pr's index bucket.
func (t *Table) PrefetchIndex(pr *Probe) {
	t.aheadIndex((pr.hash >> slotBits) & t.mask)
}

// PrefetchConn finds, in the index entries PrefetchIndex read, the Conn
// pr's flow most likely has (that of the first entry with its hash's
// tag), and queues the lines tracking the segment touches: the first two,
// and for a control segment the third and the Conn's links.
func (t *Table) PrefetchConn(pr *Probe) {
	pr.slot, pr.relink = 0, false
	tag := pr.hash &^ slotMask
	for i := (pr.hash >> slotBits) & t.mask; ; i = (i + 1) & t.mask {
		e := t.index[i]
		if e == 0 {
			return
		}
		if e&^slotMask == tag {
			s := uint32(e & slotMask)
			pr.slot = s
			t.aheadConn(s, lineKey)
			t.aheadConn(s, lineSides)
			if pr.ctl {
				t.aheadConn(s, lineCold)
				t.aheadLinks(s)
			}
			return
		}
	}
}

// PrefetchRelink decides, from the Conn's first line, whether a packet at
// ts will move it to the tail of its idle list, and if so queues the
// Conn's line of links (a control segment queued it already).
func (t *Table) PrefetchRelink(pr *Probe, ts int64) {
	if pr.slot == 0 {
		return
	}
	if ts-t.conns[pr.slot-1].linkTS < relinkGranularity {
		return
	}
	pr.relink = true
	if !pr.ctl {
		t.aheadLinks(pr.slot)
	}
}

// PrefetchLinks queues the line of links of the Conn's idle-list
// neighbours, which moving it to the tail writes.
func (t *Table) PrefetchLinks(pr *Probe) {
	if !pr.relink {
		return
	}
	l := &t.links[pr.slot-1]
	if l.prev != 0 {
		t.aheadLinks(l.prev)
	}
	if l.next != 0 {
		t.aheadLinks(l.next)
	}
}

// equal reports whether two keys are the same, field by field: the
// compiler compares the addresses as words, without the call a
// comparison of the whole struct makes.
func (k *Key) equal(o *Key) bool {
	return k.A == o.A && k.B == o.B && k.PortA == o.PortA && k.PortB == o.PortB &&
		k.VLAN == o.VLAN && k.Family == o.Family && k.Iface == o.Iface
}

// upsert finds or creates the slot for k, whose hash is h. A new Conn has
// Stage None.
func (t *Table) upsert(k *Key, h uint64) (c *Conn, s uint32, created bool) {
	tag := h &^ slotMask
	i := (h >> slotBits) & t.mask
	for ; ; i = (i + 1) & t.mask {
		e := t.index[i]
		if e == 0 {
			break
		}
		if e&^slotMask == tag {
			if c := &t.conns[e&slotMask-1]; c.Key.equal(k) {
				return c, uint32(e & slotMask), false
			}
		}
	}
	if t.free == 0 && int(t.fresh) < len(t.conns) {
		t.fresh++
		t.links[t.fresh-1].next = 0
		t.free = t.fresh
	} else if t.free == 0 {
		t.evictOldest()
		// The backward shift of the eviction may have moved entries
		// into our probe path: find the free position again.
		i = (h >> slotBits) & t.mask
		for t.index[i] != 0 {
			i = (i + 1) & t.mask
		}
	}
	s = t.free
	c = &t.conns[s-1]
	t.free = t.links[s-1].next
	t.links[s-1] = links{}
	*c = Conn{Key: *k}
	t.index[i] = tag | uint64(s)
	t.stats.Active++
	t.stats.Created++
	return c, s, true
}

// remove unlinks c from the index, its list and timer, and frees its slot.
func (t *Table) remove(c *Conn, s uint32) {
	h := t.Hash(&c.Key)
	tag := h &^ slotMask
	i := (h >> slotBits) & t.mask
	for t.index[i] != tag|uint64(s) {
		i = (i + 1) & t.mask
	}
	// Backward-shift deletion (Knuth 6.4 algorithm R): pull later entries
	// of the cluster into the hole when their home allows it.
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		e := t.index[j]
		if e == 0 {
			break
		}
		hm := home(e) & t.mask
		// e may move to i unless its home lies cyclically in (i, j].
		if (j > i && (hm <= i || hm > j)) || (j < i && hm <= i && hm > j) {
			t.index[i] = e
			i = j
		}
	}
	t.index[i] = 0
	t.unlink(c, s)
	if c.bits&bitTimer != 0 {
		t.unlinkTimer(c, s)
	}
	c.Stage = StageNone
	t.links[s-1].next = t.free
	t.free = s
	t.stats.Active--
}

// oldest returns the slot of the connection linked longest ago (0 if the
// table is empty): the heads of the idle lists are each list's oldest.
func (t *Table) oldest() uint32 {
	var best uint32
	for cl := range t.lists {
		if hd := t.lists[cl].head; hd != 0 && (best == 0 || t.conns[hd-1].linkTS < t.conns[best-1].linkTS) {
			best = hd
		}
	}
	return best
}

// evictOldest makes room in a full table: the connection idle longest
// leaves, or, while half-open connections hold their whole share
// (Config.MaxHalfOpen), the half-open one idle longest.
func (t *Table) evictOldest() {
	s := t.oldest()
	if t.inClass[classHalfOpen] >= t.maxHalfOpen {
		s = t.lists[classHalfOpen].head
	}
	t.stats.EvictedFull++
	t.leave(&t.conns[s-1], s, EvictFull)
}

// leave fires c's pending timer, tells the handler and frees the slot.
func (t *Table) leave(c *Conn, s uint32, why Evict) {
	when := t.now
	switch why {
	case EvictIdle:
		when = c.LastTS + t.timeout[c.class]
	case EvictFlush:
		when = c.LastTS
	}
	if c.bits&bitTimer != 0 {
		t.unlinkTimer(c, s)
		t.h.HandshakeTimeout(c, c.LastTS, when)
	}
	t.h.Evicted(c, why, when)
	if why == EvictIdle || why == EvictFull {
		t.remember(c) // (at the end of a capture nothing follows)
	}
	t.remove(c, s)
}

func (t *Table) link(c *Conn, s uint32, cl uint8) {
	c.class = cl
	c.linkTS = t.now
	t.inClass[cl]++
	l := &t.lists[cl]
	k := &t.links[s-1]
	k.prev, k.next = l.tail, 0
	if l.tail != 0 {
		t.links[l.tail-1].next = s
	} else {
		l.head = s
		t.due(t.now + t.timeout[cl])
	}
	l.tail = s
}

func (t *Table) unlink(c *Conn, s uint32) {
	t.inClass[c.class]--
	l := &t.lists[c.class]
	k := &t.links[s-1]
	if k.prev != 0 {
		t.links[k.prev-1].next = k.next
	} else {
		l.head = k.next
	}
	if k.next != 0 {
		t.links[k.next-1].prev = k.prev
	} else {
		l.tail = k.prev
	}
	k.prev, k.next = 0, 0
}

// armTimer starts c's handshake timer at its SYN's capture time (c.SynTS,
// set first). The timer list stays ordered as long as capture times do; a
// frame stamped out of order fires at most that much late.
func (t *Table) armTimer(c *Conn, s uint32) {
	if c.bits&bitTimer != 0 {
		return
	}
	c.bits |= bitTimer
	k := &t.links[s-1]
	k.tprev, k.tnext = t.timers.tail, 0
	if t.timers.tail != 0 {
		t.links[t.timers.tail-1].tnext = s
	} else {
		t.timers.head = s
	}
	t.timers.tail = s
	t.due(t.deadline(c))
}

func (t *Table) unlinkTimer(c *Conn, s uint32) {
	k := &t.links[s-1]
	if k.tprev != 0 {
		t.links[k.tprev-1].tnext = k.tnext
	} else {
		t.timers.head = k.tnext
	}
	if k.tnext != 0 {
		t.links[k.tnext-1].tprev = k.tprev
	} else {
		t.timers.tail = k.tprev
	}
	k.tprev, k.tnext = 0, 0
	c.bits &^= bitTimer
}

// deadline is when c's handshake timer expires: it was armed at c's
// first SYN.
func (t *Table) deadline(c *Conn) int64 { return c.SynTS + t.hshake }

func (t *Table) due(at int64) {
	if at < t.nextDue {
		t.nextDue = at
	}
}

// Advance moves the packet clock to now (never backwards) and runs what
// is due: handshake timers first, then idle evictions. A live worker calls
// it when the ring is quiet; Packet calls it for every packet.
func (t *Table) Advance(now int64) {
	if now > t.now {
		t.now = now
	}
	if t.now < t.nextDue {
		return
	}
	t.nextDue = 1<<63 - 1
	for s := t.timers.head; s != 0; s = t.timers.head {
		c := &t.conns[s-1]
		at := t.deadline(c)
		if at > t.now {
			t.due(at)
			break
		}
		t.unlinkTimer(c, s)
		t.h.HandshakeTimeout(c, at, at)
	}
	for cl := range t.lists {
		to := t.timeout[cl]
		for s := t.lists[cl].head; s != 0; s = t.lists[cl].head {
			c := &t.conns[s-1]
			if c.LastTS+to > t.now {
				// Lists are ordered by link time, and a connection's
				// last packet is within relinkGranularity of it.
				t.due(c.LastTS + to)
				break
			}
			t.stats.EvictedIdle++
			t.leave(c, s, EvictIdle)
		}
	}
}

// Horizon bounds from below the time of every expiry the table can report
// from now on, for a caller that must know when a time is complete: the
// table clock, or a head of an idle list's link time plus its timeout
// when that is earlier (a connection re-linked less than
// relinkGranularity ago may leave with a deadline before the clock). It is
// never before Now() - WhenSlack, and usually Now(). Packets stamped
// before the clock (reordered input) can go below it; the caller allows
// for those.
func (t *Table) Horizon() int64 {
	h := t.now
	for cl := range t.lists {
		if s := t.lists[cl].head; s != 0 {
			h = min(h, t.conns[s-1].linkTS+t.timeout[cl])
		}
	}
	return h
}

// AdvanceExact is Advance to now, and then evicts every connection idle
// past its timeout, not only those at the head of their lists: at the end
// of a capture it makes what has expired independent of the other flows
// in the table (see WhenSlack).
func (t *Table) AdvanceExact(now int64) {
	t.Advance(now)
	for cl := range t.lists {
		to := t.timeout[cl]
		// A connection's last packet is no older than its link time, and
		// lists are in link order: stop at the first linked too late.
		for s := t.lists[cl].head; s != 0; {
			c := &t.conns[s-1]
			if c.linkTS+to > t.now {
				break
			}
			next := t.links[s-1].next
			if c.LastTS+to <= t.now {
				t.stats.EvictedIdle++
				t.leave(c, s, EvictIdle)
			}
			s = next
		}
	}
}

// Flush ends every connection as at the end of a capture: pending
// handshake timers fire (oldest first), then every connection is evicted
// oldest first with EvictFlush.
func (t *Table) Flush() {
	for s := t.timers.head; s != 0; s = t.timers.head {
		c := &t.conns[s-1]
		t.unlinkTimer(c, s)
		t.h.HandshakeTimeout(c, c.LastTS, c.LastTS)
	}
	for s := t.oldest(); s != 0; s = t.oldest() {
		t.stats.Flushed++
		t.leave(&t.conns[s-1], s, EvictFlush)
	}
}
