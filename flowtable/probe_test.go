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
	passes := func(p decode.Packet, ts int64) (Probe, []uint32, []uint32) {
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
		links := append([]uint32(nil), tb.ahead.links[:tb.ahead.nLnk]...)
		tb.Prefetch()
		if tb.ahead.nIdx+tb.ahead.nLin+tb.ahead.nLnk != 0 {
			t.Fatal("Prefetch left lines queued")
		}
		return pr, lines, links
	}
	slot := func(c *Conn) uint32 {
		for i := range tb.conns {
			if &tb.conns[i] == c {
				return uint32(i + 1)
			}
		}
		t.Fatal("not in the slab")
		return 0
	}
	line := func(c *Conn, l uint32) uint32 { return (slot(c)-1)*linesPerConn + l }
	link := func(c *Conn) uint32 { return slot(c) - 1 }

	pr, lines, links := passes(seg(cli, 1001, srv, 80, A, 2, 0, 0), sec/2)
	if pr.slot != slot(mid) || pr.relink || !slices.Equal(lines, []uint32{line(mid, lineKey), line(mid, lineSides)}) || len(links) != 0 {
		t.Errorf("half a second on: slot %d (want %d), relink %v, lines %v, links %v", pr.slot, slot(mid), pr.relink, lines, links)
	}
	pr, lines, links = passes(seg(cli, 1001, srv, 80, A, 2, 0, 0), 2*sec)
	want := []uint32{link(mid), link(first), link(last)}
	if !pr.relink || !slices.Equal(lines, []uint32{line(mid, lineKey), line(mid, lineSides)}) || !slices.Equal(links, want) {
		t.Errorf("two seconds on: relink %v, lines %v, links %v, want links %v", pr.relink, lines, links, want)
	}
	_, lines, links = passes(seg(cli, 1001, srv, 80, F|A, 2, 0, 0), sec/2)
	if want := ctlLines(line(mid, 0)); !slices.Equal(lines, want) || !slices.Equal(links, []uint32{link(mid)}) {
		t.Errorf("a FIN: lines %v, links %v, want %v and %v", lines, links, want, link(mid))
	}
	if pr, lines, links = passes(seg(cli, 2000, srv, 80, S, 1, 0, 0), 2*sec); pr.slot != 0 || len(lines)+len(links) != 0 {
		t.Errorf("a new flow: slot %d, lines %v, links %v", pr.slot, lines, links)
	}
	// More than a queue holds: Prefetch runs on its own.
	p := seg(cli, 1001, srv, 80, A, 2, 0, 0)
	var many Probe
	tb.Probe(&p, &many)
	for range 3 * aheadMax {
		tb.PrefetchIndex(&many)
		tb.PrefetchConn(&many)
	}
	if q := &tb.ahead; q.nIdx > aheadMax || q.nLin > aheadMax || q.nLnk > aheadMax {
		t.Fatalf("queues hold %d, %d and %d", q.nIdx, q.nLin, q.nLnk)
	}
	tb.Prefetch()
}

// ctlLines are the lines a control segment queues for the Conn whose
// first line is l0: all of them.
func ctlLines(l0 uint32) []uint32 {
	var ls []uint32
	for l := range uint32(linesPerConn) {
		ls = append(ls, l0+l)
	}
	return ls
}
