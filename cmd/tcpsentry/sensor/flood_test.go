package sensor

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/ring"
)

// The SYN flood: SYNs from distinct random sources (one new connection
// each) to one silent server, 100,000 a second, into a worker whose table
// holds 2^16 connections; meanwhile four established connections
// exchange a request and a response every 2 s and close at the end, and
// one connection is refused. See TestSynFlood.
const (
	floodEvery    = int64(10_000) // ns between flood SYNs: 100,000 a second
	floodCapacity = 1 << 16
	floodEst      = 4
	floodStart    = int64(1_800_000_000e9)
	floodWarm     = 150_000 // flood SYNs before the memory is measured
)

// floodAddr is the source of flood SYN i: distinct for i below 2^24,
// spread over 11.0.0.0/8 (an odd multiplier permutes 24 bits), and a port.
func floodAddr(i int) (addr uint32, port uint16) {
	return 11<<24 | uint32(i)*0x9e3779b1&0xffffff, uint16(1024 + i*7919%60000)
}

// tcpFrame builds an Ethernet/IPv4/TCP frame with flags and n bytes of
// payload (frame's helper, with FIN, PSH and a payload).
func tcpFrame(t *testing.T, src, dst string, sp, dp uint16, flags uint8, seq, ack uint32, n int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: ack, Window: 64240,
		FIN: flags&0x01 != 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0, PSH: flags&0x08 != 0, ACK: flags&0x10 != 0}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(make([]byte, n))); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// timedFrame is one frame of the traffic beside the flood.
type timedFrame struct {
	ts int64
	f  []byte
}

// floodOthers is the traffic beside a flood of d ns: the established
// connections and the refused one, in time order, and how many segments
// each established client and server sends.
func floodOthers(t *testing.T, d int64) (fr []timedFrame, cliPkts, srvPkts uint32, cliBytes, srvBytes uint64) {
	const (
		srv = "10.0.0.5"
		fin = 0x01
		syn = 0x02
		rst = 0x04
		psh = 0x08
		ack = 0x10
	)
	exchanges := int(d / 2e9)
	for c := range floodEst {
		cl := "192.0.2." + string(rune('1'+c))
		sp := uint16(50000 + c)
		at := floodStart - 10e6 + int64(c)*1e6 // just before the flood
		add := func(dt int64, fromClient bool, flags uint8, seq, ackn uint32, n int) {
			at += dt
			if fromClient {
				fr = append(fr, timedFrame{at, tcpFrame(t, cl, srv, sp, 80, flags, seq, ackn, n)})
			} else {
				fr = append(fr, timedFrame{at, tcpFrame(t, srv, cl, 80, sp, flags, seq, ackn, n)})
			}
		}
		cs, ss := uint32(1000), uint32(9000)
		add(0, true, syn, cs, 0, 0)
		add(1e5, false, syn|ack, ss, cs+1, 0)
		add(1e5, true, ack, cs+1, ss+1, 0)
		cs, ss = cs+1, ss+1
		for range exchanges {
			add(2e9-2e5, true, psh|ack, cs, ss, 100)
			add(1e5, false, psh|ack, ss, cs+100, 300)
			add(1e5, true, ack, cs+100, ss+300, 0)
			cs, ss = cs+100, ss+300
		}
		at = floodStart + d // after the flood's last SYN
		add(int64(c)*1e6, true, fin|ack, cs, ss, 0)
		add(1e5, false, fin|ack, ss, cs+1, 0)
		add(1e5, true, ack, cs+1, ss+1, 0)
		cliPkts, srvPkts = uint32(2+2*exchanges+2), uint32(1+exchanges+1)
		cliBytes, srvBytes = uint64(100*exchanges), uint64(300*exchanges)
	}
	// Refused, a quarter into the flood.
	at := floodStart + d/4
	fr = append(fr, timedFrame{at, tcpFrame(t, "198.51.100.7", "10.0.0.6", 40000, 7211, syn, 7000, 0, 0)},
		timedFrame{at + 1e6, tcpFrame(t, "10.0.0.6", "198.51.100.7", 7211, 40000, rst|ack, 0, 7001, 0)})
	for i := 1; i < len(fr); i++ { // insertion sort: few frames
		for j := i; j > 0 && fr[j].ts < fr[j-1].ts; j-- {
			fr[j], fr[j-1] = fr[j-1], fr[j]
		}
	}
	return fr, cliPkts, srvPkts, cliBytes, srvBytes
}

