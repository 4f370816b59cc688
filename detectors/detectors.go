// Package detectors holds the anomaly state machines. A Set runs the
// per-connection ones for one worker: it is called for every tracked
// segment and for the flow table's timers and evictions, and emits
// fixed-size Events and Facts into an Out without allocating. One
// Correlator takes every worker's output in capture-time order, keeps the
// cross-connection state (TCP clocks per source, failures per server:port,
// RST endings per host:port), decides the causes that need it, and folds
// repeats. Nothing here reads the clock: all times are capture times.
package detectors

import (
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable"
)

// Config holds the detectors' thresholds and which types are emitted,
// at what severity; the zero value of a field means its default. It is a
// comparable value, so a running sensor can tell what a reload changed.
type Config struct {
	// SynRetransmits is the SYN retransmission at which syn_unanswered
	// fires without waiting for the handshake timer (default 3).
	SynRetransmits int
	// RequestRetransmits is how often a request must be sent again,
	// never acknowledged, for request_unanswered (default 3).
	RequestRetransmits int
	// LargeAckDistance: an invalid ACK this far outside the peer's
	// sequence space blames a middlebox, closer ones capture loss
	// (default 1 MiB).
	LargeAckDistance int64
	// FailedConnections within FailedWindow to one server:port make a
	// failed_connection_rate (defaults 10 and 10 s).
	FailedConnections int
	FailedWindow      time.Duration
	// RSTEndings within RSTWindow, and at least RSTShare percent of its
	// endings, make one host:port's rst_storm (defaults 100, 10 s, 50).
	RSTEndings int
	RSTWindow  time.Duration
	RSTShare   int
	// Fold is how long repeats of a per-connection event are folded into
	// one (default 60 s); TSFold the same for ts_regression (default 10 min).
	Fold, TSFold time.Duration
	// EventRate and EventBurst limit the events written of each type, in
	// capture time: a token bucket per type that holds EventBurst events
	// and refills at EventRate a second (defaults DefaultEventRate and
	// DefaultEventBurst). Events over the limit are not written;
	// Correlator.RateLimited counts them. Folding happens first: the
	// limit is for floods from many clients, which folding cannot bound.
	EventRate, EventBurst int

	// Disabled types are not emitted. Their detectors still run and feed
	// the cross-connection findings (an unanswered SYN still counts
	// towards failed_connection_rate); Correlator.Suppressed counts them.
	Disabled [NumTypes]bool
	// Severity, where not 0, replaces the severity of every emitted event
	// of a type, whatever its cause.
	Severity [NumTypes]Severity
}

// Defaults.
const (
	DefaultSynRetransmits     = 3
	DefaultRequestRetransmits = 3
	DefaultLargeAckDistance   = 1 << 20
	DefaultFailedConnections  = 10
	DefaultFailedWindow       = 10 * time.Second
	DefaultRSTEndings         = 100
	DefaultRSTWindow          = 10 * time.Second
	DefaultRSTShare           = 50
	DefaultFold               = 60 * time.Second
	DefaultTSFold             = 10 * time.Minute
	// DefaultEventRate and DefaultEventBurst are far above what busy
	// links give: the benchmark's capture with a million flows open at
	// once (bench/suite, sweep-1M) writes at most 1,851 events of one type
	// (connection_refused) in one second of capture time, its 64,000
	// events in 24 s; bench/events' load with 10% of connections refused,
	// 20,240 in 26.6 s.
	DefaultEventRate  = 10_000
	DefaultEventBurst = 20_000
)

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.SynRetransmits, DefaultSynRetransmits)
	def(&c.RequestRetransmits, DefaultRequestRetransmits)
	if c.LargeAckDistance <= 0 {
		c.LargeAckDistance = DefaultLargeAckDistance
	}
	def(&c.FailedConnections, DefaultFailedConnections)
	defd(&c.FailedWindow, DefaultFailedWindow)
	def(&c.RSTEndings, DefaultRSTEndings)
	defd(&c.RSTWindow, DefaultRSTWindow)
	def(&c.RSTShare, DefaultRSTShare)
	defd(&c.Fold, DefaultFold)
	defd(&c.TSFold, DefaultTSFold)
	def(&c.EventRate, DefaultEventRate)
	def(&c.EventBurst, DefaultEventBurst)
}

// Defaults returns c with every zero threshold set to its default.
func (c Config) Defaults() Config {
	c.defaults()
	return c
}

// Fired bits in Conn.Notes.Fired: one per detector type.
func firedBit(t Type) uint16 { return 1 << t }

// Every type has a bit in Notes.Fired.
var _ [16 - NumTypes]struct{}

// Set runs the per-connection detectors of one worker. It implements
// flowtable.Handler. Events and facts go to its Out.
type Set struct {
	cfg   Config
	out   *Out
	clock int64 // latest capture time seen: At of packet-driven events
	pool  notePool

	// synacks deduplicates FactSynAck: per server:port hash, the last
	// second reported.
	synacks [synackCache]struct {
		h   uint64
		sec int64
	}
}

// MemoryRegions names the Set's arrays for a map of what the sensor's
// memory holds (see sensor.Config.MapMemory).
func (s *Set) MemoryRegions(yield func(name string, array any)) {
	yield("detectors: notes", s.pool.items)
}

const synackCache = 1024

var _ flowtable.Handler = (*Set)(nil)

// NewSet returns the detectors of one worker, emitting into out, for a
// flow table of conns connections (flowtable.Config.Slots). Events name
// the capture interface of their connection's key.
func NewSet(cfg Config, out *Out, conns int) *Set {
	cfg.defaults()
	return &Set{cfg: cfg, out: out, pool: newNotePool(conns)}
}

// SetConfig replaces the thresholds from the next segment on. Call it
// from the worker that owns s, between batches.
func (s *Set) SetConfig(cfg Config) {
	cfg.defaults()
	s.cfg = cfg
}

// begin starts an event of type t about c, once per connection; it
// returns false when t already fired on c.
func (s *Set) begin(e *Event, c *flowtable.Conn, t Type, at int64) bool {
	if c.Notes.Fired&firedBit(t) != 0 {
		return false
	}
	c.Notes.Fired |= firedBit(t)
	*e = Event{Type: t, Family: c.Key.Family, FlowID: c.ID, Count: 1, Iface: uint16(c.Key.Iface), At: at}
	e.Client.Addr, e.Client.Port = c.ClientAddr()
	e.Server.Addr, e.Server.Port = c.ServerAddr()
	for i, v := range c.Key.VLAN {
		if v != 0 {
			e.VLAN[i] = v
			e.NVLAN = uint8(i + 1)
		}
	}
	e.History, e.HistoryLen = c.History()
	if c.Midstream {
		e.Capture |= CaptureMidstream
	}
	if c.SynAckUnseen {
		e.Capture |= CaptureOneSided
	}
	return true
}

func (s *Set) emit(e *Event) { s.out.Emit(e) }

func ms(ns int64) int64 { return ns / 1e6 }
