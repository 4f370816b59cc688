package flowtable

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

const sec = int64(time.Second)

// recorder is a Handler that logs what the table told it.
type recorder struct {
	timeouts []timeoutCall
	evicted  []evictCall
	previous []previousCall
}

type previousCall struct {
	port uint16 // client port
	prev Prev
}

type timeoutCall struct {
	id uint64
	at int64
}

type evictCall struct {
	port  uint16 // client port
	why   Evict
	stage Stage
}

func (r *recorder) HandshakeTimeout(c *Conn, at, _ int64) {
	r.timeouts = append(r.timeouts, timeoutCall{c.ID, at})
}

func (r *recorder) Previous(c *Conn, p Prev) {
	_, port := c.ClientAddr()
	r.previous = append(r.previous, previousCall{port, p})
}

func (r *recorder) Evicted(c *Conn, why Evict, now int64) {
	_, p := c.ClientAddr()
	r.evicted = append(r.evicted, evictCall{p, why, c.Stage})
}

func v4(a, b, c, d byte) (x [16]byte) {
	x[0], x[1], x[2], x[3] = a, b, c, d
	return x
}

var (
	cli = v4(10, 0, 0, 1)
	srv = v4(10, 0, 0, 2)
)

// seg builds a decoded IPv4 TCP segment.
func seg(src [16]byte, sport uint16, dst [16]byte, dport uint16, flags uint8, seq, ack uint32, n int) decode.Packet {
	return decode.Packet{Family: 4, Src: src, Dst: dst, SrcPort: sport, DstPort: dport,
		Flags: flags, Seq: seq, Ack: ack, PayloadLen: n, Window: 64240}
}

const (
	S  = decode.FlagSYN
	A  = decode.FlagACK
	R  = decode.FlagRST
	F  = decode.FlagFIN
	P  = decode.FlagPSH
	SA = S | A
	RA = R | A
	FA = F | A
	PA = P | A
)

func newTable(t *testing.T, capacity int) (*Table, *recorder) {
	t.Helper()
	r := &recorder{}
	tb, err := New(Config{Capacity: capacity, Seed: 1}, r)
	if err != nil {
		t.Fatal(err)
	}
	return tb, r
}

func TestKeySymmetric(t *testing.T) {
	p := seg(cli, 40000, srv, 80, S, 1, 0, 0)
	q := seg(srv, 80, cli, 40000, SA, 9, 2, 0)
	p.VLAN[0], q.VLAN[0] = 100, 100
	k1, a1 := KeyOf(&p)
	k2, a2 := KeyOf(&q)
	if k1 != k2 || a1 == a2 {
		t.Fatalf("keys differ or same direction: %+v %v / %+v %v", k1, a1, k2, a2)
	}
	h := NewHasher(7)
	if h.Sum(&k1) != h.Sum(&k2) {
		t.Fatal("hash not symmetric")
	}
	q.VLAN[0] = 101
	k3, _ := KeyOf(&q)
	if k3 == k1 || h.Sum(&k3) == h.Sum(&k1) {
		t.Fatal("VLAN is not part of the key")
	}
	// Same address, ports decide the order.
	p2 := seg(cli, 80, cli, 40000, S, 1, 0, 0)
	q2 := seg(cli, 40000, cli, 80, SA, 1, 0, 0)
	k4, b4 := KeyOf(&p2)
	k5, b5 := KeyOf(&q2)
	if k4 != k5 || b4 == b5 {
		t.Fatal("same-address key not canonical")
	}
}