// floodSource is a ring.Source that makes the flood as the worker reads
// it: SYN i is a template frame with its source address and port
// written in, into buffers reused from batch to batch (the worker is done
// with a batch when it asks for the next), so the capture costs no
// memory however long it is.
type floodSource struct {
	n, i   int // flood SYNs in all, and made so far
	others []timedFrame
	o      int
	bufs   [][]byte
	// at is called once the flood SYN count reaches at.n.
	at struct {
		n int
		f func()
	}
}

func newFloodSource(t *testing.T, n int, others []timedFrame) *floodSource {
	tmpl := frame(t, "11.0.0.1", "10.0.0.9", 1024, 80, true, false, false, 1, 0)
	s := &floodSource{n: n, others: others, bufs: make([][]byte, replayBatch)}
	for i := range s.bufs {
		s.bufs[i] = bytes.Clone(tmpl)
	}
	return s
}

func (s *floodSource) NextBatch(b *ring.Batch) error {
	b.N = 0
	b.Link = ring.LinkTypeEthernet
	for b.N < len(b.Frames) && (s.i < s.n || s.o < len(s.others)) {
		ts := floodStart + int64(s.i)*floodEvery
		if s.o < len(s.others) && (s.i == s.n || s.others[s.o].ts <= ts) {
			b.Frames[b.N], b.TS[b.N], b.WireLen[b.N] = s.others[s.o].f, s.others[s.o].ts, len(s.others[s.o].f)
			s.o++
		} else {
			f := s.bufs[b.N]
			addr, port := floodAddr(s.i)
			binary.BigEndian.PutUint32(f[26:30], addr) // IPv4 source
			binary.BigEndian.PutUint16(f[34:36], port) // TCP source port
			b.Frames[b.N], b.TS[b.N], b.WireLen[b.N] = f, ts, len(f)
			s.i++
		}
		b.Clock = b.TS[b.N]
		b.N++
	}
	if s.at.f != nil && s.i >= s.at.n {
		s.at.f()
		s.at.f = nil
	}
	if b.N == 0 {
		return io.EOF
	}
	return nil
}

func (s *floodSource) Close() error { return nil }

// floodResult is what one flood did.
type floodResult struct {
	stats     flowtable.Stats // before the end-of-capture flush
	counts    [detectors.NumTypes]uint64
	limited   [detectors.NumTypes]uint64
	perSecond [64][detectors.NumTypes]int // events written, by second of capture time (At) since the start
	others    []detectors.Event           // events about anything but the flood
	ended     []flowtable.Conn            // the connections beside the flood, as they left the table
	floodEnds uint64
	// Allocated bytes and live heap after floodWarm flood SYNs and at
	// the flood's end.
	allocWarm, allocEnd uint64
	heapWarm, heapEnd   uint64
}

