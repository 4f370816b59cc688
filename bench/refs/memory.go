//go:build linux

// Package refs holds the references a benchmark measures in the same run
// as tcpsentry, so that its figures can be read against this machine
// rather than against numbers from elsewhere: the cost of one random
// memory access (MemoryAccess) and a plain gopacket decoder with a Go map
// of flows (GopacketReader).
package refs

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// lineSize is the cache line the chase touches once per step.
const lineSize = 64

// node is one cache line of the chase: the index of the next node and
// padding, so that two steps never share a line. Go allocates objects of
// 32 KiB and more page-aligned, so the nodes of any size worth measuring
// sit on line boundaries.
type node struct {
	next uint64
	_    [lineSize - 8]byte
}

// sink keeps the chase's final index alive: a result nobody reads could
// let a compiler drop the loop.
var sink uint64

// MemoryAccess returns the cost in ns of one dependent random memory
// access: a pointer chase over a random single cycle (Sattolo's
// algorithm) through size bytes split into 64-byte nodes (one cache line
// each, the next index stored in the node), steps steps, after one
// warm-up pass of min(steps, nodes) steps. size is rounded down to a
// multiple of 64. With huge set the nodes are in 2 MiB pages where the
// kernel allows (ring.AdviseHugePages), as tcpsentry's tables are. The memory
// is released before it returns.
//
// Each step's address depends on the previous load, so neither the
// out-of-order core nor the prefetchers can overlap them: with size well
// above the last-level cache it is the latency of DRAM plus, for large
// sizes, the page walks of TLB misses.
func MemoryAccess(size int64, steps int, seed uint64, huge bool) (nsPerAccess float64, err error) {
	n := size / lineSize
	if n < 2 {
		return 0, fmt.Errorf("refs: memory access over %d bytes: need at least 2 nodes of %d bytes", size, lineSize)
	}
	if steps < 1 {
		return 0, fmt.Errorf("refs: memory access with %d steps: need at least 1", steps)
	}
	if n > math.MaxInt {
		return 0, errors.New("refs: memory access size too large for this platform")
	}
	nodes := make([]node, n)
	defer func() {
		// Give a GiB back now rather than at the next GC cycle: the
		// benchmark measures tcpsentry's memory right after.
		nodes = nil
		debug.FreeOSMemory()
	}()
	if huge {
		ring.AdviseHugePages(nodes) // before buildCycle's first touch
	}
	buildCycle(nodes, rand.New(rand.NewPCG(seed, 0x6d656d)))

	i := uint64(0)
	for range min(int64(steps), n) {
		i = nodes[i].next
	}
	start := time.Now()
	for range steps {
		i = nodes[i].next
	}
	took := time.Since(start)
	sink = i
	return float64(took.Nanoseconds()) / float64(steps), nil
}

// buildCycle links nodes into one random cycle through all of them with
// Sattolo's algorithm (Fisher-Yates drawing j strictly below i), which
// yields only single-cycle permutations: a chase from any node visits
// every node once before it returns. It shuffles the next fields in
// place, so a GiB of nodes needs no index array beside it.
func buildCycle(nodes []node, rng *rand.Rand) {
	for i := range nodes {
		nodes[i].next = uint64(i)
	}
	for i := len(nodes) - 1; i > 0; i-- {
		j := rng.IntN(i)
		nodes[i].next, nodes[j].next = nodes[j].next, nodes[i].next
	}
}