func TestHandshakeAndClose(t *testing.T) {
	tb, r := newTable(t, 16)
	steps := []struct {
		p    decode.Packet
		want Seg
	}{
		{seg(cli, 40000, srv, 80, S, 1000, 0, 0), SegFromClient | SegNew | SegSYN},
		{seg(srv, 80, cli, 40000, SA, 5000, 1001, 0), SegSYNACK},
		{seg(cli, 40000, srv, 80, A, 1001, 5001, 0), SegFromClient | SegHandshakeAck},
		{seg(cli, 40000, srv, 80, PA, 1001, 5001, 100), SegFromClient | SegData},
		{seg(srv, 80, cli, 40000, PA, 5001, 1101, 300), SegData},
		{seg(srv, 80, cli, 40000, PA, 5001, 1101, 300), SegDataRetrans},
		{seg(cli, 40000, srv, 80, FA, 1101, 5301, 0), SegFromClient | SegFIN},
		{seg(srv, 80, cli, 40000, FA, 5301, 1102, 0), SegFIN},
		{seg(cli, 40000, srv, 80, A, 1102, 5302, 0), SegFromClient},
	}
	var c *Conn
	for i, s := range steps {
		var got Seg
		c, got = tb.Packet(&s.p, int64(i+1)*1000)
		if got != s.want {
			t.Fatalf("step %d: seg %b, want %b", i, got, s.want)
		}
	}
	if c.Stage != StageClosed || c.Midstream {
		t.Fatalf("stage %d midstream %v", c.Stage, c.Midstream)
	}
	cs, ss := &c.Side[Client], &c.Side[Server]
	if cs.ISN != 1000 || ss.ISN != 5000 || cs.NextSeq != 1102 || ss.NextSeq != 5302 ||
		cs.MaxAck != 5302 || ss.MaxAck != 1102 || ss.Retrans != 1 || !cs.Has(SideFIN) || !ss.Has(SideFIN) ||
		cs.Pkts != 5 || ss.Pkts != 4 {
		t.Fatalf("sides: %+v %+v", *cs, *ss)
	}
	if h, n := c.History(); string(h[:n]) != "ShADdtFf" {
		got := string(h[:n])
		t.Fatalf("history %q", got)
	}
	if c.SynTS != 1000 || c.EstTS != 3000 || c.FirstDataTS != 4000 || c.EndTS != 7000 {
		t.Fatalf("times %d %d %d %d", c.SynTS, c.EstTS, c.FirstDataTS, c.EndTS)
	}
	if c.TimerArmed() {
		t.Fatal("timer still armed after SYN/ACK")
	}
	if len(r.timeouts) != 0 || len(r.evicted) != 0 {
		t.Fatalf("unexpected handler calls %v %v", r.timeouts, r.evicted)
	}
}

func TestRefusedAndTimeout(t *testing.T) {
	tb, r := newTable(t, 16)
	p := seg(cli, 40001, srv, 7211, S, 77, 0, 0)
	tb.Packet(&p, 10*sec)
	q := seg(srv, 7211, cli, 40001, RA, 0, 78, 0)
	_, got := tb.Packet(&q, 10*sec+100)
	if !got.Has(SegRSTToSYN | SegRST) {
		t.Fatalf("RST/ACK to SYN not flagged: %b", got)
	}
	// A RST/ACK with the wrong ack is not an answer to the SYN.
	p = seg(cli, 40002, srv, 7211, S, 500, 0, 0)
	tb.Packet(&p, 11*sec)
	q = seg(srv, 7211, cli, 40002, RA, 0, 999, 0)
	if _, got = tb.Packet(&q, 11*sec+1); got.Has(SegRSTToSYN) {
		t.Fatal("RST with wrong ack flagged as refusal")
	}
	// Unanswered SYN: retransmissions, then the timer fires at SYN + 3 s.
	p = seg(cli, 40003, srv, 9090, S, 1, 0, 0)
	c, _ := tb.Packet(&p, 20*sec)
	id := c.ID
	if _, got = tb.Packet(&p, 21*sec); got != SegFromClient|SegSYNRetrans {
		t.Fatalf("retransmitted SYN: %b", got)
	}
	tb.Advance(23*sec - 1)
	if len(r.timeouts) != 0 {
		t.Fatal("timer fired early")
	}
	tb.Advance(23 * sec)
	if len(r.timeouts) != 1 || r.timeouts[0] != (timeoutCall{id, 23 * sec}) {
		t.Fatalf("timeouts %+v", r.timeouts)
	}
}

