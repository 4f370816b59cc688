package detectors

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"unsafe"
)

// refTable is the plain form of aggTable's rules: scan the window's 16
// slots; take k's slot, else the first free one, else the first of those
// used longest ago.
type refSlot struct {
	used bool
	last int64
	key  endpointKey
	val  int
}

type refTable struct {
	slots   []refSlot
	mask    uint64
	evicted uint64
	dropped []endpointKey
}

func (t *refTable) get(i uint64, k endpointKey, now int64) (*int, bool) {
	var free, oldest *refSlot
	for j := uint64(0); j < aggProbe; j++ {
		s := &t.slots[(i+j)&t.mask]
		if !s.used {
			if free == nil {
				free = s
			}
			continue
		}
		if s.key == k {
			s.last = max(s.last, now)
			return &s.val, false
		}
		if oldest == nil || s.last < oldest.last {
			oldest = s
		}
	}
	if free == nil {
		free = oldest
		t.evicted++
		t.dropped = append(t.dropped, free.key)
	}
	*free = refSlot{used: true, last: now, key: k}
	return &free.val, true
}

func (t *refTable) find(i uint64, k endpointKey) *refSlot {
	for j := uint64(0); j < aggProbe; j++ {
		if s := &t.slots[(i+j)&t.mask]; s.used && s.key == k {
			return s
		}
	}
	return nil
}

// TestAggTableRules: aggTable, which scans tags and times kept beside its
// slots, keeps, finds and gives way to the same entries as the plain scan.
func TestAggTableRules(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var dropped []endpointKey
	at := newAggTable[endpointKey, int](64, func(k *endpointKey, _ *int) { dropped = append(dropped, *k) })
	ref := &refTable{slots: make([]refSlot, len(at.slots)), mask: at.mask}
	now := int64(0)
	for step := 0; step < 200000; step++ {
		k := endpointKey{family: 4, port: uint16(r.IntN(300))}
		i := at.hash(&k) & at.mask
		now += int64(r.IntN(3)) - 1 // times go back a little, too
		switch r.IntN(10) {
		case 0:
			at.remove(k)
			if s := ref.find(i, k); s != nil {
				s.used, s.val = false, 0
			}
		case 1:
			v, w := at.lookup(k), ref.find(i, k)
			if (v == nil) != (w == nil) || v != nil && *v != w.val {
				t.Fatalf("step %d: lookup %v differs", step, k)
			}
		default:
			v, created := at.get(k, now)
			w, wcreated := ref.get(i, k, now)
			if created != wcreated || *v != *w {
				t.Fatalf("step %d: get %v: %d %v, want %d %v", step, k, *v, created, *w, wcreated)
			}
			*v, *w = step, step
		}
	}
	if at.Evicted != ref.evicted || len(dropped) != len(ref.dropped) {
		t.Fatalf("evicted %d (%d dropped), want %d (%d)", at.Evicted, len(dropped), ref.evicted, len(ref.dropped))
	}
	for i := range dropped {
		if dropped[i] != ref.dropped[i] {
			t.Fatalf("drop %d: %v, want %v", i, dropped[i], ref.dropped[i])
		}
	}
	if at.Evicted == 0 {
		t.Fatal("no entry gave way: the test does not cover eviction")
	}
}

// TestCorrelatorResident: the correlator's tables are resident from the
// start (every page touched), so its memory does not grow as they fill.
// It measures in a fresh process: in this one, the tables of earlier
// tests leave resident heap pages that new tables may reuse.
func TestCorrelatorResident(t *testing.T) {
	if os.Getenv(residentChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCorrelatorResident$", "-test.count=1")
		cmd.Env = append(os.Environ(), residentChild+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	rss := func() int64 {
		b, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Skipf("no /proc/self/statm: %v", err)
		}
		var size, res int64
		if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
			t.Fatal(err)
		}
		return res * int64(os.Getpagesize())
	}
	before := rss()
	c := NewCorrelator(Config{}, 1, func(*Event) {})
	grew := rss() - before
	want := int64(unsafe.Sizeof(aggSlot[pairKey, tsClock]{})+9)*ClockTableSize +
		int64(unsafe.Sizeof(aggSlot[endpointKey, serverState]{})+9)*ServerTableSize
	if grew < want*9/10 {
		t.Errorf("NewCorrelator made %d MB resident; its clocks and server tables alone take %d MB", grew>>20, want>>20)
	}
	runtime.KeepAlive(c)
}

const residentChild = "TCPSENTRY_RESIDENT_CHILD"
