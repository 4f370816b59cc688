package ring_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// Hostile files (issue 8): a length field that claims gigabytes must be
// refused without allocating it, and a file that grows while it is read
// is read up to the end the reader first finds, and no further.

// maxHostileAlloc bounds what a replay of a small hostile file may
// allocate in all: the 1 MiB read-ahead window, the batches, pcapgo's
// state; nothing near the 2 GiB the headers claim.
const maxHostileAlloc = 16 << 20

// putLE returns a copy of data with v written little-endian at off.
func putLE(data []byte, off int, v uint32) []byte {
	d := bytes.Clone(data)
	binary.LittleEndian.PutUint32(d[off:], v)
	return d
}

// TestReplayAbsurdLengths: a snap length, capture length or block length
// of 2^31 or 2^32-1 in a pcap or pcapng file gives the frames before it
// and a clear error (or, for a block too large to check ahead that the
// file does not hold, a truncation), and the heap does not grow by
// anything like the claimed size.
func TestReplayAbsurdLengths(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 2, 3, 0) // 6 frames
	pcap := pcapBytes(t, ring.LinkTypeEthernet, frames, false)
	pOffs := pcapRecordOffsets(pcap)
	hugeSnap := putLE(pcap, 16, 0xffffffff) // the file header's snap length
	// Record 3 claims 2^31 bytes, captured and on the wire.
	hugeRec := putLE(putLE(hugeSnap, pOffs[2]+8, 1<<31), pOffs[2]+12, 1<<31)

	ng, nOffs := pcapngBytes(t, frames)
	shbLen := int(binary.LittleEndian.Uint32(ng[4:]))
	idb := shbLen                           // the only interface block
	ngSnap := putLE(ng, idb+12, 0xffffffff) // the interface's snap length
	ngHugeCap := putLE(putLE(ngSnap, nOffs[2]+20, 1<<31), nOffs[2]+24, 1<<31)
	// A simple packet block whose original length is 2^31: with no snap
	// length to cut it, that is its capture length.
	spb := ngBlock(3, append(binary.LittleEndian.AppendUint32(nil, 1<<31), frames[0].Data...))
	ngSPB := append(ngSnap[:nOffs[2]:nOffs[2]], spb...)
	// A packet block larger than the read-ahead window but under the
	// block limit cannot be checked ahead: pcapgo reads it, in chunks as
	// the bytes arrive, and the file ends 64 KiB into it.
	blind := binary.LittleEndian.AppendUint32(nil, 6)
	blind = binary.LittleEndian.AppendUint32(blind, 15<<20)
	blind = binary.LittleEndian.AppendUint32(blind, 0)         // interface
	blind = binary.LittleEndian.AppendUint64(blind, 0)         // time
	blind = binary.LittleEndian.AppendUint32(blind, 15<<20-32) // captured
	blind = binary.LittleEndian.AppendUint32(blind, 15<<20-32) // on the wire
	blind = append(blind, make([]byte, 64<<10)...)
	ngBlind := append(ng[:nOffs[2]:nOffs[2]], blind...)

	capMsg := func(n uint64) string {
		return "capture length " + strconv.FormatUint(n, 10) + " exceeds the 262144-byte maximum"
	}
	blockMsg := func(typ string, n uint64) string {
		return "pcapng block of type " + typ + " claims a length of " + strconv.FormatUint(n, 10) + " bytes"
	}
	cases := []struct {
		name      string
		data      []byte
		openErr   string // the error of OpenReplay, if it fails
		frames    int    // delivered before the error or the end
		record    int64  // 0: no error
		offset    int
		msg       string
		truncated bool
	}{
		// libpcap, tcpdump and Wireshark ignore a file's snap length
		// when reading; replay only bounds each record.
		{name: "pcap-snaplen-2^32-1", data: hugeSnap, frames: 6},
		{name: "pcap-record-2^31", data: hugeRec, frames: 2, record: 3, offset: pOffs[2], msg: capMsg(1 << 31)},
		{name: "pcap-be-record-2^31", data: bigEndianPcap(putLE(putLE(pcap, pOffs[2]+8, 1<<31), pOffs[2]+12, 1<<31)),
			frames: 2, record: 3, offset: pOffs[2], msg: capMsg(1 << 31)},
		{name: "pcap-record-2^32-1", data: putLE(putLE(pcap, pOffs[0]+8, 0xffffffff), pOffs[0]+12, 0xffffffff),
			frames: 0, record: 1, offset: pOffs[0], msg: capMsg(0xffffffff)},
		{name: "pcapng-snaplen-2^32-1", data: ngSnap, frames: 6},
		{name: "pcapng-caplen-2^31", data: ngHugeCap, frames: 2, record: 3, offset: nOffs[2], msg: capMsg(1 << 31)},
		{name: "pcapng-spb-2^31", data: ngSPB, frames: 2, record: 3, offset: nOffs[2], msg: capMsg(1 << 31)},
		{name: "pcapng-block-2^31", data: putLE(ng, nOffs[2]+4, 1<<31), frames: 2, record: 3, offset: nOffs[2], msg: blockMsg("0x6", 1<<31)},
		{name: "pcapng-block-2^32-1", data: putLE(ng, nOffs[2]+4, 0xffffffff), frames: 2, record: 3, offset: nOffs[2], msg: blockMsg("0x6", 0xffffffff)},
		{name: "pcapng-section-block-2^31", data: putLE(ng, 4, 1<<31),
			openErr: "ring: packet record 1 at byte offset 0: corrupt capture file: " + blockMsg("0xa0d0d0a", 1<<31)},
		{name: "pcapng-interface-block-2^31", data: putLE(ng, idb+4, 1<<31),
			openErr: "ring: packet record 1 at byte offset " + strconv.Itoa(idb) + ": corrupt capture file: " + blockMsg("0x1", 1<<31)},
		{name: "pcapng-blind-15MiB-cut", data: ngBlind, frames: 2, truncated: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			rp, err := ring.OpenReplay(bytes.NewReader(c.data), ring.ReplayConfig{BatchSize: 64})
			var got []frame
			if err == nil {
				got, _, err = drain(rp.Sources()[0], 64)
				rp.Close()
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > maxHostileAlloc {
				t.Errorf("allocated %d bytes, want at most %d", n, maxHostileAlloc)
			} else {
				t.Logf("allocated %d bytes", n)
			}
			if c.openErr != "" {
				if rp != nil || !errors.Is(err, ring.ErrCorrupt) || err.Error() != c.openErr {
					t.Fatalf("OpenReplay: %v, want\n%s", err, c.openErr)
				}
				return
			}
			if err != io.EOF {
				t.Fatalf("drain: %v, want io.EOF", err)
			}
			if len(got) != c.frames || rp.Stats().Packets != uint64(c.frames) {
				t.Errorf("%d frames delivered, %d counted, want %d", len(got), rp.Stats().Packets, c.frames)
			}
			for i := range got {
				if !bytes.Equal(got[i].Data, frames[i].Data) {
					t.Errorf("frame %d differs", i)
				}
			}
			if rp.Truncated() != c.truncated {
				t.Errorf("Truncated() = %v, want %v", rp.Truncated(), c.truncated)
			}
			err = rp.Err()
			if c.record == 0 {
				if err != nil {
					t.Errorf("Err() = %v", err)
				}
				return
			}
			var re *ring.RecordError
			if !errors.As(err, &re) || !errors.Is(err, ring.ErrCorrupt) {
				t.Fatalf("Err() = %v, want a RecordError matching ErrCorrupt", err)
			}
			want := "ring: packet record " + strconv.FormatInt(c.record, 10) + " at byte offset " + strconv.Itoa(c.offset) +
				": corrupt capture file: " + c.msg
			if err.Error() != want {
				t.Errorf("Err()\n%s, want\n%s", err, want)
			}
		})
	}
}

