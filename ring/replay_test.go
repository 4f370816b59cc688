package ring_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// The committed captures (testdata/README.md says how they were made).
var realCaptures = []struct {
	file          string
	link          ring.LinkType
	packets       int
	bytes         uint64
	first, last   int64 // capture times of the first and last frame, file order
	links         []ring.LinkType
	runs          []int // frames per run of one link type (pcapng with two)
	flows, flows0 int   // connections, and how many symHash gives worker 0 of 2
}{
	{file: "lo_eth.pcap", link: ring.LinkTypeEthernet, packets: 42, bytes: 3372,
		first: 1795306780_478562000, last: 1795306781_274706000, flows: 5, flows0: 4},
	{file: "lo_eth.pcapng", link: ring.LinkTypeEthernet, packets: 42, bytes: 3372,
		first: 1795306780_478562000, last: 1795306781_274706000, flows: 5, flows0: 4},
	{file: "any_sll2_nano.pcap", link: ring.LinkTypeLinuxSLL2, packets: 42, bytes: 3624,
		first: 1795306780_478560459, last: 1795306781_274706330, flows: 5, flows0: 4},
	{file: "any_sll.pcap", link: ring.LinkTypeLinuxSLL, packets: 42, bytes: 3456,
		first: 1795306780_478561000, last: 1795306781_274706000, flows: 5, flows0: 4},
	{file: "lo_any_mixed.pcapng", link: ring.LinkTypeEthernet, packets: 84, bytes: 6828,
		first: 1795306794_004764361, last: 1795306794_206917891, flows: 5, flows0: 2,
		links: []ring.LinkType{ring.LinkTypeEthernet, ring.LinkTypeLinuxSLL, ring.LinkTypeEthernet, ring.LinkTypeLinuxSLL},
		runs:  []int{10, 30, 32, 12}},
}

