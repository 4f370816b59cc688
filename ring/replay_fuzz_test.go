package ring_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// fuzzSeedMax is the largest capture file taken as a seed: the fuzzing
// engine mutates small inputs best.
const fuzzSeedMax = 64 << 10

// replayHangLimit is how long one fuzz input may take to replay before it
// counts as a hang. A replay of the largest inputs takes milliseconds;
// the limit allows for a machine shared with other work.
const replayHangLimit = 20 * time.Second

// FuzzReplay feeds arbitrary bytes to OpenReplay as a capture file (pcap,
// pcapng, either gzipped) and reads the replay with one worker (2 or 3 for
// a quarter of the inputs), batches of any size, and now and then sources
// that close themselves after a few batches. Whatever the
// bytes: no panic and no hang; OpenReplay fails with one of its documented
// errors, or the sources deliver batches and then end (io.EOF, or
// ErrClosed once closed); every frame is a supported link type, at most
// ring.MaxFrameLen bytes and no longer than its wire length; Stats counts
// exactly the frames delivered (plus those dropped for closed sources);
// an error that stops the replay is a RecordError naming the record after
// the last one read; and a small uncompressed file allocates nothing like
// what its headers may claim.
func FuzzReplay(f *testing.F) {
	for _, s := range replayFuzzSeeds(f) {
		f.Add(s, uint8(0), uint8(0), uint8(0), uint8(0))    // one worker, default batches, read to the end
		f.Add(s, uint8(0xc0), uint8(5), uint8(3), uint8(0)) // two workers, batches of 5 read 3 at a time
	}
	// Sources that close themselves after a few batches.
	frames := synthFrames(f, ring.LinkTypeEthernet, 3, 8, 0)
	f.Add(pcapBytes(f, ring.LinkTypeEthernet, frames, true), uint8(0xc1), uint8(2), uint8(0), uint8(0xf1))
	f.Add(pcapBytes(f, ring.LinkTypeEthernet, frames, true), uint8(0), uint8(1), uint8(1), uint8(0xf0))

	f.Fuzz(func(t *testing.T, data []byte, workers, batch, read, stop uint8) {
		// With more than one worker, when the reader tells an idle
		// worker the clock depends on timing, and with sources closing
		// early, which frames it still reads: so does the coverage of
		// such runs, which misleads the fuzzing engine (it spends its
		// time minimizing inputs whose coverage only looked new). Most
		// runs have one worker that reads to the end.
		shape := replayShape{workers: 1, batch: int(batch), read: int(read)}
		if workers >= 0xc0 {
			shape.workers = 2 + int(workers&1)
		}
		if stop >= 0xf0 {
			shape.stop = 1 + int(stop&0x0f)
		}
		checkReplay(t, data, shape)
	})
}

// replayShape is how checkReplay reads a replay.
type replayShape struct {
	workers int // ReplayConfig.Workers
	batch   int // ReplayConfig.BatchSize (0: default)
	read    int // the size of the caller's batch (0: the same)
	stop    int // each source closes itself after this many batches (0: never)
}