func TestIdleEviction(t *testing.T) {
	tb, r := newTable(t, 16)
	half := seg(cli, 40001, srv, 80, S, 1, 0, 0)
	tb.Packet(&half, 0)
	mid := seg(cli, 40002, srv, 80, PA, 1, 1, 10) // midstream: established
	tb.Packet(&mid, 0)
	rst := seg(cli, 40003, srv, 80, RA, 1, 1, 0) // midstream RST: closed
	tb.Packet(&rst, 0)
	tb.Advance(10*sec - 1)
	if len(r.evicted) != 0 {
		t.Fatalf("evicted too early: %+v", r.evicted)
	}
	tb.Advance(10 * sec)
	tb.Advance(30 * sec)
	tb.Advance(300 * sec)
	want := []evictCall{{40003, EvictIdle, StageClosed}, {40001, EvictIdle, StageSynSent}, {40002, EvictIdle, StageEstablished}}
	if len(r.evicted) != len(want) {
		t.Fatalf("evicted %+v", r.evicted)
	}
	for i := range want {
		if r.evicted[i] != want[i] {
			t.Fatalf("eviction %d: %+v, want %+v", i, r.evicted[i], want[i])
		}
	}
	if st := tb.Stats(); st.Active != 0 || st.EvictedIdle != 3 || st.Created != 3 {
		t.Fatalf("stats %+v", st)
	}
	// The SYN's pending timer fired (at its deadline) before eviction.
	if len(r.timeouts) != 1 || r.timeouts[0].at != 3*sec {
		t.Fatalf("timeouts %+v", r.timeouts)
	}
}

func TestBusyFlowNotEvicted(t *testing.T) {
	tb, r := newTable(t, 4)
	p := seg(cli, 1, srv, 80, PA, 1, 1, 10)
	for ts := int64(0); ts <= 20*60*sec; ts += 30 * sec {
		p.Seq += 10
		tb.Packet(&p, ts)
	}
	if len(r.evicted) != 0 {
		t.Fatalf("busy flow evicted: %+v", r.evicted)
	}
	tb.Advance(20*60*sec + 5*60*sec + relinkGranularity)
	if len(r.evicted) != 1 {
		t.Fatalf("idle flow not evicted: %+v", r.evicted)
	}
}

func TestFullTableEvictsOldestDeterministically(t *testing.T) {
	run := func() []evictCall {
		tb, r := newTable(t, 8)
		for i := 0; i < 20; i++ {
			p := seg(cli, uint16(1000+i), srv, 80, PA, 1, 1, 10)
			tb.Packet(&p, int64(i)*sec)
			// Keep flow 1000 busy: it must never be the oldest.
			k := seg(cli, 1000, srv, 80, PA, uint32(i), 1, 10)
			tb.Packet(&k, int64(i)*sec)
		}
		if st := tb.Stats(); st.Active != 8 || st.EvictedFull != 12 {
			t.Fatalf("stats %+v", st)
		}
		return r.evicted
	}
	a, b := run(), run()
	if len(a) != 12 {
		t.Fatalf("evicted %d", len(a))
	}
	for i := range a {
		want := evictCall{uint16(1001 + i), EvictFull, StageEstablished}
		if a[i] != want || b[i] != a[i] {
			t.Fatalf("eviction %d: %+v / %+v, want %+v", i, a[i], b[i], want)
		}
	}
}