func TestReplayRealCaptures(t *testing.T) {
	for _, c := range realCaptures {
		t.Run(c.file, func(t *testing.T) {
			data := readFile(t, "testdata/"+c.file)
			res := replay(t, data, ring.ReplayConfig{})
			got := res.workers[0]
			if len(got) != c.packets {
				t.Fatalf("%d frames, want %d", len(got), c.packets)
			}
			if got[0].TS != c.first || got[len(got)-1].TS != c.last {
				t.Errorf("first/last TS %d/%d, want %d/%d", got[0].TS, got[len(got)-1].TS, c.first, c.last)
			}
			if res.rp.Link() != c.link {
				t.Errorf("Link() = %v, want %v", res.rp.Link(), c.link)
			}
			want := oracle(t, data)
			for i := range want {
				if !got[i].equal(want[i]) {
					t.Fatalf("frame %d differs from pcapgo's ReadPacketData", i)
				}
			}
			var sum uint64
			for _, f := range got {
				sum += uint64(len(f.Data))
			}
			st := res.rp.Stats()
			if st.Packets != uint64(c.packets) || st.Bytes != c.bytes || sum != c.bytes ||
				st.FileBytes != int64(len(data)) || st.FirstTS != c.first || st.LastTS != c.last ||
				st.Truncated || !st.Done || st.Dropped != 0 {
				t.Errorf("stats %+v (delivered %d bytes), want %d packets, %d bytes, %d file bytes", st, sum, c.packets, c.bytes, len(data))
			}
			if err := res.rp.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
			var links []ring.LinkType
			var runs []int
			for _, b := range res.batches[0] {
				if n := len(links); n > 0 && links[n-1] == b.Link {
					runs[n-1] += b.N
					continue
				}
				links = append(links, b.Link)
				runs = append(runs, b.N)
			}
			if c.links == nil {
				c.links, c.runs = []ring.LinkType{c.link}, []int{c.packets}
			}
			if !slicesEqual(links, c.links) || !slicesEqual(runs, c.runs) {
				t.Errorf("link runs %v %v, want %v %v", links, runs, c.links, c.runs)
			}
		})
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The pcap and the pcapng (editcap) of one capture replay the same frames.
func TestReplayPcapAndPcapngAgree(t *testing.T) {
	a := replay(t, readFile(t, "testdata/lo_eth.pcap"), ring.ReplayConfig{}).workers[0]
	b := replay(t, readFile(t, "testdata/lo_eth.pcapng"), ring.ReplayConfig{}).workers[0]
	if len(a) != len(b) {
		t.Fatalf("%d vs %d frames", len(a), len(b))
	}
	for i := range a {
		if !a[i].equal(b[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// checkFanout checks a multi-worker replay against the one-worker replay
// of the same file: every flow on one worker, the worker the hash picks,
// each worker's frames in file order, nothing lost or added.
func checkFanout(t *testing.T, whole []frame, res replayResult, hash ring.HashFunc) (flowsPerWorker []int) {
	t.Helper()
	n := len(res.workers)
	owner := map[string]int{}
	flowsPerWorker = make([]int, n)
	total := 0
	for w, frames := range res.workers {
		total += len(frames)
		next := 0 // position in whole after the previous frame of w
		for _, f := range frames {
			for next < len(whole) && !whole[next].equal(f) {
				next++
			}
			if next == len(whole) {
				t.Fatalf("worker %d: frames out of file order or not in the file", w)
			}
			next++
			want := 0
			if h, ok := hash(f.Data, f.Link); ok {
				want = int((h >> 32) * uint64(n) >> 32)
			}
			if want != w {
				t.Fatalf("frame on worker %d, hash says %d", w, want)
			}
			key, ok := flowKey(f.Data, f.Link)
			if !ok {
				continue
			}
			if o, seen := owner[key]; seen && o != w {
				t.Fatalf("a flow is on workers %d and %d", o, w)
			} else if !seen {
				owner[key] = w
				flowsPerWorker[w]++
			}
		}
	}
	if total != len(whole) {
		t.Fatalf("workers got %d frames in all, the file has %d", total, len(whole))
	}
	return flowsPerWorker
}

func TestReplayFanoutRealCaptures(t *testing.T) {
	for _, c := range realCaptures {
		t.Run(c.file, func(t *testing.T) {
			data := readFile(t, "testdata/"+c.file)
			whole := replay(t, data, ring.ReplayConfig{}).workers[0]
			res := replay(t, data, ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 4})
			flows := checkFanout(t, whole, res, symHash)
			if flows[0]+flows[1] != c.flows || flows[0] != c.flows0 {
				t.Errorf("flows per worker %v, want %d on worker 0 of %d", flows, c.flows0, c.flows)
			}
			for w, bs := range res.batches {
				for _, b := range bs {
					if b.N > 4 {
						t.Errorf("worker %d: batch of %d frames, BatchSize is 4", w, b.N)
					}
				}
			}
		})
	}
}

func TestReplayFanoutSynthetic(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 64, 12, 0)
	data := pcapBytes(t, ring.LinkTypeEthernet, frames, true)
	for _, workers := range []int{2, 3, 8} {
		res := replay(t, data, ring.ReplayConfig{Workers: workers, Hash: symHash, BatchSize: 16})
		flows := checkFanout(t, frames, res, symHash)
		for w, n := range flows {
			if n == 0 {
				t.Errorf("%d workers: worker %d got no flow of 64", workers, w)
			}
		}
	}
	// Without a hash, or with one that cannot hash, all goes to worker 0.
	for _, h := range []ring.HashFunc{nil, func([]byte, ring.LinkType) (uint64, bool) { return ^uint64(0), false }} {
		res := replay(t, data, ring.ReplayConfig{Workers: 3, Hash: h})
		if len(res.workers[0]) != len(frames) || len(res.workers[1])+len(res.workers[2]) != 0 {
			t.Errorf("frames per worker %d/%d/%d, want all on worker 0", len(res.workers[0]), len(res.workers[1]), len(res.workers[2]))
		}
	}
}

// Every link type, every file flavour: exact frames, times and lengths.
func TestReplayFormats(t *testing.T) {
	links := []ring.LinkType{ring.LinkTypeNull, ring.LinkTypeEthernet, ring.LinkTypeRaw, ring.LinkTypeLoop,
		ring.LinkTypeLinuxSLL, ring.LinkTypeIPv4, ring.LinkTypeIPv6, ring.LinkTypeLinuxSLL2}
	for _, link := range links {
		frames := synthFrames(t, link, 7, 9, 0)
		snapped := synthFrames(t, link, 3, 6, 60)
		micro := append([]frame{}, frames...)
		for i := range micro {
			micro[i].TS -= micro[i].TS % 1000 // pcap µs keeps whole microseconds
		}
		ng, _ := pcapngBytes(t, frames)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(pcapBytes(t, link, frames, true))
		zw.Close()
		cases := []struct {
			name string
			data []byte
			want []frame
		}{
			{"pcap-ns", pcapBytes(t, link, frames, true), frames},
			{"pcap-us", pcapBytes(t, link, micro, false), micro},
			{"pcap-ns-bigendian", bigEndianPcap(pcapBytes(t, link, frames, true)), frames},
			{"pcap-us-bigendian", bigEndianPcap(pcapBytes(t, link, micro, false)), micro},
			{"pcap-snapped", pcapBytes(t, link, snapped, true), snapped},
			{"pcapng", ng, frames},
			{"pcap-gzip", gz.Bytes(), frames},
		}
		for _, c := range cases {
			t.Run(link.String()+"/"+c.name, func(t *testing.T) {
				res := replay(t, c.data, ring.ReplayConfig{BatchSize: 5})
				got := res.workers[0]
				if len(got) != len(c.want) {
					t.Fatalf("%d frames, want %d", len(got), len(c.want))
				}
				for i := range got {
					if !got[i].equal(c.want[i]) {
						t.Fatalf("frame %d: got link %d ts %d wire %d len %d, want link %d ts %d wire %d len %d", i,
							got[i].Link, got[i].TS, got[i].Wire, len(got[i].Data), c.want[i].Link, c.want[i].TS, c.want[i].Wire, len(c.want[i].Data))
					}
				}
				if res.rp.Link() != link || res.rp.Err() != nil || res.rp.Truncated() {
					t.Errorf("Link %v Err %v Truncated %v", res.rp.Link(), res.rp.Err(), res.rp.Truncated())
				}
			})
		}
	}
}

// A pcapng file that declares interfaces of two link types up front: a
// batch never mixes them.
func TestReplayPcapngMixedLinks(t *testing.T) {
	eth := synthFrames(t, ring.LinkTypeEthernet, 4, 6, 0)
	raw := synthFrames(t, ring.LinkTypeIPv4, 4, 6, 0)
	sll2 := synthFrames(t, ring.LinkTypeLinuxSLL2, 2, 4, 0)
	var frames []frame
	var wantRuns []batchInfo
	for len(eth)+len(raw)+len(sll2) > 0 {
		for _, src := range []*[]frame{&eth, &raw, &sll2} {
			n := min(len(*src), 5)
			if n == 0 {
				continue
			}
			frames = append(frames, (*src)[:n]...)
			wantRuns = append(wantRuns, batchInfo{(*src)[0].Link, n})
			*src = (*src)[n:]
		}
	}
	for i := range frames {
		frames[i].TS = t0 + int64(i)
	}
	data, _ := pcapngBytes(t, frames)
	res := replay(t, data, ring.ReplayConfig{BatchSize: 8})
	if got := res.all(); len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	} else {
		for i := range got {
			if !got[i].equal(frames[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	}
	if !slicesEqual(res.batches[0], wantRuns) {
		t.Errorf("batches %v, want %v", res.batches[0], wantRuns)
	}
}

// An interface of another link type declared after the first packet stops
// the replay with a clear error; the frames before it are delivered.
func TestReplayPcapngLateMixedLink(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 2, 2, 0)
	data, _ := pcapngBytes(t, frames[:2])
	intf := ngBlock(1, []byte{101, 0, 0, 0, 0, 0, 0, 0}) // raw IP, snaplen 0
	epb := binary.LittleEndian.AppendUint32(nil, 1)      // interface 1
	epb = binary.LittleEndian.AppendUint64(epb, 0)
	ip := frames[2].Data[14:]
	epb = binary.LittleEndian.AppendUint32(epb, uint32(len(ip)))
	epb = binary.LittleEndian.AppendUint32(epb, uint32(len(ip)))
	epb = append(epb, ip...)
	epb = ngBlock(6, epb)
	off := len(data) // the failed read starts at the interface block
	data = append(append(data, intf...), epb...)

	res := replay(t, data, ring.ReplayConfig{})
	if len(res.workers[0]) != 2 {
		t.Errorf("%d frames before the error, want 2", len(res.workers[0]))
	}
	err := res.rp.Err()
	var re *ring.RecordError
	if !errors.Is(err, ring.ErrUnsupportedLink) || !errors.As(err, &re) || re.Record != 3 || re.Offset != int64(off) {
		t.Fatalf("Err() = %v, want a RecordError for record 3 at %d matching ErrUnsupportedLink", err, off)
	}
	want := "ring: packet record 3 at byte offset " + strconv.Itoa(off) + ": unsupported link type: a pcapng interface declared after the first packet " +
		"has a link type other than 1 (Ethernet); a file that mixes link types must declare all interfaces before its first packet"
	if err.Error() != want {
		t.Errorf("error\n%s, want\n%s", err, want)
	}
}

func TestReplayEOF(t *testing.T) {
	data := pcapBytes(t, ring.LinkTypeEthernet, synthFrames(t, ring.LinkTypeEthernet, 3, 3, 0), true)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	src := rp.Sources()[0]
	b := ring.NewBatch(4)
	var sizes []int
	for {
		err := src.NextBatch(b)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, b.N)
	}
	if !slicesEqual(sizes, []int{4, 4, 1}) {
		t.Errorf("batch sizes %v, want [4 4 1]", sizes)
	}
	for i := 0; i < 3; i++ {
		b.N = 7
		if err := src.NextBatch(b); err != io.EOF || b.N != 0 {
			t.Fatalf("after the end: %v, N=%d; want io.EOF, N=0", err, b.N)
		}
	}
	if !rp.Stats().Done {
		t.Error("Stats().Done is false after EOF")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.NextBatch(b); err != ring.ErrClosed {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// A caller batch smaller than the replay's gets the frames over more calls.
func TestReplaySmallCallerBatch(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 5, 5, 0)
	data := pcapBytes(t, ring.LinkTypeEthernet, frames, true)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	got, batches, err := drain(rp.Sources()[0], 3)
	if err != io.EOF || len(got) != len(frames) {
		t.Fatalf("%d frames, %v", len(got), err)
	}
	for i := range got {
		if !got[i].equal(frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if len(batches) != 10 { // 25 = 8+8+8+1 = (3+3+2)*3 + 1
		t.Errorf("%d batches, want 10: %v", len(batches), batches)
	}
	if err := rp.Sources()[0].NextBatch(&ring.Batch{}); err == nil || err == io.EOF {
		t.Errorf("NextBatch on an empty Batch: %v", err)
	}
}

// bigCapture is a capture of many flows, larger than all the buffers of a
// replay, so its reader must wait for the workers.
func bigCapture(t testing.TB) ([]frame, []byte) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 50, 60, 0)
	return frames, pcapBytes(t, ring.LinkTypeEthernet, frames, true)
}

// toWorker1 sends every frame to worker 1 of 2.
func toWorker1([]byte, ring.LinkType) (uint64, bool) { return 1 << 63, true }

func TestReplayCloseUnblocks(t *testing.T) {
	base := runtime.NumGoroutine()
	_, data := bigCapture(t)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{Workers: 2, Hash: toWorker1, BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	src := rp.Sources()[0]
	done := make(chan error)
	go func() {
		b := ring.NewBatch(8)
		for {
			// Worker 0 gets clock beats only (N == 0).
			if err := src.NextBatch(b); err != nil || b.N > 0 {
				done <- err
				return
			}
		}
	}()
	// Worker 0 gets no frames and worker 1 is not read: the reader fills
	// worker 1's buffers and waits; NextBatch on worker 0 blocks.
	select {
	case err := <-done:
		t.Fatalf("NextBatch returned %v before Close", err)
	case <-time.After(100 * time.Millisecond):
	}
	src.Close()
	select {
	case err := <-done:
		if err != ring.ErrClosed {
			t.Fatalf("NextBatch after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock NextBatch")
	}
	rp.Close() // stops the reader, blocked on worker 1
	goroutinesSettle(t, base)
	if st := rp.Stats(); !st.Done || st.Packets == 0 || st.Packets == 3000 {
		t.Errorf("stats after Close %+v: want a stopped, partial read", st)
	}
}

// Closing the sources alone (no Replay.Close) stops the reader too.
func TestReplayCloseSourcesStopsReader(t *testing.T) {
	base := runtime.NumGoroutine()
	_, data := bigCapture(t)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	srcs := rp.Sources()
	b := ring.NewBatch(8)
	if err := srcs[0].NextBatch(b); err != nil {
		t.Fatal(err)
	}
	for _, s := range srcs {
		s.Close()
	}
	// Wait for the reader itself: the goroutine count alone can reach
	// base early when goroutines of an earlier test end meanwhile.
	for deadline := time.Now().Add(10 * time.Second); !rp.Stats().Done && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !rp.Stats().Done {
		t.Error("reader not done 10 s after every source closed")
	}
	goroutinesSettle(t, base)
	rp.Close()
}

// A replay closed before any NextBatch never starts its reader.
func TestReplayCloseUnstarted(t *testing.T) {
	base := runtime.NumGoroutine()
	_, data := bigCapture(t)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	rp.Close()
	for _, s := range rp.Sources() {
		if err := s.NextBatch(ring.NewBatch(0)); err != ring.ErrClosed {
			t.Fatalf("NextBatch after Replay.Close: %v", err)
		}
	}
	if st := rp.Stats(); st.Packets != 0 || st.Done {
		t.Errorf("stats %+v: the reader ran", st)
	}
	goroutinesSettle(t, base)
}

// A reader blocked on its io.Reader: Source.Close still unblocks NextBatch
// at once; Replay.Close returns once the pipe is closed.
func TestReplayCloseWhileReading(t *testing.T) {
	base := runtime.NumGoroutine()
	frames, data := bigCapture(t)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:24+16+len(frames[0].Data)+100]) // header, a record, part of one
	}()
	rp, err := ring.OpenReplay(pr, ring.ReplayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src := rp.Sources()[0]
	done := make(chan error)
	go func() { done <- src.NextBatch(ring.NewBatch(0)) }()
	time.Sleep(50 * time.Millisecond)
	src.Close()
	select {
	case err := <-done:
		if err != ring.ErrClosed {
			t.Fatalf("NextBatch: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock NextBatch")
	}
	closed := make(chan struct{})
	go func() { rp.Close(); close(closed) }()
	pw.CloseWithError(errors.New("stop"))
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Replay.Close did not return after the pipe closed")
	}
	goroutinesSettle(t, base)
}

// A closed worker's frames are dropped; the others get all of theirs.
func TestReplayClosedWorkerNoDeadlock(t *testing.T) {
	frames, data := bigCapture(t)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	srcs := rp.Sources()
	srcs[1].Close()
	got, _, err := drain(srcs[0], 8)
	if err != io.EOF {
		t.Fatalf("worker 0: %v", err)
	}
	var want []frame
	for _, f := range frames {
		if h, _ := symHash(f.Data, f.Link); (h>>32)*2>>32 == 0 {
			want = append(want, f)
		}
	}
	if len(got) != len(want) || len(want) == 0 || len(want) == len(frames) {
		t.Fatalf("worker 0 got %d frames, want %d of %d", len(got), len(want), len(frames))
	}
	for i := range got {
		if !got[i].equal(want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	st := rp.Stats()
	if st.Packets != uint64(len(frames)) || st.Dropped != uint64(len(frames)-len(want)) {
		t.Errorf("stats %+v, want %d packets, %d dropped", st, len(frames), len(frames)-len(want))
	}
}

// Stats may be read while the replay runs (go test -race).
func TestReplayStatsConcurrent(t *testing.T) {
	frames, data := bigCapture(t)
	rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := rp.Stats()
			if st.Packets < last {
				t.Error("Packets went backwards")
			}
			last = st.Packets
			_ = rp.Err()
			_ = rp.Truncated()
			runtime.Gosched()
		}
	}()
	var n int
	var mu sync.Mutex
	var rw sync.WaitGroup
	for _, s := range rp.Sources() {
		rw.Add(1)
		go func() {
			defer rw.Done()
			got, _, err := drain(s, 8)
			if err != io.EOF {
				t.Error(err)
			}
			mu.Lock()
			n += len(got)
			mu.Unlock()
		}()
	}
	rw.Wait()
	close(stop)
	wg.Wait()
	if n != len(frames) || rp.Stats().Packets != uint64(len(frames)) {
		t.Errorf("%d frames delivered, stats %+v, want %d", n, rp.Stats(), len(frames))
	}
}

// A file cut short inside its last record: every whole record before it
// is delivered, Truncated is set and there is no error.
func TestReplayTruncated(t *testing.T) {
	pcap := readFile(t, "testdata/lo_eth.pcap")
	offs := pcapRecordOffsets(pcap)
	lastRec := offs[len(offs)-1]
	ng := readFile(t, "testdata/lo_eth.pcapng")
	ngOffs := pcapngPacketOffsets(ng)
	mixed := readFile(t, "testdata/lo_any_mixed.pcapng")
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name string
		data []byte
		want int
	}{
		{"pcap-1-byte-short", pcap[:len(pcap)-1], 41},
		{"pcap-in-data", pcap[:len(pcap)-30], 41},
		{"pcap-header-only", pcap[:lastRec+16], 41},
		{"pcap-in-header", pcap[:lastRec+5], 41},
		{"pcapng-1-byte-short", ng[:len(ng)-1], 41},
		{"pcapng-in-header", ng[:ngOffs[41]+6], 41},
		{"pcapng-in-data", ng[:ngOffs[41]+40], 41},
		{"pcapng-statistics", mixed[:len(mixed)-3], 84}, // the last block is statistics
		{"gzip-pcap", gzipped(pcap[:len(pcap)-7]), 41},
		{"gzip-stream-cut", gzipped(pcap)[:600], -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := replay(t, c.data, ring.ReplayConfig{Workers: 2, Hash: symHash})
			got := res.all()
			if c.want >= 0 && len(got) != c.want {
				t.Errorf("%d frames, want %d", len(got), c.want)
			}
			if c.want < 0 && len(got) == 0 {
				t.Errorf("no frames")
			}
			if !res.rp.Truncated() || !res.rp.Stats().Truncated {
				t.Error("Truncated() is false")
			}
			if err := res.rp.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
		})
	}
	// A whole file is not truncated.
	res := replay(t, pcap, ring.ReplayConfig{})
	if res.rp.Truncated() {
		t.Error("whole file: Truncated() is true")
	}
}

// A damaged record header in the middle of a file: an error naming the
// record and its offset, the frames before it delivered, and no attempt
// to allocate what the header claims.
func TestReplayCorruptRecord(t *testing.T) {
	pcap := readFile(t, "testdata/lo_eth.pcap")
	pOffs := pcapRecordOffsets(pcap)
	ng := readFile(t, "testdata/lo_eth.pcapng")
	nOffs := pcapngPacketOffsets(ng)
	put := func(data []byte, off int, v uint32) []byte {
		d := bytes.Clone(data)
		binary.LittleEndian.PutUint32(d[off:], v)
		return d
	}
	unknown := ngBlock(0xbad, []byte("not a packet"))
	cases := []struct {
		name   string
		data   []byte
		record int64
		offset int
		msg    string
	}{
		{"pcap-caplen-huge", put(pcap, pOffs[4]+8, 0x7fff0000), 5, pOffs[4],
			"capture length 2147418112 exceeds the 262144-byte maximum"},
		{"pcap-caplen-over-wirelen", put(pcap, pOffs[9]+8, 1000), 10, pOffs[9],
			"capture length 1000 exceeds the original length 66"},
		{"pcapng-caplen-huge", put(ng, nOffs[4]+20, 0xfffffff0), 5, nOffs[4],
			"capture length 4294967280 exceeds the 262144-byte maximum"},
		{"pcapng-caplen-over-block", put(ng, nOffs[4]+20, 200000), 5, nOffs[4],
			fmt.Sprintf("capture length 200000 overruns a packet block of %d bytes", binary.LittleEndian.Uint32(ng[nOffs[4]+4:]))},
		{"pcapng-block-length-huge", put(ng, nOffs[6]+4, 0x7ffffff0), 7, nOffs[6],
			"pcapng block of type 0x6 claims a length of 2147483632 bytes"},
		{"pcapng-unknown-block-length-huge", put(splice(ng, nOffs[6], unknown), nOffs[6]+4, 0x7ffffff0), 7, nOffs[6],
			"pcapng block of type 0xbad claims a length of 2147483632 bytes"},
		{"pcapng-block-length-short", put(ng, nOffs[6]+4, 8), 7, nOffs[6],
			"pcapng block of type 0x6 claims a length of 8 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := replay(t, c.data, ring.ReplayConfig{})
			runtime.ReadMemStats(&after)
			if got := len(res.workers[0]); got != int(c.record-1) {
				t.Errorf("%d frames delivered, want %d", got, c.record-1)
			}
			err := res.rp.Err()
			var re *ring.RecordError
			if !errors.As(err, &re) || !errors.Is(err, ring.ErrCorrupt) {
				t.Fatalf("Err() = %v, want a RecordError matching ErrCorrupt", err)
			}
			if re.Record != c.record || re.Offset != int64(c.offset) {
				t.Errorf("record %d at %d, want %d at %d", re.Record, re.Offset, c.record, c.offset)
			}
			want := "ring: packet record " + strconv.Itoa(int(c.record)) + " at byte offset " + strconv.Itoa(c.offset) + ": corrupt capture file: " + c.msg
			if err.Error() != want {
				t.Errorf("error\n%q, want\n%q", err.Error(), want)
			}
			if res.rp.Truncated() {
				t.Error("Truncated() is true")
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
				t.Errorf("allocated %d bytes", n)
			}
		})
	}
}

// pcapng blocks pcapgo does not know are skipped.
func TestReplayPcapngUnknownBlock(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 3, 4, 0)
	data, offs := pcapngBytes(t, frames)
	custom := ngBlock(0x40000bad, []byte("a custom block, copied by rewriters"))
	other := ngBlock(0x99, bytes.Repeat([]byte{0xee}, 301))
	data = append(splice(splice(data, offs[7], other), offs[3], custom), custom...)
	res := replay(t, data, ring.ReplayConfig{})
	got := res.workers[0]
	if len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	}
	for i := range got {
		if !got[i].equal(frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if res.rp.Err() != nil || res.rp.Truncated() {
		t.Errorf("Err %v Truncated %v", res.rp.Err(), res.rp.Truncated())
	}
}

// A simple packet block (no time, no interface number) is read too.
func TestReplayPcapngSimplePacket(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 1, 2, 0)
	data, _ := pcapngBytes(t, frames[:1])
	body := binary.LittleEndian.AppendUint32(nil, uint32(len(frames[1].Data)))
	data = append(data, ngBlock(3, append(body, frames[1].Data...))...)
	got := replay(t, data, ring.ReplayConfig{}).workers[0]
	if len(got) != 2 || !bytes.Equal(got[1].Data, frames[1].Data) || got[1].TS != 0 || got[1].Wire != len(frames[1].Data) {
		t.Fatalf("got %d frames: %+v", len(got), got)
	}
}

func TestReplayNotCapture(t *testing.T) {
	pcapHdr := pcapBytes(t, ring.LinkTypeEthernet, nil, false)
	rnd := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "ring: not a pcap or pcapng file: the file is empty"},
		{"three-bytes", []byte{0xd4, 0xc3, 0xb2}, "ring: not a pcap or pcapng file: only 3 bytes long"},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), `ring: not a pcap or pcapng file: it starts with 47 45 54 20 2f 20 48 54 ("GET / HT", text)`},
		{"random", rnd, "ring: not a pcap or pcapng file: it starts with " + hexBytes(rnd[:8])},
		{"pcap-header-cut", pcapHdr[:10], "ring: not a pcap or pcapng file: pcap file header cut short (10 of 24 bytes)"},
		{"pcapng-header-cut", []byte{0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0}, "ring: not a pcap or pcapng file: pcapng section header cut short"},
		{"pcap-version", append(append([]byte{}, pcapHdr[:4]...), append([]byte{9, 0}, pcapHdr[6:]...)...), "ring: not a pcap or pcapng file: pcap file header: Unknown major version 9"},
		{"snoop", []byte("snoop\x00\x00\x00\x00\x00\x00\x02"), "ring: not a pcap or pcapng file: snoop format is not supported; convert it with editcap -F pcap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rp, err := ring.OpenReplay(bytes.NewReader(c.data), ring.ReplayConfig{})
			if rp != nil || !errors.Is(err, ring.ErrNotCapture) {
				t.Fatalf("OpenReplay: %v, want ErrNotCapture", err)
			}
			if err.Error() != c.want {
				t.Errorf("error\n%s, want\n%s", err, c.want)
			}
		})
	}
}