// checkReplay replays data as shape says and checks the invariants of
// FuzzReplay.
func checkReplay(t *testing.T, data []byte, shape replayShape) {
	gzipped := len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
	// TotalAlloc is cumulative: the check holds for inputs small enough
	// that nothing legitimate comes near the bound. A gzip stream is
	// left out: a few KiB of it may inflate to many MiB of capture.
	measure := !gzipped && len(data) <= fuzzSeedMax
	var before runtime.MemStats
	if measure {
		runtime.ReadMemStats(&before)
	}

	done := make(chan struct{})
	var res replayRun
	go func() {
		defer close(done)
		res = runReplay(data, shape)
	}()
	timer := time.NewTimer(replayHangLimit)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		buf := make([]byte, 1<<20)
		t.Fatalf("the replay did not end within %v (shape %+v)\n%s", replayHangLimit, shape, buf[:runtime.Stack(buf, true)])
	}

	if measure {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > maxHostileAlloc {
			t.Errorf("a replay of %d bytes allocated %d bytes, want at most %d", len(data), n, maxHostileAlloc)
		}
	}

	if res.openErr != nil {
		err := res.openErr
		if res.rp != nil {
			t.Fatalf("OpenReplay returned a replay and the error %v", err)
		}
		known := errors.Is(err, ring.ErrNotCapture) || errors.Is(err, ring.ErrUnsupportedLink) || errors.Is(err, ring.ErrCorrupt)
		if !known && !(gzipped && gzipError(err)) {
			t.Fatalf("OpenReplay: %v: not ErrNotCapture, ErrUnsupportedLink or ErrCorrupt", err)
		}
		return
	}
	for _, msg := range res.bad {
		t.Error(msg)
	}
	rp := res.rp
	st := rp.Stats()
	if !st.Done {
		t.Errorf("the reader has not stopped after every source ended: %+v", st)
	}
	if shape.stop == 0 {
		if st.Packets != res.frames || st.Bytes != res.bytes || st.Dropped != 0 {
			t.Errorf("%d frames of %d bytes delivered; Stats: %+v", res.frames, res.bytes, st)
		}
	} else if res.frames+st.Dropped > st.Packets {
		t.Errorf("%d frames delivered and %d dropped, more than the %d read", res.frames, st.Dropped, st.Packets)
	}
	if err := rp.Err(); err != nil {
		var re *ring.RecordError
		if !errors.As(err, &re) {
			t.Fatalf("Err() = %v (%T), want a *RecordError", err, err)
		}
		if re.Record != int64(st.Packets)+1 {
			t.Errorf("Err() = %v: record %d, but %d were read before it", err, re.Record, st.Packets)
		}
		if re.Offset < 0 || !gzipped && re.Offset > int64(len(data)) {
			t.Errorf("Err() = %v: offset outside a file of %d bytes", err, len(data))
		}
		if !errors.Is(err, ring.ErrCorrupt) && !errors.Is(err, ring.ErrUnsupportedLink) && !(gzipped && gzipError(err)) {
			t.Errorf("Err() = %v: not ErrCorrupt or ErrUnsupportedLink", err)
		}
	}
}

// replayRun is what runReplay saw.
type replayRun struct {
	openErr error
	rp      *ring.Replay
	frames  uint64 // frames delivered, every source
	bytes   uint64 // their captured bytes
	bad     []string
}

// runReplay opens data and reads every source concurrently, as workers
// do, then closes the replay.
func runReplay(data []byte, shape replayShape) replayRun {
	cfg := ring.ReplayConfig{Workers: shape.workers, BatchSize: shape.batch}
	if shape.workers > 1 {
		cfg.Hash = symHashNoAlloc
	}
	rp, err := ring.OpenReplay(bytes.NewReader(data), cfg)
	if err != nil {
		return replayRun{openErr: err, rp: rp}
	}
	read := shape.read
	if read == 0 {
		read = shape.batch
	}
	srcs := rp.Sources()
	type result struct {
		frames, bytes uint64
		bad           []string
	}
	results := make([]result, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			b := ring.NewBatch(read)
			closed := false
			for batches := 0; ; {
				err := src.NextBatch(b)
				if err != nil {
					switch {
					case b.N != 0:
						r.bad = append(r.bad, fmt.Sprintf("worker %d: NextBatch: %v with %d frames", i, err, b.N))
					case err == io.EOF:
					case errors.Is(err, ring.ErrClosed) && closed:
					default:
						r.bad = append(r.bad, fmt.Sprintf("worker %d: NextBatch: %v, want io.EOF", i, err))
					}
					return
				}
				if b.N < 0 || b.N > len(b.Frames) {
					r.bad = append(r.bad, fmt.Sprintf("worker %d: a batch of %d frames in room for %d", i, b.N, len(b.Frames)))
					return
				}
				if b.N == 0 && b.Clock == 0 {
					r.bad = append(r.bad, fmt.Sprintf("worker %d: an empty batch without a clock", i))
				}
				if b.N > 0 && !supportedLink(b.Link) {
					r.bad = append(r.bad, fmt.Sprintf("worker %d: a batch of link type %d", i, b.Link))
				}
				for j := range b.N {
					n := len(b.Frames[j])
					if n > ring.MaxFrameLen || b.WireLen[j] < n {
						r.bad = append(r.bad, fmt.Sprintf("worker %d: a frame of %d bytes, %d on the wire", i, n, b.WireLen[j]))
					}
					r.bytes += uint64(n)
				}
				r.frames += uint64(b.N)
				if batches++; shape.stop > 0 && batches >= shape.stop && !closed {
					src.Close()
					closed = true
				}
			}
		}()
	}
	wg.Wait()
	rp.Close()
	out := replayRun{rp: rp}
	for _, r := range results {
		out.frames += r.frames
		out.bytes += r.bytes
		out.bad = append(out.bad, r.bad...)
	}
	return out
}

