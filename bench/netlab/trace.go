package netlab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Segment is one TCP segment of a capture, decoded with gopacket (a test
// oracle, not the sensor's decoder).
type Segment struct {
	Frame         int // 1-based frame number in the file, as tshark counts
	Time          time.Time
	Src, Dst      netip.AddrPort
	SYN, ACK, FIN bool
	RST, PSH      bool
	Seq, Ack      uint32
	Window        uint16
	Len           int  // TCP payload bytes
	HasTS         bool // the timestamps option is present
	TSval, TSecr  uint32
	Truncated     bool // captured shorter than sent (snap length)
	ChecksumOK    bool // the TCP checksum verifies (false: a partial checksum of offload, or Truncated)
	IPv6          bool
	OptionKinds   []layers.TCPOptionKind
	PayloadPrefix string // the first up to 32 payload bytes
}

// Bare reports whether s is a bare ACK: ACK only, no payload.
func (s Segment) Bare() bool {
	return s.ACK && !s.SYN && !s.FIN && !s.RST && s.Len == 0
}

// String is one tcpdump-like line.
func (s Segment) String() string {
	return fmt.Sprintf("#%d %s %s", s.Frame, s.Time.Format("15:04:05.000000"), s.Line())
}

// Line is String without the frame number and time.
func (s Segment) Line() string {
	var f []byte
	for _, x := range []struct {
		on bool
		c  byte
	}{{s.SYN, 'S'}, {s.FIN, 'F'}, {s.RST, 'R'}, {s.PSH, 'P'}, {s.ACK, '.'}} {
		if x.on {
			f = append(f, x.c)
		}
	}
	ts := ""
	if s.HasTS {
		ts = fmt.Sprintf(" TS %d/%d", s.TSval, s.TSecr)
	}
	return fmt.Sprintf("%s > %s [%s] seq %d ack %d len %d%s", s.Src, s.Dst, f, s.Seq, s.Ack, s.Len, ts)
}

// Trace is a capture file decoded for checks: its TCP segments in file
// order and its connections (Summarize).
type Trace struct {
	Path     string
	Link     layers.LinkType
	Frames   int // all frames, TCP or not
	Segments []Segment
	Conns    []Conn
}

// ReadTrace reads a pcap file (gzip-compressed or not; any link type
// gopacket decodes: Ethernet, LINUX_SLL, LINUX_SLL2, raw IP).
func ReadTrace(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f) // transparently gunzips
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tr := &Trace{Path: path, Link: r.LinkType()}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		tr.Frames++
		seg, ok := segmentOf(data, r.LinkType(), ci)
		if !ok {
			continue
		}
		seg.Frame = tr.Frames
		tr.Segments = append(tr.Segments, seg)
	}
	tr.Conns = connsOf(tr.Segments)
	return tr, nil
}

// segmentOf decodes one frame's TCP segment; false if it has none.
func segmentOf(data []byte, link layers.LinkType, ci gopacket.CaptureInfo) (Segment, bool) {
	p := gopacket.NewPacket(data, link, gopacket.NoCopy)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		return Segment{}, false
	}
	s := Segment{
		Time: ci.Timestamp,
		SYN:  tcp.SYN, ACK: tcp.ACK, FIN: tcp.FIN, RST: tcp.RST, PSH: tcp.PSH,
		Seq: tcp.Seq, Ack: tcp.Ack, Window: tcp.Window, Len: len(tcp.Payload),
	}
	for _, o := range tcp.Options {
		if o.OptionType == layers.TCPOptionKindTimestamps && len(o.OptionData) == 8 {
			s.HasTS = true
			s.TSval = binary.BigEndian.Uint32(o.OptionData[:4])
			s.TSecr = binary.BigEndian.Uint32(o.OptionData[4:])
		}
	}
	seg := append(tcp.Contents[:len(tcp.Contents):len(tcp.Contents)], tcp.Payload...)
	n := len(seg)
	var src, dst netip.Addr
	var pseudo []byte
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		pseudo = append(append(append([]byte{}, ip.SrcIP.To4()...), ip.DstIP.To4()...), 0, 6, byte(n>>8), byte(n))
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		s.IPv6 = true
		pseudo = append(append(append([]byte{}, ip.SrcIP...), ip.DstIP...), byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, 6)
	default:
		return Segment{}, false
	}
	s.Truncated = ci.CaptureLength < ci.Length
	s.ChecksumOK = !s.Truncated && onesSum(pseudo, seg) == 0xffff
	s.Src = netip.AddrPortFrom(src, uint16(tcp.SrcPort))
	s.Dst = netip.AddrPortFrom(dst, uint16(tcp.DstPort))
	return s, true
}