func hexBytes(b []byte) string {
	const digits = "0123456789abcdef"
	var s []string
	for _, c := range b {
		s = append(s, string([]byte{digits[c>>4], digits[c&15]}))
	}
	return strings.Join(s, " ")
}

// A file with a header and no packets is a valid, empty capture.
func TestReplayHeaderOnly(t *testing.T) {
	ngHdr, _ := pcapngBytes(t, nil)
	cases := map[string][]byte{
		"pcap":       pcapBytes(t, ring.LinkTypeLinuxSLL2, nil, true),
		"pcapng":     ngHdr,
		"pcapng-shb": ngHdr[:binary.LittleEndian.Uint32(ngHdr[4:])], // no interface at all
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			res := replay(t, data, ring.ReplayConfig{Workers: 2, Hash: symHash})
			if n := len(res.all()); n != 0 {
				t.Errorf("%d frames", n)
			}
			if res.rp.Err() != nil || res.rp.Truncated() || res.rp.Stats().Packets != 0 {
				t.Errorf("Err %v Truncated %v Stats %+v", res.rp.Err(), res.rp.Truncated(), res.rp.Stats())
			}
		})
	}
}

func TestReplayUnsupportedLink(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 1, 2, 0)
	for _, c := range []struct {
		link ring.LinkType
		want string
	}{
		{105, "ring: unsupported link type 105 (IEEE 802.11)"},
		{127, "ring: unsupported link type 127 (IEEE 802.11 with radiotap header)"},
		{148, "ring: unsupported link type 148 (user-defined 1)"},
		{9999, "ring: unsupported link type 9999"},
	} {
		for i := range frames {
			frames[i].Link = c.link
		}
		ng, _ := pcapngBytes(t, frames)
		for name, data := range map[string][]byte{"pcap": pcapBytes(t, c.link, frames, false), "pcapng": ng} {
			rp, err := ring.OpenReplay(bytes.NewReader(data), ring.ReplayConfig{})
			if rp != nil || !errors.Is(err, ring.ErrUnsupportedLink) || err.Error() != c.want {
				t.Errorf("%s %d: %v, want %q", name, c.link, err, c.want)
			}
			var le *ring.UnsupportedLinkError
			if !errors.As(err, &le) || le.Link != c.link {
				t.Errorf("%s %d: not an UnsupportedLinkError for the link: %#v", name, c.link, err)
			}
		}
	}
}