// TestChurnAgainstModel drives inserts and idle evictions through a small
// table and checks every flow against a model of the timeouts after each
// step, which exercises backward-shift deletion across wrapped clusters.
func TestChurnAgainstModel(t *testing.T) {
	tb, r := newTable(t, 128)
	rng := rand.New(rand.NewPCG(1, 2))
	const ports = 100
	est := int64(DefaultEstablished)
	last := map[uint16]int64{} // client port -> last packet time
	now := int64(0)
	most := 0 // the model's most flows at once
	for step := 0; step < 6000; step++ {
		if rng.IntN(300) == 0 {
			now += est/2 + int64(rng.IntN(int(est))) // a quiet spell: many flows go idle
		} else {
			now += int64(rng.IntN(int(sec)))
		}
		port := uint16(40000 + rng.IntN(ports)*rng.IntN(ports)/ports) // skewed
		p := seg(cli, port, srv, 80, PA, uint32(step), 1, 1)
		tb.Packet(&p, now)
		last[port] = now
		for q := uint16(40000); q < 40000+ports; q++ {
			pk := seg(cli, q, srv, 80, PA, 0, 0, 0)
			k, _ := KeyOf(&pk)
			c := tb.Lookup(&k)
			ts, seen := last[q]
			switch {
			case seen && now-ts < est && c == nil:
				t.Fatalf("step %d: port %d idle %d ns lost", step, q, now-ts)
			case seen && now-ts >= est+relinkGranularity && c != nil:
				t.Fatalf("step %d: port %d idle %d ns not evicted", step, q, now-ts)
			case c != nil && c.Key != k:
				t.Fatal("lookup returned the wrong key")
			}
			if c == nil {
				delete(last, q)
			}
		}
		most = max(most, len(last))
	}
	st := tb.Stats()
	if st.EvictedFull != 0 || st.EvictedIdle == 0 || int(st.Created)-int(st.EvictedIdle) != st.Active || st.Active != len(last) {
		t.Fatalf("stats %+v, model %d", st, len(last))
	}
	if st.Peak != most || most == len(last) {
		t.Fatalf("peak %d, the model's most %d (now %d)", st.Peak, most, len(last))
	}
	if uint64(len(r.evicted)) != st.EvictedIdle {
		t.Fatalf("%d evictions reported, %d counted", len(r.evicted), st.EvictedIdle)
	}
}

