package sensor

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable"
)

// gated reads data up to gate, then blocks until open is closed.
type gated struct {
	data      []byte
	off, gate int
	open      chan struct{}
}

func (g *gated) Read(p []byte) (int, error) {
	if g.off == g.gate {
		<-g.open
		g.gate = len(g.data)
	}
	if g.off == len(g.data) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), g.gate-g.off)], g.data[g.off:])
	g.off += n
	return n, nil
}

func sumSnapshot(s Snapshot) (packets, bytes, created uint64) {
	for _, w := range s.Workers {
		packets += w.Packets
		bytes += w.Bytes
		created += w.Flows.Created
		for _, c := range w.Iface {
			if c.Packets > w.Packets || c.Bytes > w.Bytes {
				panic("interface counts above the worker's")
			}
		}
	}
	return
}

// TestObserverAdvances: the snapshot shows a replay's counters while it
// runs (its input held half-way), not only at the end, and at the end it
// is exactly the Summary.
func TestObserverAdvances(t *testing.T) {
	f, err := os.Open("../../../testdata/clean_many.pcap.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	in := &gated{data: data, gate: len(data) / 2, open: make(chan struct{})}
	var obs Observer
	if s := obs.Snapshot(); s.Running || len(s.Workers) != 0 {
		t.Fatalf("snapshot before the start: %+v", s)
	}
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := Replay(context.Background(), in, Config{Workers: 2, Flows: 100_000, Observer: &obs}, io.Discard)
		done <- result{s, err}
	}()
	var mid Snapshot
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mid = obs.Snapshot()
		if p, _, c := sumSnapshot(mid); p > 0 && c > 0 {
			break
		}
		if time.Now().After(deadline) {
			close(in.open)
			t.Fatalf("no packets in the snapshot after 20 s of a held replay: %+v", mid)
		}
	}
	if !mid.Running || len(mid.Workers) != 2 || len(mid.Interfaces) != 1 || mid.Interfaces[0] != ReplayInterface || mid.Kernel != nil {
		t.Fatalf("mid-replay snapshot: %+v", mid)
	}
	close(in.open)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	sum := r.sum
	midPackets, _, _ := sumSnapshot(mid)
	if midPackets >= sum.Packets {
		t.Fatalf("%d packets half-way, %d in all", midPackets, sum.Packets)
	}
	end := obs.Snapshot()
	if end.Running {
		t.Fatal("still running after Replay returned")
	}
	packets, byts, created := sumSnapshot(end)
	if packets != sum.Packets || byts != sum.Bytes || created != sum.Flows.Created {
		t.Fatalf("snapshot %d packets, %d bytes, %d flows; summary %d, %d, %d", packets, byts, created, sum.Packets, sum.Bytes, sum.Flows.Created)
	}
	var flows flowtable.Stats
	var perWorker []uint64
	for i, w := range end.Workers {
		if w.Iface[0].Packets != w.Packets || w.Iface[0].Bytes != w.Bytes {
			t.Fatalf("worker %d: interface counts %+v, worker %d/%d", i, w.Iface, w.Packets, w.Bytes)
		}
		flows.EvictedIdle += w.Flows.EvictedIdle
		flows.EvictedFull += w.Flows.EvictedFull
		flows.Reused += w.Flows.Reused
		flows.Flushed += w.Flows.Flushed
		flows.Peak += w.Flows.Peak
		perWorker = append(perWorker, w.Packets)
		if w.Flows.Active != 0 || w.FlowsCapacity != 50_000 {
			t.Fatalf("worker %d at the end: %d active of %d", i, w.Flows.Active, w.FlowsCapacity)
		}
	}
	flows.Created = sum.Flows.Created
	if flows != sum.Flows || !slices.Equal(perWorker, sum.PerWorker) {
		t.Fatalf("snapshot flows %+v per worker %v; summary %+v %v", flows, perWorker, sum.Flows, sum.PerWorker)
	}
	if end.Events != sum.Events || end.Folded != sum.Folded || end.Late != sum.Late {
		t.Fatalf("snapshot events %v folded %v; summary %v %v", end.Events, end.Folded, sum.Events, sum.Folded)
	}
}
