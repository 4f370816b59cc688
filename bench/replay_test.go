package bench

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/traffic"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

var (
	capOnce  sync.Once
	capBytes []byte
	capStats traffic.Stats
)

// capture is 20,000 connections, 5,000 open at once, 10% IPv6, 10% VLAN.
func capture(b *testing.B) ([]byte, traffic.Stats) {
	capOnce.Do(func() {
		var buf bytes.Buffer
		st, err := traffic.Write(&buf, traffic.Options{
			Connections: 20000, Concurrent: 5000, IPv6Share: 0.1, VLANShare: 0.1, Seed: 1,
		})
		if err != nil {
			b.Fatal(err)
		}
		capBytes, capStats = buf.Bytes(), st
	})
	return capBytes, capStats
}

// BenchmarkReplay replays the capture from memory through the whole
// pipeline (read, decode, flow table, detectors, event encoding) with one
// worker and reports packets/s, ns/packet and heap allocations per packet.
func BenchmarkReplay(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(map[int]string{1: "workers=1", 2: "workers=2"}[workers], func(b *testing.B) {
			data, st := capture(b)
			cfg := sensor.Config{Workers: workers, Flows: 100_000}
			b.SetBytes(int64(len(data)))
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			for b.Loop() {
				sum, err := sensor.Replay(context.Background(), bytes.NewReader(data), cfg, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if sum.Packets != uint64(st.Packets) || sum.Flows.Created != uint64(st.Connections) || sum.EventsTotal() != 0 {
					b.Fatalf("replay saw %d packets, %d flows, %d events; want %d, %d, 0",
						sum.Packets, sum.Flows.Created, sum.EventsTotal(), st.Packets, st.Connections)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			pkts := float64(st.Packets) * float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/pkts, "ns/packet")
			b.ReportMetric(pkts/b.Elapsed().Seconds(), "packets/s")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/pkts, "allocs/packet")
		})
	}
}
