package ring

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

func TestPickWorker(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 64} {
		counts := make([]int, n)
		for i := uint64(0); i < 1<<12; i++ {
			h := i * 0x9e3779b97f4a7c15
			w := pickWorker(h, n)
			if w < 0 || uint64(w) >= n {
				t.Fatalf("n=%d: worker %d", n, w)
			}
			// The low 32 bits (the flow table's) do not matter.
			if pickWorker(h^0xffffffff, n) != w {
				t.Fatalf("n=%d: low bits changed the worker", n)
			}
			counts[w]++
		}
		for w, c := range counts {
			if d := c - (1<<12)/int(n); d*d > (1<<12)/int(n)*(1<<12)/int(n)/16 {
				t.Errorf("n=%d: worker %d got %d of %d", n, w, c, 1<<12)
			}
		}
	}
	if pickWorker(^uint64(0), 5) != 4 || pickWorker(0xffffffff, 5) != 0 {
		t.Error("extremes")
	}
}

// handPcap writes n records of size-byte frames, little endian, µs.
func handPcap(n, size int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magicMicros)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = binary.LittleEndian.AppendUint32(b, 65535)
	b = binary.LittleEndian.AppendUint32(b, uint32(LinkTypeEthernet))
	frame := bytes.Repeat([]byte{0x45}, size)
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, uint32(1_800_000_000+i/1000))
		b = binary.LittleEndian.AppendUint32(b, uint32(i%1000*1000))
		b = binary.LittleEndian.AppendUint32(b, uint32(size))
		b = binary.LittleEndian.AppendUint32(b, uint32(size))
		b = append(b, frame...)
	}
	return b
}

// BenchmarkCapReader is the file reading alone: pcapgo behind the record
// checks, no fanout, no copy into batches.
func BenchmarkCapReader(b *testing.B) {
	const n = 50000
	data := handPcap(n, 170)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, err := openCapture(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		frames := 0
		for {
			_, _, _, _, err := c.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			frames++
		}
		if frames != n {
			b.Fatalf("%d frames", frames)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*n)/sec, "frames/s")
	b.ReportMetric(sec*1e9/float64(b.N*n), "ns/frame")
}
