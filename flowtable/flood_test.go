package flowtable

import (
	"testing"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// TestSynFloodKeepsEstablished: a SYN flood from random sources, each SYN
// a new connection, 100 times the table's size, with four established
// connections that send a segment every 2 s (the flood fills the table
// many times over in between). With the half-open share (default: half
// the table) the flood churns through its share and the established
// connections stay, each one connection from its SYN to its FIN; without
// it (MaxHalfOpen = Capacity: least recently used only) they are evicted
// and come back midstream.
func TestSynFloodKeepsEstablished(t *testing.T) {
	const capacity, flood, est = 256, 25_600, 4
	run := func(maxHalfOpen int) (created, evicted uint64, r *recorder, tb *Table) {
		r = &recorder{}
		var err error
		tb, err = New(Config{Capacity: capacity, Seed: 3, MaxHalfOpen: maxHalfOpen}, r)
		if err != nil {
			t.Fatal(err)
		}
		ts := int64(0)
		pkt := func(p decode.Packet) {
			ts += 1e6 // 1 ms: 1,000 packets a second
			tb.Packet(&p, ts)
		}
		for i := range est {
			port := uint16(40000 + i)
			pkt(seg(cli, port, srv, 80, S, 1000, 0, 0))
			pkt(seg(srv, 80, cli, port, SA, 5000, 1001, 0))
			pkt(seg(cli, port, srv, 80, A, 1001, 5001, 0))
		}
		syns := randomSYNs(flood, 7)
		for i := range syns {
			pkt(syns[i])
			if i%2000 == 1999 { // every 2 s of packet time, each sends 10 bytes
				k := uint32(i / 2000)
				for j := range est {
					pkt(seg(cli, uint16(40000+j), srv, 80, PA, 1001+10*k, 5001, 10))
				}
			}
		}
		for j := range est {
			pkt(seg(cli, uint16(40000+j), srv, 80, FA, 1001+10*flood/2000, 5001, 0))
		}
		st := tb.Stats()
		if st.Active != capacity || st.Created != st.EvictedFull+uint64(st.Active)+st.EvictedIdle {
			t.Fatalf("stats %+v", st)
		}
		return st.Created, st.EvictedFull, r, tb
	}
	created, evicted, r, tb := run(0)
	if created != flood+est || evicted != flood+est-capacity {
		t.Fatalf("%d created, %d evicted full; want %d, %d", created, evicted, flood+est, flood+est-capacity)
	}
	for j := range est {
		p := seg(cli, uint16(40000+j), srv, 80, A, 0, 0, 0)
		k, _ := KeyOf(&p)
		// SYN, ACK, 12 data segments, FIN: every one on the one connection
		// (the FIN ends its sequence space).
		if c := tb.Lookup(&k); c == nil || c.Midstream || c.Stage != StageClosing || c.Side[Client].Pkts != 15 || c.Side[Client].NextSeq != Seq(1001+10*flood/2000+1) {
			t.Fatalf("established connection %d: %+v", j, c)
		}
	}
	for _, e := range r.evicted {
		if e.stage != StageSynSent {
			t.Fatalf("evicted a connection past its handshake: %+v", e)
		}
	}
	// Least recently used only: the established connections go, again
	// and again.
	created, _, r, _ = run(capacity)
	lost := 0
	for _, e := range r.evicted {
		if e.stage == StageEstablished {
			lost++
		}
	}
	if lost == 0 || created <= flood+est {
		t.Fatalf("without the half-open share: %d established evictions, %d created", lost, created)
	}
	t.Logf("without the half-open share: %d evictions of established connections, %d connections created for %d", lost, created, flood+est)
}