func TestPortReuse(t *testing.T) {
	tb, r := newTable(t, 8)
	pk := []decode.Packet{
		seg(cli, 5000, srv, 80, S, 100, 0, 0),
		seg(srv, 80, cli, 5000, SA, 900, 101, 0),
		seg(cli, 5000, srv, 80, A, 101, 901, 0),
		seg(cli, 5000, srv, 80, FA, 101, 901, 0),
		seg(srv, 80, cli, 5000, FA, 901, 102, 0),
		seg(cli, 5000, srv, 80, A, 102, 902, 0),
	}
	var first uint64
	for i := range pk {
		c, _ := tb.Packet(&pk[i], int64(i)*1000)
		first = c.ID
	}
	again := seg(cli, 5000, srv, 80, S, 777, 0, 0)
	c, got := tb.Packet(&again, sec)
	if !got.Has(SegNew|SegSYN) || c.ID == first || c.Side[Client].ISN != 777 || c.Stage != StageSynSent {
		t.Fatalf("reuse: seg %b id %d/%d stage %d", got, c.ID, first, c.Stage)
	}
	if len(r.evicted) != 1 || r.evicted[0].why != EvictReused {
		t.Fatalf("evicted %+v", r.evicted)
	}
	if st := tb.Stats(); st.Reused != 1 || st.Created != 2 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMidstreamOrientation(t *testing.T) {
	tb, _ := newTable(t, 8)
	p := seg(srv, 443, cli, 51000, PA, 1, 1, 100) // server speaks first
	c, got := tb.Packet(&p, 0)
	if !got.Has(SegMidstream) || got.Has(SegFromClient) {
		t.Fatalf("seg %b", got)
	}
	if _, port := c.ServerAddr(); port != 443 {
		t.Fatalf("server port %d", port)
	}
	if !c.Midstream || c.Stage != StageEstablished {
		t.Fatal("not midstream established")
	}
}

func TestSeqWraparound(t *testing.T) {
	a := Seq(0xfffffff0)
	b := a.Add(0x20)
	if !a.LessThan(b) || b.LessThan(a) || !b.InRange(a, b.Add(1)) || a.Distance(b) != 0x20 {
		t.Fatal("wraparound")
	}
	tb, _ := newTable(t, 4)
	p := seg(cli, 1, srv, 80, S, 0xfffffff0, 0, 0)
	tb.Packet(&p, 0)
	d := seg(cli, 1, srv, 80, PA, 0xfffffff1, 0, 0x40)
	c, got := tb.Packet(&d, 1)
	if !got.Has(SegData) || c.Side[Client].NextSeq != 0x31 {
		t.Fatalf("seg %b next %x", got, c.Side[Client].NextSeq)
	}
	if _, got = tb.Packet(&d, 2); !got.Has(SegDataRetrans) {
		t.Fatalf("retransmission across wrap not seen: %b", got)
	}
}

func TestFlushFiresTimersThenEvicts(t *testing.T) {
	tb, r := newTable(t, 8)
	p := seg(cli, 40001, srv, 9090, S, 1, 0, 0)
	tb.Packet(&p, 5*sec)
	q := seg(cli, 40002, srv, 80, PA, 1, 1, 5)
	tb.Packet(&q, 6*sec)
	tb.Flush()
	if len(r.timeouts) != 1 || r.timeouts[0].at != 5*sec {
		t.Fatalf("timeouts %+v", r.timeouts)
	}
	if len(r.evicted) != 2 || r.evicted[0].port != 40001 || r.evicted[1].port != 40002 || r.evicted[0].why != EvictFlush {
		t.Fatalf("evicted %+v", r.evicted)
	}
	if st := tb.Stats(); st.Active != 0 || st.Flushed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCapacityBounds(t *testing.T) {
	if _, err := New(Config{Capacity: -1}, &recorder{}); err == nil {
		t.Fatal("negative capacity accepted")
	}
	if _, err := New(Config{Capacity: MaxCapacity + 1}, &recorder{}); err == nil {
		t.Fatal("huge capacity accepted")
	}
}

type nopHandler struct{}

func (nopHandler) HandshakeTimeout(*Conn, int64, int64) {}
func (nopHandler) Evicted(*Conn, Evict, int64)          {}
func (nopHandler) Previous(*Conn, Prev)                 {}

func TestPacketAllocatesNothing(t *testing.T) {
	tb, err := New(Config{Capacity: 128, Seed: 3}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	pk := []decode.Packet{
		seg(cli, 1, srv, 80, S, 1, 0, 0),
		seg(srv, 80, cli, 1, SA, 9, 2, 0),
		seg(cli, 1, srv, 80, A, 2, 10, 0),
		seg(cli, 1, srv, 80, PA, 2, 10, 50),
		seg(srv, 80, cli, 1, RA, 10, 52, 0),
	}
	ts := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range pk {
			ts += 1e6
			pk[i].SrcPort++ // new flows keep coming: the table fills and evicts
			tb.Packet(&pk[i], ts)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// whenRecorder logs the time of everything the table reports.
type whenRecorder struct{ whens []int64 }

func (r *whenRecorder) HandshakeTimeout(_ *Conn, _, when int64) { r.whens = append(r.whens, when) }
func (r *whenRecorder) Evicted(_ *Conn, _ Evict, when int64)    { r.whens = append(r.whens, when) }
func (r *whenRecorder) Previous(*Conn, Prev)                    {}

// TestHorizon: nothing the table reports after a call to Horizon is dated
// before what it returned, while the clock may be ahead of such reports.
func TestHorizon(t *testing.T) {
	// The case Horizon exists for: a connection linked at 0 with its last
	// packet at 0.9 s (not re-linked) leaves idle at 0.9 s + timeout, a
	// deadline the clock may already have passed.
	r := &whenRecorder{}
	tb, err := New(Config{Capacity: 16, Seed: 1}, r)
	if err != nil {
		t.Fatal(err)
	}
	p := seg(cli, 1, srv, 80, PA, 1, 1, 10)
	tb.Packet(&p, 0)
	p.Seq += 10
	tb.Packet(&p, 900*int64(time.Millisecond))
	to := int64(DefaultEstablished)
	tb.Advance(to + 500*int64(time.Millisecond))
	if h := tb.Horizon(); h != to {
		t.Fatalf("horizon %d, want %d (the head's link time plus its timeout)", h, to)
	}
	tb.Advance(to + 950*int64(time.Millisecond))
	if len(r.whens) != 1 || r.whens[0] != to+900*int64(time.Millisecond) {
		t.Fatalf("reports at %v, want one at %d", r.whens, to+900*int64(time.Millisecond))
	}
	if h := tb.Horizon(); h != tb.Now() {
		t.Fatalf("empty table: horizon %d, clock %d", h, tb.Now())
	}

	// At random: many flows, idle and busy, short timeouts.
	rng := rand.New(rand.NewPCG(7, 9))
	for round := 0; round < 20; round++ {
		r := &whenRecorder{}
		tb, err := New(Config{Capacity: 64, Seed: uint64(round), HalfOpen: 2 * time.Second, Established: 3 * time.Second, Closed: time.Second, Handshake: time.Second}, r)
		if err != nil {
			t.Fatal(err)
		}
		var ts, horizon int64
		below := 0
		for i := 0; i < 5000; i++ {
			ts += rng.Int64N(int64(200 * time.Millisecond))
			flags := []uint8{S, SA, A, PA, FA, R}[rng.IntN(6)]
			p := seg(cli, uint16(1+rng.IntN(100)), srv, 80, flags, rng.Uint32(), rng.Uint32(), rng.IntN(2)*10)
			if rng.IntN(2) == 0 {
				p = seg(srv, 80, cli, p.SrcPort, flags, rng.Uint32(), rng.Uint32(), 0)
			}
			n := len(r.whens)
			if rng.IntN(10) == 0 {
				tb.Advance(ts)
			} else {
				tb.Packet(&p, ts)
			}
			for _, w := range r.whens[n:] {
				if w < horizon {
					t.Fatalf("round %d step %d: reported at %d, before the horizon %d given earlier", round, i, w, horizon)
				}
				if w < tb.Now() {
					below++
				}
			}
			horizon = tb.Horizon()
			if horizon < tb.Now()-WhenSlack {
				t.Fatalf("round %d step %d: horizon %d more than WhenSlack behind the clock %d", round, i, horizon, tb.Now())
			}
		}
		if below == 0 {
			t.Fatalf("round %d: no report dated before the clock: the test does not exercise the horizon", round)
		}
	}
}

// TestPortReuseKeepsPrev: a SYN that reuses a 4-tuple the table still
// holds hands the old connection's end on at once (Handler.Previous), and
// once only: however many other connections end before the server
// answers with its TIME_WAIT ACK. It once went through the table's small
// memory of ended connections, where another reuse of a 4-tuple with the
// same slot overwrote it: a port_reuse_rejected went unreported in one
// replay of 24.
func TestPortReuseKeepsPrev(t *testing.T) {
	tb, r := newTable(t, 64)
	// Enough reuses of 4-tuples in 5000's set of that memory to push
	// 5000's end out of it.
	others := sameRecentSet(t, tb, 5000, recentWays)
	var ts int64
	closed := func(port uint16) int64 {
		for _, p := range []decode.Packet{
			seg(cli, port, srv, 80, S, 100, 0, 0),
			seg(srv, 80, cli, port, SA, 900, 101, 0),
			seg(cli, port, srv, 80, A, 101, 901, 0),
			seg(srv, 80, cli, port, FA, 901, 101, 0),
			seg(cli, port, srv, 80, FA, 101, 902, 0),
			seg(srv, 80, cli, port, A, 902, 102, 0),
		} {
			ts += 1000
			tb.Packet(&p, ts)
		}
		return ts
	}
	end := closed(5000)
	for _, port := range others {
		closed(port)
	}
	ts += sec / 3
	synAt := ts
	for _, port := range append([]uint16{5000}, others...) {
		p := seg(cli, port, srv, 80, S, 50, 0, 0)
		tb.Packet(&p, ts)
		ts += 1000
	}
	ack := seg(srv, 80, cli, 5000, A, 902, 102, 0)
	c, got := tb.Packet(&ack, ts)
	if !got.Has(SegAckToSYN) || c.SynTS != synAt {
		t.Fatalf("seg %b, SYN at %d: want the ACK to the SYN of %d", got, c.SynTS, synAt)
	}
	var told []Prev
	for _, pc := range r.previous {
		if pc.port == 5000 {
			told = append(told, pc.prev)
		}
	}
	if len(told) != 1 || told[0].EndTS != end-2000 { // the server's FIN
		t.Fatalf("told %+v of 5000's previous connection, want once, ended at %d (its first FIN)", told, end-2000)
	}
}

// sameRecentSet returns n client ports other than port whose 4-tuples
// (cli:port to srv:80) share port's set in tb's memory of ended
// connections.
func sameRecentSet(t *testing.T, tb *Table, port uint16, n int) []uint16 {
	t.Helper()
	set := func(port uint16) *recentConn {
		p := seg(cli, port, srv, 80, S, 0, 0, 0)
		var pr Probe
		tb.Probe(&p, &pr)
		return &tb.recentSet(pr.hash)[0]
	}
	var out []uint16
	for o := port + 1; o != 0 && len(out) < n; o++ {
		if set(o) == set(port) {
			out = append(out, o)
		}
	}
	if len(out) < n {
		t.Fatalf("%d ports share %d's set, want %d", len(out), port, n)
	}
	return out
}

// TestRecentSets: the memory of ended connections keeps the latest
// recentWays ends of 4-tuples that share a set (direct-mapped, it kept
// only the last), forgets the oldest first, and matches the client too.
func TestRecentSets(t *testing.T) {
	tb, _ := newTable(t, 64)
	ports := append([]uint16{7000}, sameRecentSet(t, tb, 7000, recentWays)...)
	conn := func(port uint16) (*Conn, uint64) {
		p := seg(cli, port, srv, 80, S, 0, 0, 0)
		var pr Probe
		tb.Probe(&p, &pr)
		return &Conn{Key: pr.key, ClientIsA: pr.fromA}, pr.hash
	}
	remember := func(port uint16, end int64) {
		c, h := conn(port)
		tb.rememberPrev(h, c.ClientIsA, Prev{EndTS: end})
	}
	for i, port := range ports[:recentWays] {
		remember(port, int64(i+1))
	}
	c, _ := conn(ports[0])
	c.ClientIsA = !c.ClientIsA // the same 4-tuple, the other way round
	if _, ok := tb.recall(c); ok {
		t.Fatal("recalled with the other endpoint as client")
	}
	remember(ports[recentWays], recentWays+1) // the oldest, ports[0], goes
	for i, port := range ports {
		c, _ := conn(port)
		p, ok := tb.recall(c)
		if want := i > 0; ok != want || ok && p.EndTS != int64(i+1) {
			t.Errorf("port %d (ended at %d): recalled %v, %+v; want %v", port, i+1, ok, p, want)
		}
		if _, again := tb.recall(c); again {
			t.Errorf("port %d: recalled twice", port)
		}
	}
}
