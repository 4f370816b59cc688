package flowtable

import (
	"testing"

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
