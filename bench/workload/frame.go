package workload

import (
	"encoding/binary"
)

// flow is one 4-tuple of the capture, with what its two TCP stacks keep
// the same from packet to packet.
type flow struct {
	v6         bool
	vlan       uint16 // 0: untagged
	cli, srv   [16]byte
	cport      uint16
	sport      uint16
	noTS       bool   // no TCP timestamps (a stack that does not offer them)
	ctsOff     uint32 // client TS clock: TSval = ctsOff + capture ms
	stsOff     uint32 // server TS clock
	cwin, swin uint16 // advertised window after the handshake (scaled by 2^7)
	seen       bool   // a packet of it is written (Stats.MaxOpen)
}

// pkt is one segment to write. Payload bytes are zero; the frame stores
// up to the snap length and the headers say the full length.
type pkt struct {
	t     int64 // capture time, ns
	f     *flow
	seq   uint32
	ack   uint32
	n     uint32 // payload bytes on the wire
	flags uint8
	bits  uint8 // fromServer
}

// pkt.bits.
const (
	fromServer = 1 << iota
	// lastOfFlow marks the last packet of its flow in an anomaly
	// instance, whose flows end one by one (Stats.MaxHeld).
	lastOfFlow
)

// TCP flags.
const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fPSH = 0x08
	fACK = 0x10
)

const mss = 1448

// tsNow is the TS clock of one side at capture time t (1000 Hz, as Linux
// since 4.10 and most stacks).
func tsNow(off uint32, t int64) uint32 { return off + uint32(t/1e6) }

// frame encodes p as an Ethernet frame into b (reset), storing at most
// snap bytes; it returns the stored bytes and the length on the wire.
func frame(b []byte, p *pkt, snap int) ([]byte, int) {
	f := p.f
	b = b[:0]
	b = append(b, 0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1) // dst, src MAC
	if p.bits&fromServer != 0 {
		b[5], b[11] = 1, 2
	}
	if f.vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, f.vlan)
	}
	src, dst, sp, dp := &f.cli, &f.srv, f.cport, f.sport
	myOff, peerOff := f.ctsOff, f.stsOff
	win := f.cwin
	if p.bits&fromServer != 0 {
		src, dst, sp, dp = dst, src, dp, sp
		myOff, peerOff = peerOff, myOff
		win = f.swin
	}
	syn := p.flags&fSYN != 0
	if syn {
		win = 64240
	}
	var opts [20]byte
	no, tsAt := 0, 0
	switch {
	case syn && !f.noTS:
		// Linux's SYN: MSS, SACK permitted, timestamps, NOP, window scale.
		opts = [20]byte{2, 4, mss >> 8, mss & 0xff, 4, 2, 8, 10, 16: 1, 17: 3, 18: 3, 19: 7}
		no, tsAt = 20, 8
	case syn:
		opts = [20]byte{2, 4, mss >> 8, mss & 0xff, 1, 3, 3, 7, 1, 1, 4, 2}
		no = 12
	case !f.noTS && p.flags&fRST == 0:
		opts = [20]byte{1, 1, 8, 10}
		no, tsAt = 12, 4
	}
	if tsAt != 0 {
		binary.BigEndian.PutUint32(opts[tsAt:], tsNow(myOff, p.t))
		if p.flags&fACK != 0 { // echo what the peer sent about a ms ago
			binary.BigEndian.PutUint32(opts[tsAt+4:], tsNow(peerOff, p.t-1e6))
		}
	}
	tcpLen := 20 + no + int(p.n)
	ipStart := len(b) + 2
	if f.v6 {
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
		binary.BigEndian.PutUint16(b[ipStart+10:], ^fold(sum(b[ipStart:ipStart+20], 0)))
	}
	tcpStart := len(b)
	b = binary.BigEndian.AppendUint16(b, sp)
	b = binary.BigEndian.AppendUint16(b, dp)
	b = binary.BigEndian.AppendUint32(b, p.seq)
	b = binary.BigEndian.AppendUint32(b, p.ack)
	b = append(b, byte((20+no)/4)<<4, p.flags)
	b = binary.BigEndian.AppendUint16(b, win)
	b = append(b, 0, 0, 0, 0) // checksum, urgent pointer
	b = append(b, opts[:no]...)
	// The checksum covers a payload of zeros, which adds nothing: it can
	// be right without the payload being stored.
	var ps uint32
	if f.v6 {
		ps = sum(src[:], 0)
		ps = sum(dst[:], ps)
	} else {
		ps = sum(src[:4], 0)
		ps = sum(dst[:4], ps)
	}
	ps += 6 + uint32(tcpLen)
	binary.BigEndian.PutUint16(b[tcpStart+16:], ^fold(sum(b[tcpStart:], ps)))
	wire := len(b) + int(p.n)
	if pay := min(int(p.n), snap-len(b)); pay > 0 {
		b = append(b, zeros[:pay]...)
	}
	if len(b) > snap {
		b = b[:snap]
	}
	return b, wire
}

var zeros [65536]byte

// sum adds b as big-endian 16-bit words to s (RFC 1071).
func sum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