// onesSum is the Internet checksum's ones' complement sum of a and b
// (a's length is even).
func onesSum(a, b []byte) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(p[0])<<8 | uint32(p[1])
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	add(a)
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// BadChecksums returns how many full-length segments of tr fail their
// TCP checksum.
func (tr *Trace) BadChecksums() int {
	n := 0
	for _, s := range tr.Segments {
		if !s.Truncated && !s.ChecksumOK {
			n++
		}
	}
	return n
}

// Between returns the segments between a and b, either way, in file order.
func (tr *Trace) Between(a, b netip.AddrPort) []Segment {
	var out []Segment
	for _, s := range tr.Segments {
		if (s.Src == a && s.Dst == b) || (s.Src == b && s.Dst == a) {
			out = append(out, s)
		}
	}
	return out
}

// sub returns a trace of the segments between client and server; a zero
// client means every client except the crafted hosts.
func (tr *Trace) sub(client, server netip.AddrPort) *Trace {
	out := &Trace{Path: tr.Path, Link: tr.Link}
	for _, s := range tr.Segments {
		c := s.Src
		if c == server {
			c = s.Dst
		}
		switch {
		case s.Src != server && s.Dst != server:
		case client.IsValid() && c == client, !client.IsValid() && c.Addr() != CraftedV4:
			out.Segments = append(out.Segments, s)
		}
	}
	return out
}

// Count returns how many segments of tr satisfy f.
func (tr *Trace) Count(f func(Segment) bool) int {
	n := 0
	for _, s := range tr.Segments {
		if f(s) {
			n++
		}
	}
	return n
}

// Retransmissions counts segments that carry sequence space (payload,
// SYN or FIN) already sent earlier in the same direction of the same
// 4-tuple: what tshark calls tcp.analysis.retransmission, roughly. A new
// SYN with a different ISN on a reused 4-tuple starts afresh.
func (tr *Trace) Retransmissions(f func(Segment) bool) int {
	type dir struct{ a, b netip.AddrPort }
	type state struct {
		isn  uint32
		high uint32 // next sequence number after the highest sent
	}
	seen := map[dir]*state{}
	n := 0
	for _, s := range tr.Segments {
		span := uint32(s.Len)
		if s.SYN {
			span++
		}
		if s.FIN {
			span++
		}
		if span == 0 || s.RST {
			continue
		}
		d := dir{s.Src, s.Dst}
		st := seen[d]
		if st == nil || (s.SYN && st.isn != s.Seq) {
			st = &state{isn: s.Seq, high: s.Seq}
			seen[d] = st
		}
		end := s.Seq + span
		if int32(end-st.high) <= 0 {
			if f == nil || f(s) {
				n++
			}
			continue
		}
		st.high = end
	}
	return n
}

// TsharkCount runs `tshark -n -r path -Y displayFilter` and returns how
// many frames match. It fails when tshark (Debian package tshark) is not
// installed.
func TsharkCount(path, displayFilter string) (int, error) {
	if _, err := exec.LookPath("tshark"); err != nil {
		return 0, errors.New("netlab: tshark (Debian package tshark) is not installed")
	}
	var stderr bytes.Buffer
	cmd := exec.Command("tshark", "-n", "-r", path, "-Y", displayFilter, "-T", "fields", "-e", "frame.number")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("tshark -n -r %s -Y %q: %v: %s", path, displayFilter, err, strings.TrimSpace(stderr.String()))
	}
	return len(strings.Fields(string(out))), nil
}
