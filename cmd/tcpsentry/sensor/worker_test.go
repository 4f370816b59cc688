package sensor

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
	"github.com/tcpsentry/tcpsentry/ring"
)

// loadBatch reads a whole capture (maybe gzipped) into a batch of frames.
func loadBatch(t testing.TB, name string) *ring.Batch {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var in io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		if in, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	r, err := pcapgo.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	b := ring.NewBatch(4096)
	b.Link = ring.LinkType(r.LinkType())
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Frames[b.N], b.TS[b.N], b.WireLen[b.N] = data, ci.Timestamp.UnixNano(), ci.Length
		b.N++
	}
	return b
}

// withVLAN returns a copy of an Ethernet batch with the tags inserted
// after the MAC addresses of every frame.
func withVLAN(b *ring.Batch, tag ...byte) *ring.Batch {
	v := ring.NewBatch(b.N)
	v.Link, v.N = b.Link, b.N
	for i := 0; i < b.N; i++ {
		f := b.Frames[i]
		g := append(append(append([]byte{}, f[:12]...), tag...), f[12:]...)
		v.Frames[i], v.TS[i], v.WireLen[i] = g, b.TS[i], b.WireLen[i]+len(tag)
	}
	return v
}

// outerBeside marks every frame of b as having had an outer VLAN tag taken
// out by the capture, as a live ring reports it (TPID<<16 | TCI).
func outerBeside(b *ring.Batch, tag uint32) *ring.Batch {
	for i := 0; i < b.N; i++ {
		b.VLAN[i] = tag
		b.WireLen[i] += 4
	}
	return b
}

// TestOuterVLANBesideFrame: a tag the live ring passes beside the frame
// gives the same flows and events, VLAN ids included, as the same tag in
// the frame.
func TestOuterVLANBesideFrame(t *testing.T) {
	base := loadBatch(t, "../../../testdata/demo.pcap")
	inFrame := withVLAN(base, 0x88, 0xa8, 0x00, 200, 0x81, 0x00, 0x00, 100)
	beside := outerBeside(withVLAN(base, 0x81, 0x00, 0x00, 100), 0x88a8<<16|0xe000|200) // priority 7
	var want, got []detectors.Event
	for _, c := range []struct {
		b   *ring.Batch
		out *[]detectors.Event
	}{{inFrame, &want}, {beside, &got}} {
		w := newTestWorker(t, c.out)
		w.Process(c.b)
		w.finish()
		if w.stats.Bytes != uint64(sumWire(inFrame)) {
			t.Fatalf("%d bytes; want %d (the tag counts on the wire)", w.stats.Bytes, sumWire(inFrame))
		}
	}
	if len(want) == 0 {
		t.Fatal("no events")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tag beside the frame:\n%+v\ntag in the frame:\n%+v", got, want)
	}
	for _, e := range got {
		if e.NVLAN != 2 || e.VLAN != [2]uint16{200, 100} {
			t.Fatalf("event VLANs %d %v; want 200, 100", e.NVLAN, e.VLAN)
		}
	}
}

func sumWire(b *ring.Batch) (n int) {
	for i := 0; i < b.N; i++ {
		n += b.WireLen[i]
	}
	return n
}

