package flowtable

import (
	"slices"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// TestProbeMatchesKeyOf: Probe, which orders and hashes the endpoints on
// words it loads itself, gives KeyOf's key and direction and Hash's hash.
func TestProbeMatchesKeyOf(t *testing.T) {
	v6 := func(last byte) (a [16]byte) {
		a[0], a[1], a[15] = 0x20, 0x01, last
		return a
	}
	pkts := []decode.Packet{
		seg(cli, 40000, srv, 80, S, 1, 0, 0),
		seg(srv, 80, cli, 40000, SA, 1, 2, 0),
		seg(cli, 80, cli, 40000, A, 1, 2, 0), // same address: ports decide
		seg(cli, 40000, cli, 80, A, 1, 2, 0), // and the other way
		seg(cli, 443, cli, 443, A, 1, 2, 0),  // same endpoint
		seg(v6(1), 1, v6(2), 2, A, 1, 2, 0),  // IPv6, low half decides
		seg(v6(9), 1, v6(2), 2, A, 1, 2, 0),  //
		seg(v4(10, 0, 0, 1), 5, v6(2), 6, A, 1, 2, 0),
	}
	pkts[1].VLAN = [2]uint16{100, 200}
	pkts[2].Iface = 3
	pkts[5].Family = 6
	tb, _ := newTable(t, 16)
	for i := range pkts {
		p := &pkts[i]
		var pr Probe
		tb.Probe(p, &pr)
		k, fromA := KeyOf(p)
		if pr.key != k || pr.fromA != fromA || pr.hash != tb.Hash(&k) {
			t.Errorf("packet %d: probe %+v %v %x; KeyOf %+v %v, Hash %x", i, pr.key, pr.fromA, pr.hash, k, fromA, tb.Hash(&k))
		}
	}
}

// TestReadAheadPasses: the passes find the Conn a packet will track and
// queue the lines tracking it touches; a packet a second after the
// Conn's link time also queues the Conn's links and its idle-list
// neighbours' (which moving it to the tail writes), and a later packet
// does not.
func TestReadAheadPasses(t *testing.T) {
	tb, _ := newTable(t, 16)
	const sec = int64(time.Second)
	for i, port := range []uint16{1000, 1001, 1002} { // one idle list, in this order
		p := seg(cli, port, srv, 80, S, 1, 0, 0)
		tb.Packet(&p, int64(i))
	}
	conn := func(port uint16) *Conn {
		p := seg(cli, port, srv, 80, A, 0, 0, 0)
		k, _ := KeyOf(&p)
		return tb.Lookup(&k)
	}
	first, mid, last := conn(1000), conn(1001), conn(1002)
	passes := func(p decode.Packet, ts int64) (Probe, []uint32) {
		var pr Probe
		tb.Probe(&p, &pr)
		tb.PrefetchIndex(&pr)
		if q := &tb.ahead; q.nIdx != 1 || q.index[0] != uint32((pr.hash>>slotBits)&tb.mask) {
			t.Fatalf("index queue %v", q.index[:q.nIdx])
		}
		tb.Prefetch()
		tb.PrefetchConn(&pr)
		tb.PrefetchRelink(&pr, ts)
		tb.PrefetchLinks(&pr)
		lines := append([]uint32(nil), tb.ahead.lines[:tb.ahead.nLin]...)
		tb.Prefetch()
		if tb.ahead.nIdx+tb.ahead.nLin != 0 {
			t.Fatal("Prefetch left lines queued")
		}
		return pr, lines
	}
	line := func(c *Conn, l uint32) uint32 { return (c.self-1)*linesPerConn + l }

	pr, lines := passes(seg(cli, 1001, srv, 80, A, 2, 0, 0), sec/2)
	if pr.slot != mid.self || pr.relink || !slices.Equal(lines, []uint32{line(mid, lineKey), line(mid, lineSides)}) {
		t.Errorf("half a second on: slot %d (want %d), relink %v, lines %v", pr.slot, mid.self, pr.relink, lines)
	}
	pr, lines = passes(seg(cli, 1001, srv, 80, A, 2, 0, 0), 2*sec)
	want := []uint32{line(mid, lineKey), line(mid, lineSides), line(mid, lineLinks), line(first, lineLinks), line(last, lineLinks)}
	if !pr.relink || !slices.Equal(lines, want) {
		t.Errorf("two seconds on: relink %v, lines %v, want %v", pr.relink, lines, want)
	}
	pr, lines = passes(seg(cli, 1001, srv, 80, F|A, 2, 0, 0), sec/2)
	want = []uint32{line(mid, lineKey), line(mid, lineSides), line(mid, lineTimes), line(mid, lineLinks)}
	if !slices.Equal(lines, want) {
		t.Errorf("a FIN: lines %v, want %v", lines, want)
	}
	if pr, lines = passes(seg(cli, 2000, srv, 80, S, 1, 0, 0), 2*sec); pr.slot != 0 || len(lines) != 0 {
		t.Errorf("a new flow: slot %d, lines %v", pr.slot, lines)
	}
	// More than a queue holds: Prefetch runs on its own.
	p := seg(cli, 1001, srv, 80, A, 2, 0, 0)
	var many Probe
	tb.Probe(&p, &many)
	for range 3 * aheadMax {
		tb.PrefetchIndex(&many)
		tb.PrefetchConn(&many)
	}
	if q := &tb.ahead; q.nIdx > aheadMax || q.nLin > aheadMax {
		t.Fatalf("queues hold %d and %d", q.nIdx, q.nLin)
	}
	tb.Prefetch()
}
