//go:build linux

package refs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// GopacketResult is what GopacketReader counted and how long it took.
type GopacketResult struct {
	Packets int           // records read
	TCP     int           // packets with an IPv4 or IPv6 and a TCP layer
	Flows   int           // distinct 5-tuples, both directions as one
	Took    time.Duration // the read-decode-lookup loop
}

// flowKey is a TCP 5-tuple in canonical order: the lower endpoint
// (address, then port) first, so both directions map to one key. IPv4
// addresses are stored IPv4-mapped (::ffff:a.b.c.d), which no IPv6
// packet on the wire carries, so the families cannot collide. The
// protocol, the fifth element, is always TCP and left out.
type flowKey struct {
	loAddr, hiAddr [16]byte
	loPort, hiPort uint16
}

// flowState is the per-flow value; a pointer, as a flow table that keeps
// state per flow would have.
type flowState struct {
	packets int
}

// pcapng's Section Header Block type, which opens every pcapng file.
const pcapngMagic = 0x0a0d0d0a

// packetSource is what both pcapgo readers offer.
type packetSource interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// GopacketReader is the "decode + Go map" reference: what a straightforward
// Go program built on gopacket does per packet. It reads a pcap (or
// pcapng, told apart by the magic; pcapgo also takes a gzipped pcap) from
// memory with pcapgo, decodes every packet with gopacket.NewPacket
// (decoder: the link type of the file header, or of pcapng's first
// interface; NoCopy, not lazy), takes the IPv4/IPv6 + TCP 5-tuple in
// canonical order and looks it up in a Go map, inserting when absent and
// counting packets. Packets without an IP and a TCP layer (other
// protocols, frames truncated inside the headers) are counted in Packets
// and skipped. 802.1Q and QinQ tags are decoded by gopacket's Dot1Q layer,
// which hands on to IPv4/IPv6.
//
// Took covers the whole loop, reading included; only the file header is
// parsed before the clock starts.
func GopacketReader(data []byte) (GopacketResult, error) {
	var res GopacketResult
	if len(data) < 4 {
		return res, fmt.Errorf("refs: gopacket reader: %d bytes is no capture file", len(data))
	}
	var src packetSource
	var err error
	// The block type is a palindrome, so either byte order reads the same.
	if binary.LittleEndian.Uint32(data) == pcapngMagic {
		src, err = pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(bytes.NewReader(data))
	}
	if err != nil {
		return res, fmt.Errorf("refs: gopacket reader: %w", err)
	}
	decoder := src.LinkType()
	opts := gopacket.DecodeOptions{NoCopy: true}
	flows := make(map[flowKey]*flowState)

	start := time.Now()
	for {
		// ZeroCopy: the buffer is reused, which is fine because nothing
		// of a packet outlives its iteration (the key copies the
		// addresses); a fresh slice per packet would only add garbage.
		pkt, _, err := src.ZeroCopyReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, fmt.Errorf("refs: gopacket reader: packet %d: %w", res.Packets+1, err)
		}
		res.Packets++
		p := gopacket.NewPacket(pkt, decoder, opts)
		// gopacket keeps a TCP layer whose decoding failed (a header cut
		// short), zero-valued: its Contents are empty, a real header's
		// never are.
		tcp, ok := p.TransportLayer().(*layers.TCP)
		if !ok || len(tcp.Contents) == 0 {
			continue
		}
		var k flowKey
		var a, b [16]byte
		switch ip := p.NetworkLayer().(type) {
		case *layers.IPv4:
			a, b = mapped(ip.SrcIP), mapped(ip.DstIP)
		case *layers.IPv6:
			copy(a[:], ip.SrcIP)
			copy(b[:], ip.DstIP)
		default:
			continue
		}
		sp, dp := uint16(tcp.SrcPort), uint16(tcp.DstPort)
		if c := bytes.Compare(a[:], b[:]); c < 0 || c == 0 && sp <= dp {
			k = flowKey{loAddr: a, hiAddr: b, loPort: sp, hiPort: dp}
		} else {
			k = flowKey{loAddr: b, hiAddr: a, loPort: dp, hiPort: sp}
		}
		res.TCP++
		f := flows[k]
		if f == nil {
			f = &flowState{}
			flows[k] = f
		}
		f.packets++
	}
	res.Took = time.Since(start)
	res.Flows = len(flows)
	return res, nil
}

// mapped returns an IPv4 address (4 bytes, as gopacket decodes it) in its
// IPv4-mapped IPv6 form.
func mapped(ip []byte) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], ip)
	return a
}