// growingCapture is a capture written to a file in two parts: head
// first, the rest when the test says.
type growingCapture struct {
	name       string
	head, tail []byte
	headFrames int // whole frames in head
	all        []frame
}

// growingCaptures returns pcap and pcapng captures of frames split after
// n whole records, or, with mid, in the middle of record n+1.
func growingCaptures(t *testing.T, frames []frame, n int, mid bool) []growingCapture {
	pcap := pcapBytes(t, ring.LinkTypeEthernet, frames, true)
	pOffs := pcapRecordOffsets(pcap)
	ng, nOffs := pcapngBytes(t, frames)
	cut := func(offs []int) int {
		if mid {
			return offs[n] + 20 // inside the record's header or data
		}
		return offs[n]
	}
	pc, nc := cut(pOffs), cut(nOffs)
	return []growingCapture{
		{"pcap", pcap[:pc], pcap[pc:], n, frames},
		{"pcapng", ng[:nc], ng[nc:], n, frames},
	}
}

// growOnEOF appends to the file it reads the first time it reaches the
// end: a writer that adds records just after the reader caught up.
type growOnEOF struct {
	f      *os.File
	grow   func()
	grown  bool
	reads  int // reads after the growth
	bytesN int64
}

func (g *growOnEOF) Read(p []byte) (int, error) {
	if g.grown {
		g.reads++
	}
	n, err := g.f.Read(p)
	g.bytesN += int64(n)
	if err == io.EOF && !g.grown {
		g.grown = true
		g.grow()
	}
	return n, err
}

