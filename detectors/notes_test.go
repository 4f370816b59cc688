package detectors

import (
	"testing"
	"time"
)

// TestNotesPoolReused: notes a connection took go back to the pool when
// it leaves the table, and the next connection to take them starts from
// nothing: a stale first RST there would hide its own RST, and no
// rst_ignored would be reported.
func TestNotesPoolReused(t *testing.T) {
	h := newHarness(t)
	ms := int64(time.Millisecond)
	// A: the server resets it, and nothing follows.
	h.send(seg(cli, 50100, srv, 80, S, 100, 0, 0), 0)
	h.send(seg(srv, 80, cli, 50100, S|A, 900, 101, 0), 1*ms)
	h.send(seg(cli, 50100, srv, 80, A, 101, 901, 0), 2*ms)
	h.send(seg(srv, 80, cli, 50100, RA, 901, 101, 0), 3*ms)
	if n, full := h.set.notesInUse(); n != 1 || full != 0 {
		t.Fatalf("after A's RST: %d notes in use, %d full; want 1, 0", n, full)
	}
	// Another flow's SYN 11 s later: A, closed, leaves the table.
	h.send(seg(cli, 50101, srv, 81, S, 7, 0, 0), 11*sec)
	if h.tb.Stats().EvictedIdle != 1 {
		t.Fatalf("A did not leave: %+v", h.tb.Stats())
	}
	if n, _ := h.set.notesInUse(); n != 0 {
		t.Fatalf("%d notes in use after A left", n)
	}
	// B retransmits data (taking A's notes back from the pool), then the
	// server resets it and the client goes on.
	t0 := 12 * sec
	h.send(seg(cli, 50102, srv, 80, S, 1000, 0, 0), t0)
	h.send(seg(srv, 80, cli, 50102, S|A, 5000, 1001, 0), t0+1*ms)
	h.send(seg(cli, 50102, srv, 80, A, 1001, 5001, 0), t0+2*ms)
	h.send(seg(cli, 50102, srv, 80, A, 1001, 5001, 10), t0+3*ms)
	h.send(seg(cli, 50102, srv, 80, A, 1001, 5001, 10), t0+4*ms)
	if n, _ := h.set.notesInUse(); n != 1 || h.set.pool.fresh != 1 {
		t.Fatalf("%d notes in use, %d ever used; want 1 and 1", n, h.set.pool.fresh)
	}
	h.send(seg(srv, 80, cli, 50102, RA, 5001, 1011, 0), t0+5*ms)
	h.send(seg(cli, 50102, srv, 80, A, 1011, 5001, 10), t0+6*ms)
	h.send(seg(cli, 50102, srv, 80, A, 1021, 5001, 10), t0+7*ms)
	evs := h.end()
	var ignored int
	for _, e := range evs {
		if e.Type == TypeRstIgnored && e.Client.Port == 50102 {
			ignored++
			if v, _ := e.Lookup(EvSegmentsAfterRst); v != 2 {
				t.Errorf("segments_after_rst %d, want 2", v)
			}
		}
	}
	if ignored != 1 {
		t.Fatalf("%d rst_ignored for B, want 1; events %+v", ignored, evs)
	}
	if n, full := h.set.notesInUse(); n != 0 || full != 0 {
		t.Fatalf("after the end: %d notes in use, %d full; want 0, 0", n, full)
	}
}

// TestNotesPoolBounded: under churn through a full table, connections
// with notes never hold more of them than the table has connections, and
// the pool never runs dry.
func TestNotesPoolBounded(t *testing.T) {
	h := newHarness(t)
	us := int64(time.Microsecond)
	ts := int64(0)
	for i := range 640 {
		port := uint16(20000 + i)
		h.send(seg(cli, port, srv, 80, S, 1, 0, 0), ts)
		h.send(seg(srv, 80, cli, port, S|A, 9, 2, 0), ts+us)
		h.send(seg(cli, port, srv, 80, A, 2, 10, 5), ts+2*us)
		h.send(seg(srv, 80, cli, port, RA, 10, 7, 0), ts+3*us)
		ts += 10 * us
		if n, full := h.set.notesInUse(); n > h.tb.Stats().Active || full != 0 {
			t.Fatalf("connection %d: %d notes in use for %d connections, %d full", i, n, h.tb.Stats().Active, full)
		}
	}
	if st := h.tb.Stats(); st.EvictedFull != 640-64 {
		t.Fatalf("evicted %d, want %d", st.EvictedFull, 640-64)
	}
	if n, _ := h.set.notesInUse(); n != 64 || h.set.pool.fresh != 64 {
		t.Fatalf("%d notes in use, %d ever used; want 64, 64", n, h.set.pool.fresh)
	}
	h.end()
	if n, full := h.set.notesInUse(); n != 0 || full != 0 {
		t.Fatalf("after the end: %d notes in use, %d full", n, full)
	}
}
