// Package traffic writes synthetic but well-formed TCP traffic to pcap for
// benchmarks: many concurrent connections, each a full handshake, a
// request, a segmented response and a FIN close, interleaved so that
// Concurrent connections are open at once. Output is deterministic for a
// seed. The benchmark generator with anomalies and ground truth (bench/gen)
// builds on it.
package traffic

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Options shape the traffic; the zero value of a field means its default.
type Options struct {
	Connections int     // total connections (default 10000)
	Concurrent  int     // connections open at once (default 1000)
	IPv6Share   float64 // fraction of IPv6 connections
	VLANShare   float64 // fraction of 802.1Q-tagged connections
	// RefusedShare is the fraction of connections whose SYN the server
	// answers with a RST, each on a port of its own: one
	// connection_refused event each, for loads of events.
	RefusedShare float64
	Seed         uint64
	Start        time.Time // capture time of the first packet (default 2026-01-01)
}

// Stats is what Write produced.
type Stats struct {
	Packets     int
	Connections int
	Refused     int
}

const mss = 1448

// Write writes the traffic as an Ethernet pcap with nanosecond timestamps.
func Write(w io.Writer, o Options) (Stats, error) {
	if o.Connections <= 0 {
		o.Connections = 10000
	}
	if o.Concurrent <= 0 {
		o.Concurrent = 1000
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return Stats{}, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x7c5))
	g := &gen{pw: pw, ts: o.Start.UnixNano(), buf: make([]byte, 0, 2048)}
	active := make([]*conn, 0, o.Concurrent)
	next, refused := 0, 0
	for next < o.Connections || len(active) > 0 {
		for len(active) < o.Concurrent && next < o.Connections {
			c := newConn(next, rng, o)
			if c.refused {
				refused++
			}
			active = append(active, c)
			next++
		}
		// One step of a random open connection.
		i := rng.IntN(len(active))
		if err := g.step(active[i], rng); err != nil {
			return Stats{}, err
		}
		if active[i].done {
			active[i] = active[len(active)-1]
			active = active[:len(active)-1]
		}
	}
	return Stats{Packets: g.packets, Connections: o.Connections, Refused: refused}, nil
}

type conn struct {
	v6         bool
	vlan       uint16
	cli, srv   [16]byte
	cport      uint16
	sport      uint16
	cseq, sseq uint32
	respLeft   int
	state      int
	done       bool
	refused    bool
}

func newConn(n int, rng *rand.Rand, o Options) *conn {
	c := &conn{cport: uint16(10000 + n%50000), sport: 80, cseq: rng.Uint32(), sseq: rng.Uint32()}
	c.v6 = rng.Float64() < o.IPv6Share
	if rng.Float64() < o.VLANShare {
		c.vlan = uint16(1 + rng.IntN(4094))
	}
	host := uint32(n / 50000)
	if c.v6 {
		c.cli = [16]byte{0xfd, 0, 0, 0x10}
		c.srv = [16]byte{0xfd, 0, 0, 0x20, 15: 1}
		binary.BigEndian.PutUint32(c.cli[12:], host)
	} else {
		binary.BigEndian.PutUint32(c.cli[:4], 0x0a000000|host) // 10.0.x.x
		copy(c.srv[:4], []byte{10, 255, 0, 1})
	}
	c.respLeft = 200 + rng.IntN(20000)
	// (Drawn only when asked for, so that other traffic stays the same.)
	if o.RefusedShare > 0 && rng.Float64() < o.RefusedShare {
		c.refused = true
		c.sport = uint16(1024 + n%50000) // with the client host, a key of its own
	}
	return c
}

type gen struct {
	pw      *pcapgo.Writer
	ts      int64
	buf     []byte
	packets int
}

const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
)

func (g *gen) step(c *conn, rng *rand.Rand) error {
	g.ts += int64(rng.IntN(20000)) // up to 20 µs between packets
	switch c.state {
	case 0:
		c.state++
		return g.emit(c, true, fSYN, c.cseq, 0, 0)
	case 1:
		c.state++
		c.cseq++
		if c.refused {
			c.done = true
			return g.emit(c, false, fRST|fACK, 0, c.cseq, 0)
		}
		return g.emit(c, false, fSYN|fACK, c.sseq, c.cseq, 0)
	case 2:
		c.state++
		c.sseq++
		return g.emit(c, true, fACK, c.cseq, c.sseq, 0)
	case 3:
		c.state++
		n := 100 + rng.IntN(400)
		err := g.emit(c, true, fACK|fPSH, c.cseq, c.sseq, n)
		c.cseq += uint32(n)
		return err
	case 4:
		n := min(c.respLeft, mss)
		c.respLeft -= n
		if c.respLeft == 0 {
			c.state++
		}
		err := g.emit(c, false, fACK|fPSH, c.sseq, c.cseq, n)
		c.sseq += uint32(n)
		return err
	case 5:
		c.state++
		err := g.emit(c, true, fFIN|fACK, c.cseq, c.sseq, 0)
		c.cseq++
		return err
	case 6:
		c.state++
		err := g.emit(c, false, fFIN|fACK, c.sseq, c.cseq, 0)
		c.sseq++
		return err
	default:
		c.done = true
		return g.emit(c, true, fACK, c.cseq, c.sseq, 0)
	}
}

// emit writes one frame; payload bytes are zero and, like a snapped
// capture, only the first 64 are stored (the IP length says the rest).
func (g *gen) emit(c *conn, fromClient bool, flags uint8, seq, ack uint32, n int) error {
	b := g.buf[:0]
	b = append(b, 0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1) // dst, src MAC
	if c.vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, c.vlan)
	}
	src, dst, sp, dp := c.cli, c.srv, c.cport, c.sport
	if !fromClient {
		src, dst, sp, dp = dst, src, dp, sp
	}
	tcpLen := 20 + n
	if c.v6 {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(tcpLen))
		b = append(b, 6, 64)
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(20+tcpLen))
		b = append(b, 0, 0, 0x40, 0, 64, 6, 0, 0)
		b = append(b, src[:4]...)
		b = append(b, dst[:4]...)
	}
	b = binary.BigEndian.AppendUint16(b, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, 5<<4, flags)
	b = binary.BigEndian.AppendUint16(b, 65535)
	b = append(b, 0, 0, 0, 0) // checksum, urgent
	wire := len(b) + n
	var zeros [64]byte
	b = append(b, zeros[:min(n, len(zeros))]...)
	g.buf = b
	g.packets++
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, g.ts), CaptureLength: len(b), Length: wire}
	return g.pw.WritePacket(ci, b)
}
