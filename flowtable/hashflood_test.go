package flowtable

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// Hash flooding: an attacker who knows the flow hash sends SYNs whose
// keys all land in one bucket of the index, so that every lookup walks
// one long cluster (linear probing) and the table's cost per packet grows
// with the number of such flows. The seed (Config.Seed, random per
// process) is what stops it: keys crafted against one seed are random
// keys under another.

// floodServer is the attacked server, 10.0.0.2:80.
var floodServer = v4(10, 0, 0, 2)

// floodSYN is a client's SYN to floodServer: its flow key is what the
// attacker chooses.
func floodSYN(addr uint32, port uint16) decode.Packet {
	return seg(v4(byte(addr>>24), byte(addr>>16), byte(addr>>8), byte(addr)), port, floodServer, 80, S, addr, 0, 0)
}

// indexSize is the number of index entries of a table of capacity
// connections (New's rule: the power of two at or above twice it).
func indexSize(capacity int) uint64 {
	n := uint64(2)
	for n < 2*uint64(capacity) {
		n <<= 1
	}
	return n
}

// craftColliding returns n SYNs from distinct clients whose keys all have
// the same home in the index of a table of capacity connections hashed
// with the given seed: the attack on a table whose seed is known (0 stands
// for an unseeded hash). They also collide in every smaller table, whose
// home is the low bits of the same value. It tries random clients, about
// indexSize(capacity) per key found.
func craftColliding(n, capacity int, seed uint64) []decode.Packet {
	h := Hasher{seed: seed}
	mask := indexSize(capacity) - 1
	rng := rand.New(rand.NewPCG(0xf100d, 1))
	target := uint64(0)
	out := make([]decode.Packet, 0, n)
	seen := make(map[Key]bool, n)
	// The key of a SYN from client:port to the server, as words (Probe's
	// form): the server's address is the lower, so it is endpoint A.
	a0 := uint64(be32(floodServer[:4])) << 32
	for len(out) < n {
		// Clients in 100.64.0.0/10.
		addr, port := 100<<24|64<<16|rng.Uint32()>>10, uint16(1024+rng.IntN(64512))
		sum := h.sum(a0, 0, uint64(addr)<<32, 0, 80<<48|uint64(port)<<32, 4<<8)
		if (sum>>slotBits)&mask != target {
			continue
		}
		p := floodSYN(addr, port)
		k, _ := KeyOf(&p)
		if h.Sum(&k) != sum {
			panic("craftColliding: the key's words are not Sum's")
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// randomSYNs returns n SYNs from distinct random clients.
func randomSYNs(n int, seed uint64) []decode.Packet {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]decode.Packet, 0, n)
	seen := make(map[Key]bool, n)
	for len(out) < n {
		p := floodSYN(100<<24|64<<16|rng.Uint32()>>10, uint16(1024+rng.IntN(64512)))
		if k, _ := KeyOf(&p); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

// probeLen is the number of index entries a lookup of k reads: 1 when k
// sits at its home.
func probeLen(t *Table, k *Key) int {
	h := t.Hash(k)
	tag := h &^ slotMask
	n := 1
	for i := (h >> slotBits) & t.mask; ; i = (i + 1) & t.mask {
		e := t.index[i]
		if e == 0 {
			return -1 // not in the table
		}
		if e&^slotMask == tag && t.conns[e&slotMask-1].Key.equal(k) {
			return n
		}
		n++
	}
}

// probeStats returns the mean and longest probe length of the table's
// connections.
func probeStats(t *Table) (mean float64, longest int) {
	n, sum := 0, 0
	for i := range t.index {
		e := t.index[i]
		if e == 0 {
			continue
		}
		l := probeLen(t, &t.conns[e&slotMask-1].Key)
		sum += l
		n++
		longest = max(longest, l)
	}
	if n == 0 {
		return 0, 0
	}
	return float64(sum) / float64(n), longest
}

// fillTable puts every SYN of pkts in a fresh table of capacity
// connections hashed with seed (0: unseeded, the attacked hash).
func fillTable(tb testing.TB, capacity int, seed uint64, pkts []decode.Packet) *Table {
	tb.Helper()
	t, err := New(Config{Capacity: capacity}, nopHandler{})
	if err != nil {
		tb.Fatal(err)
	}
	t.hasher = Hasher{seed: seed} // New never keeps a zero seed: set it here
	for i := range pkts {
		t.Packet(&pkts[i], int64(i)*1e3)
	}
	if t.Stats().Active != min(len(pkts), capacity) {
		tb.Fatalf("%d connections in the table, want %d", t.Stats().Active, min(len(pkts), capacity))
	}
	return t
}

// TestHashFloodProbeLength: keys crafted so that all share one bucket of
// an unseeded table (2,048 SYNs into a table of 4,096: one cluster, a
// lookup reads 1,024 entries on average) are random keys to a seeded
// table: the mean probe length stays within twice that of random keys,
// and the longest within twice the longest, for every seed tried (fixed
// seeds, so that the test is deterministic).
func TestHashFloodProbeLength(t *testing.T) {
	const capacity, n = 4096, 2048
	crafted := craftColliding(n, capacity, 0)
	random := randomSYNs(n, 1)

	unseeded := fillTable(t, capacity, 0, crafted)
	mean, longest := probeStats(unseeded)
	t.Logf("unseeded table, crafted keys: probe length mean %.1f, longest %d", mean, longest)
	if mean < n/4 || longest != n {
		t.Fatalf("the crafted keys do not collide under the unseeded hash: mean %.1f, longest %d", mean, longest)
	}
	for _, seed := range []uint64{1, 2, 0x9e3779b97f4a7c15, 0x5f75196ba849b828} {
		rm, rl := probeStats(fillTable(t, capacity, seed, random))
		cm, cl := probeStats(fillTable(t, capacity, seed, crafted))
		t.Logf("seed %#x: probe length mean %.2f / %.2f (crafted / random), longest %d / %d", seed, cm, rm, cl, rl)
		if cm > 2*rm || cl > 2*rl {
			t.Errorf("seed %#x: crafted keys probe %.2f on average, %d at most; random keys %.2f, %d", seed, cm, cl, rm, rl)
		}
	}
}

// floodKeys are the benchmarks' keys, made once: 4,096 crafted against
// an unseeded table of 8,192 (about 70 million tries, under a second)
// and as many random ones.
var floodKeys = sync.OnceValues(func() (crafted, random []decode.Packet) {
	return craftColliding(4096, 8192, 0), randomSYNs(4096, 1)
})

// floodCases are the benchmarks' cases: random or crafted keys, in a
// seeded table or an unseeded one (the attack's target).
func floodCases() []struct {
	name string
	seed uint64
	pkts []decode.Packet
} {
	crafted, random := floodKeys()
	seed := RandomSeed()
	return []struct {
		name string
		seed uint64
		pkts []decode.Packet
	}{
		{"keys=random/seed=random", seed, random},
		{"keys=crafted/seed=random", seed, crafted},
		{"keys=random/seed=none", 0, random},
		{"keys=crafted/seed=none", 0, crafted},
	}
}

// BenchmarkHashFloodLookup looks up 4,096 flows in a table of 4,096
// (index of 8,192 entries); probe_len is the mean number of index entries
// a lookup reads, max_probe_len the most.
func BenchmarkHashFloodLookup(b *testing.B) {
	for _, c := range floodCases() {
		b.Run(c.name, func(b *testing.B) {
			t := fillTable(b, len(c.pkts), c.seed, c.pkts)
			keys := make([]Key, len(c.pkts))
			for i := range c.pkts {
				keys[i], _ = KeyOf(&c.pkts[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if t.Lookup(&keys[i%len(keys)]) == nil {
					b.Fatal("flow not found")
				}
			}
			mean, longest := probeStats(t)
			b.ReportMetric(mean, "probe_len")
			b.ReportMetric(float64(longest), "max_probe_len")
		})
	}
}

// BenchmarkHashFloodInsert: a SYN flood of the 4,096 keys, over and over,
// into a full table of 2,048: every SYN is a new connection that takes
// the place of the oldest (its index entry inserted, the old one's
// removed by backward shift). probe_len and max_probe_len are those of
// the table at the end.
func BenchmarkHashFloodInsert(b *testing.B) {
	for _, c := range floodCases() {
		b.Run(c.name, func(b *testing.B) {
			pkts := c.pkts
			t := fillTable(b, len(pkts)/2, c.seed, pkts)
			ts := int64(len(pkts)) * 1e3
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ts += 1e3
				t.Packet(&pkts[i%len(pkts)], ts)
			}
			b.StopTimer()
			if st := t.Stats(); st.Active != len(pkts)/2 || st.EvictedFull == 0 {
				b.Fatalf("stats %+v: the flood did not churn the full table", st)
			}
			mean, longest := probeStats(t)
			b.ReportMetric(mean, "probe_len")
			b.ReportMetric(float64(longest), "max_probe_len")
		})
	}
}