func newTestWorker(t *testing.T, got *[]detectors.Event) *Worker {
	t.Helper()
	spare := detectors.NewBatch()
	w, err := newWorker(0, nil, flowtable.Config{Capacity: 4096, Seed: 5}, detectors.Config{},
		func(b *detectors.Batch) *detectors.Batch {
			if b == nil {
				return spare
			}
			*got = append(*got, b.Events...)
			b.Events, b.Facts = b.Events[:0], b.Facts[:0]
			return b
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// storyBatches is every detector's story in batches: real frames with
// handshakes, data, FIN, RST/ACK, unanswered SYNs, IPv6, VLAN and QinQ,
// Ethernet and Linux SLL2, laid out one after the other in packet time.
func storyBatches(t testing.TB) []*ring.Batch {
	batches := []*ring.Batch{
		loadBatch(t, "../../../testdata/demo.pcap"),
		loadBatch(t, "../../../testdata/refused_any.pcap"),
	}
	batches = append(batches,
		withVLAN(batches[0], 0x81, 0x00, 0x00, 100),                              // 802.1Q VLAN 100
		withVLAN(batches[0], 0x88, 0xa8, 0x00, 200, 0x81, 0x00, 0x00, 100),       // QinQ 200/100
		outerBeside(withVLAN(batches[0], 0x81, 0x00, 0x00, 100), 0x88a8<<16|300)) // QinQ 300/100 as a live ring hands it over
	// Every detector's story, so that every detector runs.
	for _, f := range []string{"seed000.pcap", "seed001.pcap", "defer_accept.pcap", "accept_overflow.pcap",
		"refused_rate.pcap", "rst_storm.pcap.gz"} {
		batches = append(batches, loadBatch(t, "../../../testdata/"+f))
	}
	// Packet time must not run backwards across the batches: lay the
	// captures out one after the other, 100 s apart.
	for k, b := range batches {
		base := batches[0].TS[0] + int64(k)*100e9 - b.TS[0]
		for i := 0; i < b.N; i++ {
			b.TS[i] += base
		}
	}
	return batches
}

// TestProcessAllocatesNothing: the whole per-packet path (decode, flow
// table, detectors, event emission) allocates nothing, over real frames
// with handshakes, data, FIN, RST/ACK, unanswered SYNs, IPv6, VLAN and
// QinQ, Ethernet and Linux SLL2.
func TestProcessAllocatesNothing(t *testing.T) {
	batches := storyBatches(t)
	var got []detectors.Event
	w := newTestWorker(t, &got)
	got = make([]detectors.Event, 0, 1<<16) // the sink's growth is not the worker's
	shift := int64(0)
	run := func() {
		for _, b := range batches {
			for i := 0; i < b.N; i++ {
				b.TS[i] += shift // every run is a new hour: new connections, same ports
			}
			w.Process(b)
			w.live.publish(w, b.Iface) // as run does after each batch
		}
		shift = 3600e9
	}
	run() // warm up
	if w.stats.Packets == 0 || len(got) == 0 {
		t.Fatalf("warm-up saw %d packets, %d events", w.stats.Packets, len(got))
	}
	for r, n := range w.stats.Drops {
		if n != 0 && decode.Reason(r) != decode.OK {
			t.Fatalf("%d decode drops (%s) on real frames", n, decode.Reason(r))
		}
	}
	// AllocsPerRun runs once more to warm up: 52 runs in all.
	if allocs := testing.AllocsPerRun(50, run); allocs != 0 {
		t.Fatalf("%v allocations per run of %d packets", allocs, w.stats.Packets/52)
	}
	var c [detectors.NumTypes]int
	for _, e := range got {
		c[e.Type]++
	}
	if c[detectors.TypeConnectionRefused] != 52*(1+3+1+1+20) || c[detectors.TypeSynUnanswered] != 52*(1+3+1+1+16) {
		t.Fatalf("%d refused, %d unanswered", c[detectors.TypeConnectionRefused], c[detectors.TypeSynUnanswered])
	}
	// Every per-connection detector fired (the others run in the
	// Correlator, from the facts the worker emitted).
	for ty := detectors.Type(1); ty < detectors.NumTypes; ty++ {
		switch ty {
		case detectors.TypeTSRegression, detectors.TypeFailedConnectionRate, detectors.TypeRstStorm:
			continue
		}
		// (Those that fire at a connection's end lag one run.)
		if c[ty] < 51 {
			t.Errorf("%s fired %d times in 52 runs", ty, c[ty])
		}
	}
}

// TestReplayWorkersAgree: the events of a replay do not depend on the
// number of workers, nor on whether the capture is read as a stream or
// from memory (frames handed on in place). Setup is a part of Elapsed.
func TestReplayWorkersAgree(t *testing.T) {
	data, err := os.ReadFile("../../../testdata/refused_any.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var sums []Summary
	for _, n := range []int{1, 2, 4} {
		for _, in := range []io.Reader{bytes.NewReader(data), ring.InMemory(data)} {
			var out bytes.Buffer
			s, err := Replay(context.Background(), in, Config{Workers: n, Flows: 1000}, &out)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Count(out.Bytes(), []byte("\n")); uint64(got) != s.EventsTotal() {
				t.Fatalf("%d lines for %d events", got, s.EventsTotal())
			}
			if s.Setup <= 0 || s.Setup >= s.Elapsed {
				t.Fatalf("setup %v of %v", s.Setup, s.Elapsed)
			}
			sums = append(sums, s)
		}
	}
	for _, s := range sums[1:] {
		if s.Events != sums[0].Events || s.Packets != sums[0].Packets || s.Flows.Created != sums[0].Flows.Created {
			t.Fatalf("workers=%d differs: %+v vs %+v", s.Workers, s, sums[0])
		}
	}
}

// TestCorrelatorAllocatesNothing: once its queues have grown to the
// traffic, the Correlator (cross-connection state, folding) allocates
// nothing either, though it is off the per-packet path.
func TestCorrelatorAllocatesNothing(t *testing.T) {
	var batches []*ring.Batch
	for _, f := range []string{"seed000.pcap", "seed001.pcap", "accept_overflow.pcap", "refused_rate.pcap", "rst_storm.pcap.gz"} {
		batches = append(batches, loadBatch(t, "../../../testdata/"+f))
	}
	for k, b := range batches {
		base := batches[0].TS[0] + int64(k)*100e9 - b.TS[0]
		for i := 0; i < b.N; i++ {
			b.TS[i] += base
		}
	}
	got := make([]detectors.Event, 0, 1<<16)
	cor := detectors.NewCorrelator(detectors.Config{}, 1, func(e *detectors.Event) { got = append(got, *e) })
	spare := detectors.NewBatch()
	w, err := newWorker(0, nil, flowtable.Config{Capacity: 4096, Seed: 5}, detectors.Config{},
		func(b *detectors.Batch) *detectors.Batch {
			if b == nil {
				return spare
			}
			cor.Add(b)
			b.Events, b.Facts = b.Events[:0], b.Facts[:0]
			return b
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := hourly(w, batches)
	for range 5 {
		run()
	}
	var types [detectors.NumTypes]int
	for _, e := range got {
		types[e.Type]++
	}
	for _, ty := range []detectors.Type{detectors.TypeTSRegression, detectors.TypeFailedConnectionRate, detectors.TypeRstStorm} {
		if types[ty] == 0 {
			t.Errorf("the Correlator never emitted %s", ty)
		}
	}
	if allocs := testing.AllocsPerRun(20, run); allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// TestProcessWays: tracking group by group, reading ahead, and switching
// between them batch by batch (as the tuning does) give the same events
// and counts, and none of them allocates.
func TestProcessWays(t *testing.T) {
	batches := storyBatches(t)
	var want []detectors.Event
	var wantStats WorkerStats
	for force, name := range []string{"", "group by group", "read ahead", "alternating"} {
		if force == 0 {
			continue
		}
		var got []detectors.Event
		w := newTestWorker(t, &got)
		w.tune.force = force
		// Split the batches so that switching happens inside a capture.
		for _, b := range batches {
			for lo := 0; lo < b.N; lo += 100 {
				w.Process(sliceBatch(b, lo, min(lo+100, b.N)))
			}
		}
		w.finish()
		if len(got) == 0 {
			t.Fatalf("%s: no events", name)
		}
		if force == 1 {
			want, wantStats = got, w.stats
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %d events differ from group by group's %d", name, len(got), len(want))
		}
		if w.stats != wantStats {
			t.Errorf("%s: stats %+v, group by group %+v", name, w.stats, wantStats)
		}
	}
	for _, force := range []int{2, 3} {
		var got []detectors.Event
		w := newTestWorker(t, &got)
		got = make([]detectors.Event, 0, 1<<16)
		w.tune.force = force
		run := hourly(w, batches)
		run()
		if allocs := testing.AllocsPerRun(10, run); allocs != 0 {
			t.Errorf("way %d: %v allocations per run", force, allocs)
		}
	}
}

// sliceBatch returns frames lo to hi of b as a batch of their own.
func sliceBatch(b *ring.Batch, lo, hi int) *ring.Batch {
	s := *b
	s.N = hi - lo
	s.Frames, s.TS, s.WireLen, s.VLAN = b.Frames[lo:hi], b.TS[lo:hi], b.WireLen[lo:hi], b.VLAN[lo:hi]
	if hi < b.N {
		s.Clock = 0
	}
	return &s
}

// TestModeTuner: after each round's trial the tuner keeps the way that
// was faster per packet for the rest of the round, and tries both again
// in the next round. One batch of the faster way that took far longer
// (the worker lost its CPU) does not decide.
func TestModeTuner(t *testing.T) {
	var m modeTuner
	for round, faster := range []int{1, 0, 1, 0} {
		ways := [2]int{}
		slow := 0 // the faster way's batches timed this round
		for range tuneRound {
			way, timed := m.way(true)
			if timed {
				// 100 packets; the slower way takes 1.5 times as long.
				ns := int64(1000)
				if way != faster {
					ns = 1500
				}
				if way == faster && round >= 2 && slow == 0 {
					ns = 1_000_000
				}
				if way == faster {
					slow++
				}
				m.timed(way, ns, 100)
			}
			ways[way]++
			m.done()
		}
		if want := tuneRound - tuneTrial/2; ways[faster] != want {
			t.Errorf("round %d: %d of %d batches the faster way %d, want %d", round, ways[faster], tuneRound, faster, want)
		}
	}
	if way, timed := m.way(false); way != 0 || timed {
		t.Errorf("below pipelineFlows: way %d, timed %v", way, timed)
	}
	if got := median([]int64{5, 1, 9, 3}); got != 3 {
		t.Errorf("median of 5, 1, 9, 3: %d", got)
	}
}

// hourly returns a function that has w process batches, each call an
// hour after the one before: new connections on the same ports.
func hourly(w *Worker, batches []*ring.Batch) func() {
	shift := int64(0)
	return func() {
		for _, b := range batches {
			for i := 0; i < b.N; i++ {
				b.TS[i] += shift
			}
			w.Process(b)
		}
		shift = 3600e9
	}
}

// TestFanoutHash: replay's fanout gives both directions of a connection
// the same hash, and spreads connections evenly over two workers.
func TestFanoutHash(t *testing.T) {
	h := fanoutHash(0x5eed) // fixed: the counts are the same every run
	frame := func(src, dst [4]byte, sport, dport uint16) []byte {
		f := make([]byte, 14+20+20)
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0], ip[9] = 0x45, 6
		binary.BigEndian.PutUint16(ip[2:], 40)
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], sport)
		binary.BigEndian.PutUint16(tcp[2:], dport)
		tcp[12] = 5 << 4
		return f
	}
	const n = 10_000
	perWorker := [2]int{}
	for i := range n {
		cli, srv := [4]byte{10, 1, byte(i >> 8), byte(i)}, [4]byte{10, 2, 0, 1}
		sport := uint16(32768 + i%1000)
		a, ok1 := h(frame(cli, srv, sport, 443), ring.LinkTypeEthernet)
		b, ok2 := h(frame(srv, cli, 443, sport), ring.LinkTypeEthernet)
		if !ok1 || !ok2 || a != b {
			t.Fatalf("connection %d: hashes %x (%v) and %x (%v) of its two directions", i, a, ok1, b, ok2)
		}
		perWorker[(a>>32)*2>>32]++
	}
	// 10,000 fair coin flips land 4,800 to 5,200 times on one side but
	// for 1 in 15,000 seeds.
	if perWorker[0] < 4800 || perWorker[0] > 5200 {
		t.Errorf("%v connections per worker", perWorker)
	}
	if _, ok := h([]byte{1, 2, 3}, ring.LinkTypeEthernet); ok {
		t.Error("a 3-byte frame hashed")
	}
}

// BenchmarkFanoutHash: the replay reader's cost per frame to pick a
// worker, over every detector's story (IPv4 and IPv6, VLAN and QinQ).
func BenchmarkFanoutHash(b *testing.B) {
	var frames [][]byte
	var links []ring.LinkType
	for _, bt := range storyBatches(b) {
		for i := range bt.N {
			frames, links = append(frames, bt.Frames[i]), append(links, bt.Link)
		}
	}
	h := fanoutHash(0x5eed)
	var sum uint64
	b.ResetTimer()
	for i := range b.N {
		j := i % len(frames)
		v, _ := h(frames[j], links[j])
		sum += v
	}
	if sum == 1 {
		b.Log(sum) // keeps the calls
	}
}

// TestPortReuseOldConnectionUnseen: seeds/001's capture from a real
// kernel, with the old connection on 10.213.0.3:49106 cut out (frames
// #72-#82), as when the capture begins while the server holds it in
// TIME_WAIT. The server's bare ACK to the new SYN (#84) still tells it:
// port_reuse_rejected / time_wait_paws, with the TSval the ACK echoes
// (the old connection's last, 2000004001), and no time since its end.
func TestPortReuseOldConnectionUnseen(t *testing.T) {
	all := loadBatch(t, "../../../testdata/seed001.pcap")
	b := ring.NewBatch(all.N)
	b.Link = all.Link
	for i := 0; i < all.N; i++ {
		if n := i + 1; n >= 72 && n <= 82 {
			continue
		}
		b.Frames[b.N], b.TS[b.N], b.WireLen[b.N] = all.Frames[i], all.TS[i], all.WireLen[i]
		b.N++
	}
	if b.N != all.N-11 {
		t.Fatalf("%d frames of %d", b.N, all.N)
	}
	var got []detectors.Event
	w := newTestWorker(t, &got)
	w.Process(b)
	w.finish()
	var reuse []detectors.Event
	for _, e := range got {
		if e.Type == detectors.TypePortReuseRejected {
			reuse = append(reuse, e)
		}
	}
	if len(reuse) != 1 || reuse[0].Cause != detectors.CauseTimeWaitPAWS || reuse[0].Client.Port != 49106 {
		t.Fatalf("port_reuse_rejected events %+v", reuse)
	}
	e := &reuse[0]
	for _, c := range []struct {
		k    detectors.EvidenceKey
		want int64
	}{{detectors.EvTSval, 1995004301}, {detectors.EvPreviousTSval, 2000004001}, {detectors.EvAck, 180343398}} {
		if v, ok := e.Lookup(c.k); !ok || v != c.want {
			t.Errorf("evidence %v: %d, %v; want %d", c.k, v, ok, c.want)
		}
	}
	if v, ok := e.Lookup(detectors.EvSincePreviousMs); ok {
		t.Errorf("since_previous_ms %d for a connection the capture does not hold", v)
	}
}

// TestReplayMapsMemory: with MapMemory, a replay's summary names the
// pipeline's large arrays, each worker's summed, with their sizes and
// what of them is resident; without it, nothing.
func TestReplayMapsMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("residency comes from mincore, on Linux")
	}
	if s := replayTestdata(t, "refused_any.pcap", Config{Workers: 2, Flows: 1000}); s.Memory != nil {
		t.Fatalf("without MapMemory: %+v", s.Memory)
	}
	s := replayTestdata(t, "refused_any.pcap", Config{Workers: 2, Flows: 1000, MapMemory: true})
	want := []string{"flow table: connections", "flow table: links", "flow table: index", "flow table: ended connections",
		"detectors: notes", "correlator: server ports", "correlator: TCP clocks", "correlator: fold windows",
		"correlator: queued facts and events"}
	var names []string
	for _, m := range s.Memory {
		names = append(names, m.Name)
		if m.Bytes <= 0 || m.Resident < 0 || m.Resident > m.Bytes {
			t.Errorf("%s: %d bytes, %d resident", m.Name, m.Bytes, m.Resident)
		}
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("regions %q, want %q", names, want)
	}
	// Two workers' slabs of 500 Conns each; the capture's flows were
	// written into them, so some of it is resident.
	conns := s.Memory[0]
	if size := int64(reflect.TypeFor[flowtable.Conn]().Size()); conns.Bytes != 1000*size || conns.Resident == 0 {
		t.Errorf("connections: %d bytes (want %d), %d resident", conns.Bytes, 1000*size, conns.Resident)
	}
}

// TestReplayCountsCPU: Summary.CPU is the CPU time of the replay after
// setup, which no number of threads can make more than the wall time on
// every CPU the process may use.
func TestReplayCountsCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process's CPU time is read with getrusage, on Linux")
	}
	s := replayTestdata(t, "clean_many.pcap.gz", Config{Workers: 2})
	running := s.Elapsed - s.Setup
	// getrusage rounds to microseconds, per thread.
	most := running*time.Duration(runtime.NumCPU()) + time.Millisecond
	if s.Packets == 0 || s.CPU <= 0 || s.CPU > most {
		t.Fatalf("%d packets: CPU %v in %v running on %d CPUs", s.Packets, s.CPU, running, runtime.NumCPU())
	}
}

// replayTestdata replays a capture of testdata/ (gzipped or not) through
// the pipeline with cfg, throwing its events away.
func replayTestdata(t *testing.T, name string, cfg Config) Summary {
	t.Helper()
	f, err := os.Open("../../../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Replay(context.Background(), f, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
