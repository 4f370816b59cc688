package workload

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Format is the capture file format.
type Format int

const (
	PCAP   Format = iota // libpcap, nanosecond timestamps
	PCAPNG               // pcapng, one Ethernet interface, nanosecond timestamps
)

// Options shape the traffic.
type Options struct {
	// Connections is the number of ordinary connections; Concurrent how
	// many are open at once (each of Concurrent slots runs connections
	// one after another).
	Connections int
	Concurrent  int
	IPv6Share   float64 // fraction of connections over IPv6
	VLANShare   float64 // fraction tagged 802.1Q
	// LossRate is the chance that a data segment is lost after the
	// sensor (it is seen again when sent again).
	LossRate float64
	// Exchanges: each connection makes 1 to Exchanges request/response
	// exchanges (keep-alive).
	Exchanges int
	// MaxResponse caps response sizes (bytes; 0: 1,000,000, the mix's
	// largest). ThinkMax is the longest pause of a client between a
	// response and its next request or its close (0: 2 s): long pauses
	// make many connections open at once from few packets, as idle
	// keep-alive clients do. Both leave the random draws as they are.
	MaxResponse int
	ThinkMax    time.Duration
	// Ramp is the time over which the slots start their first
	// connections (0: 1 s): Concurrent/Ramp is the SYN rate at the start.
	Ramp time.Duration
	// AnomalyRate is the number of instances of each anomaly kind per
	// ordinary connection (0.001: one each per thousand connections).
	AnomalyRate float64
	// Kinds are the anomalies injected (nil: all).
	Kinds   []Kind
	Seed    uint64
	Start   time.Time // the first slot's start (default 2026-01-01 UTC)
	Snaplen int       // bytes stored per frame (default 128)
	Format  Format
}

// DefaultOptions are the generator's defaults.
func DefaultOptions() Options {
	return Options{
		Connections: 100_000,
		Concurrent:  10_000,
		IPv6Share:   0.2,
		VLANShare:   0.1,
		LossRate:    0.002,
		Exchanges:   4,
		MaxResponse: maxResponse,
		ThinkMax:    2 * time.Second,
		Ramp:        time.Second,
		AnomalyRate: 0.001,
		Seed:        1,
		Snaplen:     128,
	}
}

func (o *Options) check() error {
	switch {
	case o.Connections < 1:
		return errors.New("connections must be ≥ 1")
	case o.Concurrent < 1:
		return errors.New("concurrent must be ≥ 1")
	case o.Concurrent > 1<<24:
		return errors.New("concurrent must be ≤ 16777216")
	case o.IPv6Share < 0 || o.IPv6Share > 1, o.VLANShare < 0 || o.VLANShare > 1:
		return errors.New("shares must be within [0, 1]")
	case o.LossRate < 0 || o.LossRate > 0.5:
		return errors.New("loss rate must be within [0, 0.5]")
	case o.Exchanges < 1:
		return errors.New("exchanges must be ≥ 1")
	case o.MaxResponse < 1 || o.MaxResponse > maxResponse:
		return fmt.Errorf("max response must be within [1, %d] bytes", maxResponse)
	case o.ThinkMax < time.Millisecond || o.ThinkMax > time.Hour:
		return errors.New("think time must be within [1ms, 1h]")
	case o.Ramp < time.Millisecond || o.Ramp > time.Hour:
		return errors.New("ramp must be within [1ms, 1h]")
	case o.AnomalyRate < 0 || math.IsNaN(o.AnomalyRate) || o.AnomalyRate*float64(o.Connections) > 1e7:
		return errors.New("anomaly rate must be ≥ 0 and give at most 10 million instances")
	case o.Snaplen != 0 && (o.Snaplen < 96 || o.Snaplen > 65535):
		return errors.New("snaplen must be within [96, 65535] (the headers must fit)")
	case o.Format != PCAP && o.Format != PCAPNG:
		return errors.New("unknown format")
	}
	for _, k := range o.Kinds {
		if k < 0 || k >= NumKinds {
			return fmt.Errorf("unknown anomaly kind %d", k)
		}
	}
	return nil
}

// Stats is what Write produced.
type Stats struct {
	Packets     int
	Bytes       int64 // on the wire
	Connections int   // ordinary connections
	Flows       int   // connections opened by a SYN: ordinary connections and the anomalies'
	Instances   [NumKinds]int
	// MaxOpen is the most flows open at once: from a flow's first packet
	// to its last. MaxHeld is the most a sensor's table holds at once: a
	// flow stays there for Linger after its last packet (the sensor's
	// timeout for a closed connection), so with short connections the
	// table holds many more flows than are open. Size a table by MaxHeld.
	// Both count every flow of an anomaly instance (a RST storm is a
	// hundred connections).
	MaxOpen     int
	MaxHeld     int
	First, Last int64 // capture times, ns
	Truth       []Truth
}

