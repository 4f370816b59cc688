//go:build linux

package refs

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tcpsentry/tcpsentry/ring"
)

// BenchmarkConnLines measures what the cache lines of a flow-table slot
// cost when every packet reaches a random one of a GiB of them, as at a
// million flows: 16 chases run interleaved over 384-byte slots (six
// lines: the size of a flowtable.Conn when this was measured; it has four
// now), in 2 MiB pages, so that their misses
// overlap as the worker's read-ahead overlaps them; each step reads line
// 0 (the next slot's index) and the other lines listed. It is the
// evidence for what shrinking a Conn, or splitting it into hot and cold
// parts, would buy (docs/performance.md):
//
//	go test ./bench/refs -run XXX -bench ConnLines
func BenchmarkConnLines(b *testing.B) {
	const (
		slot   = 384 / 8 // words
		size   = 1 << 30
		chases = 16
	)
	n := size / (slot * 8)
	mem := make([]uint64, n*slot)
	ring.AdviseHugePages(mem)
	// One random cycle through all slots; line l of slot i holds 1 in its
	// first word, so every read is used.
	perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
	for k := range n {
		s := perm[k] * slot
		mem[s] = uint64(perm[(k+1)%n])
		for l := 1; l < 6; l++ {
			mem[s+l*8] = 1
		}
	}
	for _, lines := range [][]int{{}, {1}, {2}, {1, 2}, {1, 2, 3}, {1, 2, 3, 4, 5}} {
		b.Run(fmt.Sprintf("lines=0%v", lines), func(b *testing.B) {
			var cur [chases]uint64
			for k := range cur {
				cur[k] = uint64(perm[k*(n/chases)])
			}
			var sum uint64
			steps := 0
			for b.Loop() {
				for k := range cur {
					s := cur[k] * slot
					for _, l := range lines {
						sum += mem[s+uint64(l)*8]
					}
					cur[k] = mem[s]
				}
				steps += chases
			}
			sink = sum
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/slot")
		})
	}
}