// runFlood runs a flood of n SYNs, with the traffic beside it, through
// one worker and the Correlator.
func runFlood(t *testing.T, n int, dcfg detectors.Config) *floodResult {
	r := &floodResult{others: make([]detectors.Event, 0, 64), ended: make([]flowtable.Conn, 0, 16)}
	others, _, _, _, _ := floodOthers(t, int64(n)*floodEvery)
	src := newFloodSource(t, n, others)
	cor := detectors.NewCorrelator(dcfg, 1, func(e *detectors.Event) {
		if s := (e.At - floodStart) / 1e9; s >= 0 && s < int64(len(r.perSecond)) {
			r.perSecond[s][e.Type]++
		}
		if e.Server.Addr != [16]byte{10, 0, 0, 9} && len(r.others) < cap(r.others) {
			r.others = append(r.others, *e)
		}
	})
	spare := detectors.NewBatch()
	tcfg := flowtable.Config{Capacity: floodCapacity, Seed: 5}
	w, err := newWorker(0, src, tcfg, dcfg, func(b *detectors.Batch) *detectors.Batch {
		if b == nil {
			return spare
		}
		cor.Add(b)
		b.Events, b.Facts = b.Events[:0], b.Facts[:0]
		return b
	}, func(_ int, c *flowtable.Conn) {
		if a, _ := c.ClientAddr(); a[0] == 11 {
			r.floodEnds++
		} else if len(r.ended) < cap(r.ended) {
			r.ended = append(r.ended, *c)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := ring.NewBatch(replayBatch)
	var ms runtime.MemStats
	measure := func(alloc, heap *uint64) {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		*alloc, *heap = ms.TotalAlloc, ms.HeapAlloc
	}
	src.at.n, src.at.f = floodWarm, func() { measure(&r.allocWarm, &r.heapWarm) }
	for src.NextBatch(batch) == nil {
		w.Process(batch)
	}
	measure(&r.allocEnd, &r.heapEnd)
	r.stats = w.flows.Stats()
	w.finish()
	cor.Finish()
	r.counts, r.limited = cor.Counts, cor.RateLimited
	runtime.KeepAlive(w)
	return r
}

// TestSynFlood: a SYN flood from random sources, a new connection per
// SYN, 100,000 a second into a table of 2^16 (full after 0.65 s), for 2 s
// and for 20 s (200,000 and 2,000,000 flows; under the race detector
// 200,000 only). What must hold, exactly:
//   - the table stays full and counts every eviction: evicted (full) =
//     created - capacity - evicted idle;
//   - the four established connections are tracked from SYN to FIN as
//     one connection each, every segment on it (not one evicted and
//     taken up again midstream), and stay silent;
//   - the refused connection in the flood is reported;
//   - each flood SYN makes one syn_unanswered, written or refused by the
//     rate limit: written + rate-limited = flood SYNs, and no second of
//     capture time has more than rate + burst of them; the flood's
//     failed_connection_rate gets through;
//   - nothing is allocated once the flood runs (after 150,000 SYNs): the
//     memory is what the table and the Correlator took at the start,
//     whether the flood brings 200,000 flows or 2,000,000.
func TestSynFlood(t *testing.T) {
	sizes := []int{200_000, 2_000_000}
	if raceEnabled || testing.Short() {
		sizes = sizes[:1]
	}
	dcfg := detectors.Config{}.Defaults()
	rate, burst := dcfg.EventRate, dcfg.EventBurst
	for _, n := range sizes {
		r := runFlood(t, n, detectors.Config{})
		d := int64(n) * floodEvery
		_, cliPkts, srvPkts, cliBytes, srvBytes := floodOthers(t, d)
		created := uint64(n + floodEst + 1)
		st := r.stats
		t.Logf("%d flood SYNs: %+v; syn_unanswered %d written, %d rate-limited; allocated %d bytes during the flood (after %d SYNs), live heap %d MB then %d MB",
			n, st, r.counts[detectors.TypeSynUnanswered], r.limited[detectors.TypeSynUnanswered],
			r.allocEnd-r.allocWarm, floodWarm, r.heapWarm>>20, r.heapEnd>>20)

		if st.Created != created || st.Active != floodCapacity || st.EvictedIdle > 1 ||
			st.EvictedFull != created-floodCapacity-st.EvictedIdle || st.Reused != 0 {
			t.Errorf("%d: table %+v; want %d created, %d active, %d evicted full", n, st, created, floodCapacity, created-floodCapacity-st.EvictedIdle)
		}
		if r.floodEnds != uint64(n) {
			t.Errorf("%d: %d flood connections ended", n, r.floodEnds)
		}
		est := 0
		for i := range r.ended {
			c := &r.ended[i]
			if a, _ := c.ClientAddr(); a[0] != 192 {
				continue
			}
			est++
			cl, sv := &c.Side[flowtable.Client], &c.Side[flowtable.Server]
			// Payload sent: the sequence space less the SYN and the FIN.
			cb, sb := uint64(cl.NextSeq-cl.ISN-2), uint64(sv.NextSeq-sv.ISN-2)
			if c.Midstream || c.Stage != flowtable.StageClosed || cl.Pkts != cliPkts || sv.Pkts != srvPkts ||
				cb != cliBytes || sb != srvBytes {
				t.Errorf("%d: established connection %v: stage %v, midstream %v, %d/%d segments, %d/%d bytes; want %d/%d, %d/%d",
					n, c.Key, c.Stage, c.Midstream, cl.Pkts, sv.Pkts, cb, sb, cliPkts, srvPkts, cliBytes, srvBytes)
			}
		}
		if est != floodEst {
			t.Errorf("%d: %d established connections ended, want %d (one each)", n, est, floodEst)
		}
		refused := 0
		for _, e := range r.others {
			switch {
			case e.Type == detectors.TypeConnectionRefused && e.Client.Addr == [16]byte{198, 51, 100, 7}:
				refused++
			default:
				t.Errorf("%d: event beside the flood: %s %v -> %v", n, e.Type, e.Client, e.Server)
			}
		}
		if refused != 1 {
			t.Errorf("%d: %d connection_refused, want 1", n, refused)
		}

		su := detectors.TypeSynUnanswered
		if r.counts[su]+r.limited[su] != uint64(n) || r.limited[su] == 0 {
			t.Errorf("%d: syn_unanswered %d written + %d rate-limited, want %d in all", n, r.counts[su], r.limited[su], n)
		}
		for ty := range detectors.NumTypes {
			if ty != su && r.limited[ty] != 0 {
				t.Errorf("%d: %d %s rate-limited", n, r.limited[ty], ty)
			}
		}
		if r.counts[detectors.TypeFailedConnectionRate] == 0 {
			t.Errorf("%d: no failed_connection_rate", n)
		}
		var secs []int
		for s := range r.perSecond {
			c := r.perSecond[s][su]
			if c > rate+burst {
				t.Errorf("%d: second %d: %d syn_unanswered, more than rate + burst = %d", n, s, c, rate+burst)
			}
			if int64(s) <= d/1e9 {
				secs = append(secs, c)
			}
		}
		t.Logf("%d: syn_unanswered written by second of capture time: %v", n, secs)
		// At most the burst and the rate over the flood; at least the
		// rate over all of it but its first second (the table fills).
		if w := r.counts[su]; w > uint64(burst)+uint64(rate)*uint64(d)/1e9 || w < uint64(rate)*uint64(d/1e9-1) {
			t.Errorf("%d: %d syn_unanswered written in %d s at %d a second, %d at once", n, w, d/1e9, rate, burst)
		}
		if grew := r.allocEnd - r.allocWarm; grew > 64<<10 {
			t.Errorf("%d: %d bytes allocated during the flood", n, grew)
		}
	}
}

// TestSynFloodSummary: through the whole pipeline (worker, publisher,
// JSON lines), the events refused by the rate limit are in the Summary
// and in the Observer's Snapshot (the metrics), by type, and the lines
// written are the events counted.
func TestSynFloodSummary(t *testing.T) {
	const n = 20_000 // 0.2 s of flood
	others, _, _, _, _ := floodOthers(t, n*floodEvery)
	src := newFloodSource(t, n, others)
	var obs Observer
	cfg := Config{Workers: 1, Flows: 4096, Observer: &obs, Detectors: detectors.Config{EventRate: 1000, EventBurst: 500}}
	cfg.defaults()
	var out bytes.Buffer
	p, err := newPipeline(cfg, []ring.Source{src}, &out, nil, replayReorder, replayBatch)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.run(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	sum, snap := p.summary(), obs.Snapshot()
	su := detectors.TypeSynUnanswered
	// The burst, and the rate over the flood and the end of the capture.
	most := uint64(500 + 1000*(n*floodEvery+1e9)/1e9)
	if sum.Events[su]+sum.RateLimited[su] != n || sum.Events[su] > most || sum.RateLimited[su] == 0 {
		t.Errorf("syn_unanswered: %d written, %d rate-limited; want %d in all, at most %d written", sum.Events[su], sum.RateLimited[su], n, most)
	}
	if snap.RateLimited != sum.RateLimited || snap.Events != sum.Events {
		t.Errorf("snapshot: %v written, %v rate-limited; summary %v, %v", snap.Events, snap.RateLimited, sum.Events, sum.RateLimited)
	}
	if lines := uint64(bytes.Count(out.Bytes(), []byte("\n"))); lines != sum.EventsTotal() {
		t.Errorf("%d lines for %d events", lines, sum.EventsTotal())
	}
}