// Write writes the traffic to w and returns what it wrote, with the
// ground truth: every event tcpsentry must report, and nothing else.
// Output is the same for the same options.
func Write(w io.Writer, o Options) (Stats, error) {
	if o.Snaplen == 0 {
		o.Snaplen = 128
	}
	if o.MaxResponse == 0 {
		o.MaxResponse = maxResponse
	}
	if o.ThinkMax == 0 {
		o.ThinkMax = 2 * time.Second
	}
	if o.Ramp == 0 {
		o.Ramp = time.Second
	}
	if err := o.check(); err != nil {
		return Stats{}, fmt.Errorf("workload: %w", err)
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	g := &gen{o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x5e75)), buf: make([]byte, 0, 256), flowSeen: map[*flow]bool{}}
	g.mix = o.Seed*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	kinds := o.Kinds
	if kinds == nil {
		for k := range NumKinds {
			kinds = append(kinds, k)
		}
	}
	per := int(math.Round(o.AnomalyRate * float64(o.Connections)))
	for _, k := range kinds {
		g.left[k] = per
		g.leftAll += per
	}
	g.leftBase = o.Connections
	g.ports = make([]uint16, max(o.Concurrent, 1000))
	var err error
	if o.Format == PCAPNG {
		ng, e := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
			Name: "gen0", LinkType: layers.LinkTypeEthernet, SnapLength: uint32(o.Snaplen),
			TimestampResolution: 9,
		}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "tcpsentry bench/gen"}})
		if e != nil {
			return Stats{}, e
		}
		g.ng = ng
	} else {
		g.pw = pcapgo.NewWriterNanos(w)
		err = g.pw.WriteFileHeader(uint32(o.Snaplen), layers.LinkTypeEthernet)
	}
	if err == nil {
		err = g.run()
	}
	if err == nil && g.ng != nil {
		err = g.ng.Flush()
	}
	g.st.Connections = o.Connections
	return g.st, err
}

// gen is one run of the generator.
type gen struct {
	o        Options
	rng      *rand.Rand
	mix      uint64
	pw       *pcapgo.Writer
	ng       *pcapgo.NgWriter
	buf      []byte
	st       Stats
	q        scripts
	left     [NumKinds]int // anomaly instances still to start
	leftAll  int
	leftBase int
	ports    []uint16 // next client port per ordinary client host
	seq      uint64   // tie-break of scripts at the same time
	open     int
	// ended holds the last-packet times of ended flows still lingering
	// in a sensor's table, oldest first, from ended[endedHead].
	ended     []int64
	endedHead int
	flowSeen  map[*flow]bool // markFlowEnds' scratch

	anomClients, anomServers int
}

// script is what one slot is doing: an ordinary connection, a phase at a
// time, or an anomaly instance.
type script struct {
	pkts []pkt
	i    int
	bc   *baseConn
	id   uint64
	open bool // its first packet is written
}

type scripts []*script

func (q scripts) Len() int { return len(q) }
func (q scripts) Less(i, j int) bool {
	a, b := q[i].pkts[q[i].i].t, q[j].pkts[q[j].i].t
	return a < b || a == b && q[i].id < q[j].id
}
func (q scripts) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *scripts) Push(x any)   { *q = append(*q, x.(*script)) }
func (q *scripts) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Linger is how long a sensor's table keeps a flow after its last
// packet in Stats.MaxHeld: tcpsentry's timeout for a closed connection
// (flowtable.DefaultClosed). Flows that end without a close (an
// unanswered SYN, a blackholed connection) stay longer, up to the
// half-open timeout of 30 s; they are few, so MaxHeld leaves them out.
const Linger = 10 * time.Second

// A slot starts its next connection within slotGap of the last one's
// end (its first within Options.Ramp of the start).
const slotGap = 10e6

func (g *gen) run() error {
	start := g.o.Start.UnixNano()
	for range g.o.Concurrent {
		if !g.startNext(start + g.rng.Int64N(int64(g.o.Ramp))) {
			break
		}
	}
	for len(g.q) > 0 {
		s := g.q[0]
		p := &s.pkts[s.i]
		if err := g.write(p); err != nil {
			return err
		}
		for g.endedHead < len(g.ended) && g.ended[g.endedHead]+int64(Linger) <= p.t {
			g.endedHead++
		}
		// An ordinary connection is its script's one flow, open until
		// the script ends; an anomaly instance's flows open and end on
		// their own packets.
		if opens := s.bc != nil && !s.open || s.bc == nil && !p.f.seen; opens {
			s.open, p.f.seen = true, true
			g.open++
			g.st.MaxOpen = max(g.st.MaxOpen, g.open)
		}
		g.st.MaxHeld = max(g.st.MaxHeld, g.open+len(g.ended)-g.endedHead)
		if p.bits&lastOfFlow != 0 {
			g.flowEnded(p.t)
		}
		s.i++
		if s.i < len(s.pkts) {
			heap.Fix(&g.q, 0)
			continue
		}
		end := p.t
		if s.bc != nil {
			if next := s.bc.next(g.rng); next != nil {
				s.pkts, s.i = next, 0
				heap.Fix(&g.q, 0)
				continue
			}
		}
		heap.Pop(&g.q)
		if s.bc != nil {
			g.flowEnded(end)
		}
		g.startNext(end + g.rng.Int64N(slotGap))
	}
	return nil
}