// appendFile appends b to the file at path.
func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Error(err)
		return
	}
	if _, err := f.Write(b); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// TestReplayGrowingFile: like tcpdump -r, replay reads a file that grows
// up to the end it first finds and stops there. What was appended before
// the reader got there is read; what is appended after is not; a record
// still being written at that moment is a truncated last record. The
// replay ends, and counts exactly the frames it delivered.
func TestReplayGrowingFile(t *testing.T) {
	frames := synthFrames(t, ring.LinkTypeEthernet, 3, 10, 0) // 30 frames
	for _, mode := range []struct {
		name string
		mid  bool
	}{{"at-record-boundary", false}, {"mid-record", true}} {
		for _, gc := range growingCaptures(t, frames, 12, mode.mid) {
			t.Run(gc.name+"/appended-before-read/"+mode.name, func(t *testing.T) {
				path, f := createGrowing(t, gc.head)
				rp, err := ring.OpenReplay(f, ring.ReplayConfig{BatchSize: 8})
				if err != nil {
					t.Fatal(err)
				}
				defer rp.Close()
				// The header is read; the reader has not started.
				appendFile(t, path, gc.tail)
				got, _, err := drain(rp.Sources()[0], 8)
				checkGrown(t, rp, got, err, gc.all, len(gc.all), false)
			})
			t.Run(gc.name+"/appended-at-eof/"+mode.name, func(t *testing.T) {
				path, f := createGrowing(t, gc.head)
				g := &growOnEOF{f: f, grow: func() { appendFile(t, path, gc.tail) }}
				rp, err := ring.OpenReplay(g, ring.ReplayConfig{BatchSize: 8})
				if err != nil {
					t.Fatal(err)
				}
				defer rp.Close()
				got, _, err := drain(rp.Sources()[0], 8)
				checkGrown(t, rp, got, err, gc.all, gc.headFrames, mode.mid)
				if !g.grown || g.reads != 0 || g.bytesN != int64(len(gc.head)) || rp.Stats().FileBytes != int64(len(gc.head)) {
					t.Errorf("grown %v, %d reads after the end, %d bytes read (stats %d), want true, 0, %d",
						g.grown, g.reads, g.bytesN, rp.Stats().FileBytes, len(gc.head))
				}
			})
		}
	}
	// A writer appending in random pieces, records cut anywhere, while
	// the replay runs: it ends, delivers a prefix of what was written and
	// counts what it delivered; a later replay of the whole file gets all.
	for _, gc := range growingCaptures(t, frames, 0, false) {
		t.Run(gc.name+"/concurrent-writer", func(t *testing.T) {
			path, f := createGrowing(t, gc.head)
			rp, err := ring.OpenReplay(f, ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer rp.Close()
			// A third is there when the replay starts, so some frames are
			// always read; the rest comes while it runs.
			pre := len(gc.tail) / 3
			appendFile(t, path, gc.tail[:pre])
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(3, 4))
				for tail := gc.tail[pre:]; len(tail) > 0; {
					n := min(len(tail), 1+r.IntN(300))
					appendFile(t, path, tail[:n])
					tail = tail[n:]
					time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
				}
			}()
			var got [2][]frame
			var errs [2]error
			var rw sync.WaitGroup
			for i, src := range rp.Sources() {
				rw.Add(1)
				go func() {
					defer rw.Done()
					got[i], _, errs[i] = drain(src, 4)
				}()
			}
			rw.Wait()
			wg.Wait()
			for i, err := range errs {
				if err != io.EOF {
					t.Fatalf("worker %d: %v, want io.EOF", i, err)
				}
			}
			if err := rp.Err(); err != nil {
				t.Fatalf("Err() = %v", err)
			}
			st := rp.Stats()
			n := len(got[0]) + len(got[1])
			if st.Packets != uint64(n) || n == 0 || n > len(gc.all) || !st.Done {
				t.Fatalf("%d frames delivered, stats %+v, %d written", n, st, len(gc.all))
			}
			// Each worker's frames are a subsequence, in order, of the
			// first n written.
			for _, w := range got {
				j := 0
				for _, fr := range w {
					for j < n && !fr.equal(gc.all[j]) {
						j++
					}
					if j == n {
						t.Fatalf("a delivered frame is not among the first %d written", n)
					}
					j++
				}
			}
			t.Logf("%d of %d frames read while the file grew, truncated %v", n, len(gc.all), st.Truncated)
			all := replay(t, append(append([]byte{}, gc.head...), gc.tail...), ring.ReplayConfig{}).workers[0]
			if len(all) != len(gc.all) {
				t.Fatalf("the finished file: %d frames, want %d", len(all), len(gc.all))
			}
		})
	}
}