func TestLinkTypeString(t *testing.T) {
	for l, want := range map[ring.LinkType]string{
		ring.LinkTypeEthernet: "Ethernet", ring.LinkTypeLinuxSLL2: "Linux SLL2", 105: "IEEE 802.11", 9999: "LinkType(9999)",
	} {
		if got := l.String(); got != want {
			t.Errorf("%d: %q, want %q", l, got, want)
		}
	}
}

// Blocks too large for the read-ahead window are not checked in advance;
// pcapgo skips them, and a file cut inside one is still only truncated.
func TestReplayPcapngLargeBlock(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 2, 4, 0)
	data, offs := pcapngBytes(t, frames)
	big := ngBlock(0xbad, make([]byte, 3<<20))
	data = splice(data, offs[5], big)
	res := replay(t, data, ring.ReplayConfig{})
	if got := res.workers[0]; len(got) != len(frames) || res.rp.Err() != nil || res.rp.Truncated() {
		t.Fatalf("%d frames, Err %v, Truncated %v; want %d, nil, false", len(got), res.rp.Err(), res.rp.Truncated(), len(frames))
	}
	res = replay(t, data[:offs[5]+2<<20], ring.ReplayConfig{})
	if got := res.workers[0]; len(got) != 5 || res.rp.Err() != nil || !res.rp.Truncated() {
		t.Fatalf("cut: %d frames, Err %v, Truncated %v; want 5, nil, true", len(got), res.rp.Err(), res.rp.Truncated())
	}
}