// flowEnded moves a flow whose last packet was at t from open to
// lingering. Packets are written in time order, so ended stays sorted.
func (g *gen) flowEnded(t int64) {
	g.open--
	if g.endedHead > len(g.ended)/2 && g.endedHead > 1024 {
		g.ended = g.ended[:copy(g.ended, g.ended[g.endedHead:])]
		g.endedHead = 0
	}
	g.ended = append(g.ended, t)
}

// markFlowEnds sets lastOfFlow on the last packet of each flow in pkts.
func (g *gen) markFlowEnds(pkts []pkt) {
	clear(g.flowSeen)
	for i := len(pkts) - 1; i >= 0; i-- {
		if f := pkts[i].f; !g.flowSeen[f] {
			g.flowSeen[f] = true
			pkts[i].bits |= lastOfFlow
		}
	}
}

// startNext starts the slot's next connection or anomaly at t, drawn
// without replacement from what is left, so that the counts are exact
// and anomalies spread over the whole capture. It reports whether
// anything was left.
func (g *gen) startNext(t int64) bool {
	n := g.leftBase + g.leftAll
	if n == 0 {
		return false
	}
	s := &script{id: g.seq}
	g.seq++
	if x := g.rng.IntN(n); x < g.leftBase {
		g.leftBase--
		s.bc = g.newBase(t)
		s.pkts = s.bc.next(g.rng)
	} else {
		x -= g.leftBase
		k := Kind(0)
		for ; x >= g.left[k]; k++ {
			x -= g.left[k]
		}
		g.left[k]--
		g.leftAll--
		g.st.Instances[k]++
		in := g.newInst()
		in.build(k, t)
		s.pkts = in.ph.sorted()
		g.markFlowEnds(s.pkts)
		g.st.Truth = append(g.st.Truth, in.truth...)
	}
	heap.Push(&g.q, s)
	return true
}

// Ordinary servers: 200 hosts, ports 80 and 443.
const baseServers = 200

// newBase draws an ordinary connection starting at t.
func (g *gen) newBase(t int64) *baseConn {
	rng := g.rng
	f := &flow{cwin: 502, swin: 509}
	f.v6 = rng.Float64() < g.o.IPv6Share
	if rng.Float64() < g.o.VLANShare {
		f.vlan = uint16(1 + rng.IntN(4094))
	}
	host := rng.IntN(len(g.ports))
	srv := rng.IntN(baseServers)
	if f.v6 {
		f.cli = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, 1}
		binary.BigEndian.PutUint64(f.cli[8:], uint64(host)+1)
		f.srv = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, 2}
		binary.BigEndian.PutUint64(f.srv[8:], uint64(srv)+1)
	} else {
		binary.BigEndian.PutUint32(f.cli[:4], 10<<24|uint32(host)+1) // 10.0.0.0/9
		binary.BigEndian.PutUint32(f.srv[:4], 10<<24|255<<16|uint32(srv)+1)
	}
	f.sport = 443
	if rng.IntN(10) < 6 {
		f.sport = 80
	}
	// Ports go up from a random start per host (as Linux's per-destination
	// offsets do), never reused within a capture's reach.
	if g.ports[host] == 0 {
		g.ports[host] = uint16(32768 + rng.IntN(28000))
	}
	f.cport = g.ports[host]
	g.ports[host]++
	if g.ports[host] > 60999 {
		g.ports[host] = 32768
	}
	// One TCP clock per client and server address pair (as Linux's
	// per-destination TS offsets): such sources are clocked and never go
	// backwards, so ts_regression must stay silent on them.
	f.ctsOff = uint32(splitmix(g.mix ^ uint64(host)<<20 ^ uint64(srv)))
	f.stsOff = uint32(splitmix(g.mix ^ uint64(srv)<<40 ^ uint64(host)))
	g.st.Flows++
	bc := &baseConn{
		k:         tcb{f: f, cseq: rng.Uint32(), sseq: rng.Uint32()},
		pt:        newPath(rng, g.o.LossRate),
		exchanges: 1 + rng.IntN(g.o.Exchanges),
		at:        t,
		maxResp:   g.o.MaxResponse,
		think:     int64(g.o.ThinkMax),
	}
	switch x := rng.IntN(100); {
	case x < 58:
		bc.close = closeClient
	case x < 98:
		bc.close = closeServer
	default:
		bc.close = closeReset
	}
	return bc
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (g *gen) write(p *pkt) error {
	var wire int
	g.buf, wire = frame(g.buf, p, g.o.Snaplen)
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.t), CaptureLength: len(g.buf), Length: wire}
	var err error
	if g.ng != nil {
		err = g.ng.WritePacket(ci, g.buf)
	} else {
		err = g.pw.WritePacket(ci, g.buf)
	}
	if g.st.Packets == 0 {
		g.st.First = p.t
	}
	g.st.Packets++
	g.st.Bytes += int64(wire)
	g.st.Last = p.t
	return err
}