// checkGrown checks a replay of a growing file: it ended at io.EOF
// without error, delivered and counted the first want frames of all, and
// is truncated as said.
func checkGrown(t *testing.T, rp *ring.Replay, got []frame, err error, all []frame, want int, truncated bool) {
	t.Helper()
	if err != io.EOF {
		t.Fatalf("drain: %v, want io.EOF", err)
	}
	if rp.Err() != nil {
		t.Errorf("Err() = %v", rp.Err())
	}
	st := rp.Stats()
	if len(got) != want || st.Packets != uint64(want) || !st.Done {
		t.Fatalf("%d frames delivered, stats %+v, want %d", len(got), st, want)
	}
	for i := range got {
		if !got[i].equal(all[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if rp.Truncated() != truncated {
		t.Errorf("Truncated() = %v, want %v", rp.Truncated(), truncated)
	}
}

// createGrowing writes head to a new file and opens it for reading; the
// test appends to path while the replay reads f.
func createGrowing(t *testing.T, head []byte) (path string, f *os.File) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "grow")
	if err := os.WriteFile(path, head, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}

// TestReplayPcapngBlocksFillWindow: the blocks between two packets of a
// pcapng file may fill the 1 MiB read-ahead window in which the reader
// checks them, so that the next block's header lies beyond it. The file
// is valid: every frame is delivered, with no error and no truncation.
// (Found by review while writing FuzzReplay: the check asked bufio for
// more than its window and reported "bufio: buffer full" at the packet,
// or took a section header at the edge for the end of a cut file.)
func TestReplayPcapngBlocksFillWindow(t *testing.T) {
	const window = 1 << 20 // the reader's read-ahead window
	frames := synthFrames(t, ring.LinkTypeEthernet, 1, 3, 0)
	ng, offs := pcapngBytes(t, frames[:2])
	second, _ := pcapngBytes(t, frames[2:])
	custom := func(size int) []byte { return ngBlock(0x99, make([]byte, size-12)) }
	cases := []struct {
		name string
		data []byte
	}{
		// 12-byte blocks up to 4 bytes short of the window: the
		// packet block's header does not fit.
		{"packet-header-past-window", append(splice(ng, offs[1], bytes.Repeat(custom(12), (window-4)/12)), second...)},
		// 16-byte blocks filling the window exactly.
		{"window-filled", append(splice(ng, offs[1], bytes.Repeat(custom(16), window/16)), second...)},
		// Blocks ending 8 bytes short of the window, then a second
		// section: its header's byte-order magic lies beyond it.
		{"section-header-at-edge", append(append(append([]byte{}, ng...),
			append(bytes.Repeat(custom(16), (window-8-24)/16), custom(24)...)...), second...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rp, err := ring.OpenReplay(bytes.NewReader(c.data), ring.ReplayConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer rp.Close()
			got, _, err := drain(rp.Sources()[0], 0)
			if err != io.EOF || rp.Err() != nil || rp.Truncated() {
				t.Fatalf("drain: %v; Err() = %v; Truncated() = %v; want io.EOF, nil, false", err, rp.Err(), rp.Truncated())
			}
			if len(got) != len(frames) || rp.Stats().Packets != uint64(len(frames)) {
				t.Fatalf("%d frames delivered, %d counted, want %d", len(got), rp.Stats().Packets, len(frames))
			}
			for i := range got {
				if !got[i].equal(frames[i]) {
					t.Errorf("frame %d differs", i)
				}
			}
		})
	}
}