// Concatenated pcapng files are one file of several sections.
func TestReplayPcapngSections(t *testing.T) {
	a := synthFrames(t, ring.LinkTypeLinuxSLL2, 2, 3, 0)
	b := synthFrames(t, ring.LinkTypeLinuxSLL2, 3, 2, 0)
	for i := range b {
		b[i].TS += 1e9
	}
	da, _ := pcapngBytes(t, a)
	db, _ := pcapngBytes(t, b)
	got := replay(t, append(da, db...), ring.ReplayConfig{}).workers[0]
	want := append(a, b...)
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if !got[i].equal(want[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	// A second section of another link type is not replayed silently.
	dc, _ := pcapngBytes(t, synthFrames(t, ring.LinkTypeEthernet, 1, 2, 0))
	res := replay(t, append(da, dc...), ring.ReplayConfig{})
	if len(res.workers[0]) != len(a) || !errors.Is(res.rp.Err(), ring.ErrUnsupportedLink) {
		t.Errorf("%d frames, Err %v; want %d and ErrUnsupportedLink", len(res.workers[0]), res.rp.Err(), len(a))
	}
}

// TestReplayClockBeats: a worker that gets no frames still hears the
// capture clock about every half second of capture time (so its timers
// fire when due), and no batch's Clock is older than its frames.
func TestReplayClockBeats(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 10, 300, 0)
	for i := range frames {
		frames[i].TS = frames[0].TS + int64(i)*10e6 // 3000 frames, 30 s
	}
	// Read slowly, as a big file would be, so that the idle worker keeps up
	// (a worker behind on its beats has none free and skips some).
	rp, err := ring.OpenReplay(slowReader{bytes.NewReader(pcapBytes(t, ring.LinkTypeEthernet, frames, true))},
		ring.ReplayConfig{Workers: 2, Hash: toWorker1, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	type result struct {
		beats, frames int
		last          int64
		bad           string
	}
	res := make([]result, 2)
	var wg sync.WaitGroup
	for w, src := range rp.Sources() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := ring.NewBatch(64)
			last := int64(0)
			for src.NextBatch(b) == nil {
				if b.Clock < last {
					res[w].bad = "clock ran backwards"
				}
				last = b.Clock
				res[w].last = last
				if b.N == 0 {
					res[w].beats++
				}
				for i := 0; i < b.N; i++ {
					res[w].frames++
					if b.TS[i] > b.Clock {
						res[w].bad = "a frame newer than its batch's clock"
					}
				}
			}
		}()
	}
	wg.Wait()
	if res[0].frames != 0 || res[1].frames != len(frames) || res[0].bad != "" || res[1].bad != "" {
		t.Fatalf("workers got %+v", res)
	}
	// 30 s of capture, a beat every 0.5 s at most: 60.
	if res[0].beats < 30 || res[0].last < frames[0].TS+25e9 {
		t.Fatalf("the idle worker heard the clock %d times, last at +%d ms", res[0].beats, (res[0].last-frames[0].TS)/1e6)
	}
}

// slowReader reads at most 1 KiB per call, 1 ms apart.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 1024)])
}