// gzipError reports whether err is a damaged gzip stream's: the replay of
// a .gz file passes it on.
func gzipError(err error) bool {
	var flateErr flate.CorruptInputError
	return errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.As(err, &flateErr)
}

func supportedLink(l ring.LinkType) bool {
	switch l {
	case ring.LinkTypeNull, ring.LinkTypeEthernet, ring.LinkTypeRaw, ring.LinkTypeLoop,
		ring.LinkTypeLinuxSLL, ring.LinkTypeIPv4, ring.LinkTypeIPv6, ring.LinkTypeLinuxSLL2:
		return true
	}
	return false
}

// replayFuzzSeeds returns the seed corpus: the small captures of the
// repository, and hand-made files that reach each branch of the reader.
func replayFuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, pattern := range []string{"testdata/*.pcap*", "../testdata/*.pcap*"} {
		names, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if fi, err := os.Stat(name); err == nil && fi.Size() <= fuzzSeedMax {
				seeds = append(seeds, readFile(t, name))
			}
		}
	}
	if len(seeds) < 10 {
		t.Fatalf("only %d capture files for seeds", len(seeds))
	}

	frames := synthFrames(t, ring.LinkTypeEthernet, 2, 3, 0)
	pcapUs := pcapBytes(t, ring.LinkTypeEthernet, frames, false)
	pcapNs := pcapBytes(t, ring.LinkTypeLinuxSLL2, synthFrames(t, ring.LinkTypeLinuxSLL2, 1, 3, 0), true)
	snapped := pcapBytes(t, ring.LinkTypeRaw, synthFrames(t, ring.LinkTypeRaw, 2, 2, 40), true)
	ng, nOffs := pcapngBytes(t, frames)
	mixed, _ := pcapngBytes(t, append(synthFrames(t, ring.LinkTypeLinuxSLL, 1, 2, 0), synthFrames(t, ring.LinkTypeIPv6, 1, 2, 0)...))
	pOffs := pcapRecordOffsets(pcapUs)
	shbLen := int(binary.LittleEndian.Uint32(ng[4:]))

	spb := ngBlock(3, append(binary.LittleEndian.AppendUint32(nil, uint32(len(frames[0].Data))), frames[0].Data...))
	dsb := ngBlock(0x0a, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(nil, 0x544c534b), 0))
	custom := ngBlock(0x99, []byte("a custom block"))
	// An interface of an unsupported link type (802.11) after the first
	// packet.
	idb80211 := ngBlock(1, []byte{105, 0, 0, 0, 0, 0, 4, 0})

	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	seeds = append(seeds,
		nil,
		[]byte{0xd4, 0xc3, 0xb2},
		pcapUs,
		pcapNs,
		bigEndianPcap(pcapUs),
		snapped,
		pcapUs[:pOffs[2]+20],             // cut inside a record
		putLE(pcapUs, pOffs[1]+8, 1<<31), // a record claiming 2 GiB
		putLE(pcapUs, pOffs[1]+12, 10),   // captured more than on the wire
		pcapBytes(t, 105, nil, false),    // 802.11: unsupported
		ng,
		mixed,
		ng[:shbLen],                    // a section header alone
		splice(ng, nOffs[1], spb),      // a simple packet block
		splice(ng, nOffs[1], dsb),      // decryption secrets
		splice(ng, nOffs[2], custom),   // an unknown block
		splice(ng, nOffs[2], idb80211), // a late interface of another link type
		append(append([]byte{}, ng...), mixed...), // two sections
		putLE(ng, nOffs[0]+4, 1<<31),              // a block claiming 2 GiB
		ng[:nOffs[3]+30],                          // cut inside a block
		gz(pcapUs),
		gz(ng),
		gz(pcapUs)[:60], // a gzip stream cut short
		// Blocks that fill the reader's 1 MiB window between two packets
		// (TestReplayPcapngBlocksFillWindow), gzipped to a few KiB.
		gz(splice(ng, nOffs[1], bytes.Repeat(ngBlock(0x99, nil), (1<<20-4)/12))),
	)
	return seeds
}
