package ring_test

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/tcpsentry/tcpsentry/ring"
)

// manyFrames repeats 800 distinct frames (40 flows) n/800 times, with
// rising capture times.
func manyFrames(t testing.TB, link ring.LinkType, n int) []frame {
	base := synthFrames(t, link, 40, 20, 0)
	out := make([]frame, 0, n)
	for len(out) < n {
		for _, f := range base {
			if len(out) == n {
				break
			}
			f.TS = t0 + int64(len(out))*1000
			out = append(out, f)
		}
	}
	return out
}

type benchFile struct {
	name   string
	data   []byte
	frames int
}

var (
	benchOnce  sync.Once
	benchFiles []benchFile
)

func benchCaptures(t testing.TB) []benchFile {
	benchOnce.Do(func() {
		const n = 50000
		eth := manyFrames(t, ring.LinkTypeEthernet, n)
		sll2 := manyFrames(t, ring.LinkTypeLinuxSLL2, n)
		ng, _ := pcapngBytes(t, eth)
		ng2, _ := pcapngBytes(t, sll2)
		benchFiles = []benchFile{
			{"pcap", pcapBytes(t, ring.LinkTypeEthernet, eth, true), n},
			{"pcapng", ng, n},
			{"pcapng-sll2", ng2, n},
		}
	})
	return benchFiles
}

// sink drains a source without copying or allocating.
func sink(src ring.Source, b *ring.Batch) (frames int, err error) {
	for {
		if err := src.NextBatch(b); err != nil {
			return frames, err
		}
		frames += b.N
	}
}

// Steady-state replay allocates nothing: not per frame, not per batch.
// The count is process-wide, so it includes the reader goroutine and, with
// two workers, the other worker.
func TestReplayNoAllocs(t *testing.T) {
	for _, f := range benchCaptures(t) {
		for _, workers := range []int{1, 2} {
			for _, filter := range []string{"", "tcp"} { // "tcp" runs the filter over every frame and keeps it
				name := f.name + "/workers=" + string(rune('0'+workers))
				if filter != "" {
					name += "/filter=" + filter
				}
				t.Run(name, func(t *testing.T) {
					rp, err := ring.OpenReplay(bytes.NewReader(f.data), ring.ReplayConfig{Workers: workers, Hash: symHashNoAlloc, Filter: filter})
					if err != nil {
						t.Fatal(err)
					}
					defer rp.Close()
					srcs := rp.Sources()
					var wg sync.WaitGroup
					for _, s := range srcs[1:] {
						wg.Add(1)
						go func() {
							defer wg.Done()
							sink(s, ring.NewBatch(0))
						}()
					}
					src, b := srcs[0], ring.NewBatch(0)
					// Warm up: every buffer's arena (made on first use), pcapgo's buffer.
					for range ring.ReplayBuffers + 8 {
						if err := src.NextBatch(b); err != nil {
							t.Fatal(err)
						}
					}
					var frames int
					allocs := testing.AllocsPerRun(40, func() {
						if err := src.NextBatch(b); err != nil {
							t.Fatal(err)
						}
						frames += b.N
					})
					if frames < 40*200 {
						t.Fatalf("only %d frames in 41 batches", frames)
					}
					if allocs != 0 {
						t.Errorf("%.2f allocations per batch of about %d frames", allocs, frames/41)
					}
					for _, s := range srcs {
						s.Close()
					}
					wg.Wait()
				})
			}
		}
	}
}

// BenchmarkReplay replays an in-memory capture of 50,000 frames (40 flows,
// 54..1454 bytes, 170 on average) per iteration, consumers doing nothing.
func BenchmarkReplay(b *testing.B) {
	for _, f := range benchCaptures(b) {
		for _, workers := range []int{1, 2} {
			b.Run(f.name+"/workers="+string(rune('0'+workers)), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(f.data)))
				var bs [2]*ring.Batch
				for i := range bs {
					bs[i] = ring.NewBatch(0)
				}
				for b.Loop() {
					rp, err := ring.OpenReplay(bytes.NewReader(f.data), ring.ReplayConfig{Workers: workers, Hash: symHashNoAlloc})
					if err != nil {
						b.Fatal(err)
					}
					var wg sync.WaitGroup
					counts := make([]int, workers)
					for i, s := range rp.Sources() {
						wg.Add(1)
						go func() {
							defer wg.Done()
							n, err := sink(s, bs[i])
							if err != io.EOF {
								b.Error(err)
							}
							counts[i] = n
						}()
					}
					wg.Wait()
					if total := counts[0] + counts[len(counts)-1]*(workers-1); total != f.frames {
						b.Fatalf("%d frames, want %d", total, f.frames)
					}
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(b.N*f.frames)/sec, "frames/s")
				b.ReportMetric(sec*1e9/float64(b.N*f.frames), "ns/frame")
			})
		}
	}
}
