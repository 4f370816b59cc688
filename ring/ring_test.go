package ring_test

import (
	"bytes"
	"testing"

	"github.com/tcpsentry/tcpsentry/ring"
)

// TestAppendWire: a tag passed beside the frame goes back between the
// MAC addresses and the EtherType, with its TPID and priority bits; a
// frame without one, or not on Ethernet, comes back as it is.
func TestAppendWire(t *testing.T) {
	eth := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}
	tagged := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0xa0, 0xc8, 0x08, 0x00, 0x45}
	for _, c := range []struct {
		name  string
		link  ring.LinkType
		frame []byte
		tag   uint32
		want  []byte
	}{
		{"tagged", ring.LinkTypeEthernet, eth, 0x88a8<<16 | 0xa000 | 200, tagged},
		{"untagged", ring.LinkTypeEthernet, eth, 0, eth},
		{"short", ring.LinkTypeEthernet, eth[:11], 0x8100<<16 | 5, eth[:11]},
		{"raw", ring.LinkTypeRaw, eth[14:], 0x8100<<16 | 5, eth[14:]},
	} {
		b := ring.NewBatch(1)
		b.Link, b.N = c.link, 1
		b.Frames[0], b.VLAN[0] = c.frame, c.tag
		prefix := []byte{0xff}
		got := b.AppendWire(prefix, 0)
		if !bytes.Equal(got[1:], c.want) || got[0] != 0xff {
			t.Errorf("%s: got % x, want ff % x", c.name, got, c.want)
		}
	}
}
