// Package detectors holds the anomaly state machines. A Set runs them for
// one worker: it is called for every tracked segment and for the flow
// table's timers and evictions, and emits fixed-size Event values into
// an Out without allocating. It never reads the clock: all times are
// capture times.
package detectors

import (
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Config holds the detectors' thresholds; the zero value of a field means
// its default.
type Config struct {
	// SynRetransmits is the SYN retransmission at which syn_unanswered
	// fires without waiting for the handshake timer (default 3).
	SynRetransmits int
}

// DefaultSynRetransmits is Config.SynRetransmits' default.
const DefaultSynRetransmits = 3

// Out is a worker's fixed-capacity event buffer. Emit copies the event in;
// when the buffer is full it is handed to the flush function (which may
// block, as replay does), or, with none, the event is dropped and counted.
type Out struct {
	buf     []Event
	n       int
	flush   func([]Event)
	Dropped uint64 // events lost because the buffer was full and there was no flush
}

// NewOut returns a buffer of size events (at least 1). flush, if not nil,
// receives the buffered events when the buffer fills and on Flush; it must
// not keep the slice.
func NewOut(size int, flush func([]Event)) *Out {
	if size < 1 {
		size = 1
	}
	return &Out{buf: make([]Event, size), flush: flush}
}

// Emit copies e into the buffer.
func (o *Out) Emit(e *Event) {
	if o.n == len(o.buf) {
		if o.flush == nil {
			o.Dropped++
			return
		}
		o.Flush()
	}
	o.buf[o.n] = *e
	o.n++
}

// Len is the number of buffered events.
func (o *Out) Len() int { return o.n }

// Flush hands the buffered events to the flush function and empties the
// buffer.
func (o *Out) Flush() {
	if o.n > 0 && o.flush != nil {
		o.flush(o.buf[:o.n])
	}
	o.n = 0
}

// Take returns the buffered events and empties the buffer; the slice is
// valid until the next Emit.
func (o *Out) Take() []Event {
	ev := o.buf[:o.n]
	o.n = 0
	return ev
}

// Fired bits in flowtable.Conn.Fired: one per detector type.
func firedBit(t Type) uint32 { return 1 << t }

// Set runs every detector for one worker. It implements flowtable.Handler.
type Set struct {
	synRetrans uint16
	out        *Out
	iface      uint16
	Counts     [NumTypes]uint64 // events emitted, by type
}

var _ flowtable.Handler = (*Set)(nil)

// NewSet returns the detectors of one worker, emitting into out; iface is
// the index of the capture interface its events name.
func NewSet(cfg Config, out *Out, iface uint16) *Set {
	if cfg.SynRetransmits <= 0 {
		cfg.SynRetransmits = DefaultSynRetransmits
	}
	return &Set{synRetrans: uint16(cfg.SynRetransmits), out: out, iface: iface}
}

// Segment runs the per-segment detectors on a segment the table tracked.
func (s *Set) Segment(c *flowtable.Conn, p *decode.Packet, seg flowtable.Seg, ts int64) {
	const interesting = flowtable.SegRSTToSYN | flowtable.SegSYNRetrans
	if seg&interesting == 0 {
		return
	}
	if seg.Has(flowtable.SegRSTToSYN) {
		s.connectionRefused(c, ts)
	}
	if seg.Has(flowtable.SegSYNRetrans) && c.Stage == flowtable.StageSynSent &&
		c.Side[flowtable.Client].Syns-1 >= s.synRetrans {
		s.synUnanswered(c, ts)
	}
}

// HandshakeTimeout is the table's handshake timer: the SYN waited too long.
func (s *Set) HandshakeTimeout(c *flowtable.Conn, at int64) {
	if c.Stage == flowtable.StageSynSent {
		s.synUnanswered(c, at)
	}
}

// Evicted is called before a connection leaves the table.
func (s *Set) Evicted(c *flowtable.Conn, why flowtable.Evict, now int64) {}

// begin starts an event of type t about c, once per connection; it
// returns nil when t already fired on c.
func (s *Set) begin(e *Event, c *flowtable.Conn, t Type) bool {
	if c.Fired&firedBit(t) != 0 {
		return false
	}
	c.Fired |= firedBit(t)
	*e = Event{Type: t, Family: c.Key.Family, FlowID: c.ID, Count: 1, Iface: s.iface}
	e.Client.Addr, e.Client.Port = c.ClientAddr()
	e.Server.Addr, e.Server.Port = c.ServerAddr()
	for i, v := range c.Key.VLAN {
		if v != 0 {
			e.VLAN[i] = v
			e.NVLAN = uint8(i + 1)
		}
	}
	e.History = c.History
	e.HistoryLen = c.HistoryLen
	if c.Midstream {
		e.Capture |= CaptureMidstream
	}
	if c.SynAckUnseen {
		e.Capture |= CaptureOneSided
	}
	return true
}

func (s *Set) emit(e *Event) {
	s.Counts[e.Type]++
	s.out.Emit(e)
}

func ms(ns int64) int64 { return ns / 1e6 }
