package ring_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/ring"
)

// frame is one delivered (or expected) frame, copied out of its batch.
type frame struct {
	Link ring.LinkType
	TS   int64
	Wire int
	Data []byte
}

func (f frame) equal(g frame) bool {
	return f.Link == g.Link && f.TS == g.TS && f.Wire == g.Wire && bytes.Equal(f.Data, g.Data)
}

// batchInfo is the shape of one delivered batch.
type batchInfo struct {
	Link ring.LinkType
	N    int
}

// drain reads src until it returns an error, which it returns with the
// frames and batch shapes it got.
func drain(src ring.Source, size int) ([]frame, []batchInfo, error) {
	b := ring.NewBatch(size)
	var frames []frame
	var batches []batchInfo
	for {
		err := src.NextBatch(b)
		if err != nil {
			if b.N != 0 {
				return frames, batches, errors.New("error with a non-empty batch")
			}
			return frames, batches, err
		}
		if b.N == 0 && b.Clock == 0 {
			return frames, batches, errors.New("empty batch without error or clock")
		}
		if b.N == 0 {
			continue // a clock beat for an idle worker
		}
		batches = append(batches, batchInfo{b.Link, b.N})
		for i := 0; i < b.N; i++ {
			if b.WireLen[i] < len(b.Frames[i]) {
				return frames, batches, errors.New("wire length below captured length")
			}
			frames = append(frames, frame{b.Link, b.TS[i], b.WireLen[i], bytes.Clone(b.Frames[i])})
		}
	}
}

// replayResult is everything a full replay delivered.
type replayResult struct {
	workers [][]frame
	batches [][]batchInfo
	rp      *ring.Replay
}

// all is the frames of every worker, worker after worker.
func (r replayResult) all() []frame {
	var out []frame
	for _, w := range r.workers {
		out = append(out, w...)
	}
	return out
}

// replay replays data with cfg, every source read to io.EOF concurrently.
// It replays data a second time from memory (ring.InMemory), where pcap
// records are read in place and, with more than one worker, frames are
// handed on without a copy, and checks that the two agree: the same
// frames to the same workers, the same end (error, truncation) and counts.
func replay(t *testing.T, data []byte, cfg ring.ReplayConfig) replayResult {
	t.Helper()
	res := replayFrom(t, bytes.NewReader(data), cfg)
	mem := replayFrom(t, ring.InMemory(data), cfg)
	for w := range res.workers {
		if !slices.EqualFunc(mem.workers[w], res.workers[w], frame.equal) {
			t.Fatalf("from memory, worker %d got %d frames unlike the %d read as a stream", w, len(mem.workers[w]), len(res.workers[w]))
		}
	}
	if fmt.Sprint(mem.rp.Err()) != fmt.Sprint(res.rp.Err()) || mem.rp.Truncated() != res.rp.Truncated() {
		t.Fatalf("from memory: Err() %v, Truncated() %v; as a stream %v, %v", mem.rp.Err(), mem.rp.Truncated(), res.rp.Err(), res.rp.Truncated())
	}
	ms, rs := mem.rp.Stats(), res.rp.Stats()
	if ms.Packets != rs.Packets || ms.Bytes != rs.Bytes || ms.FirstTS != rs.FirstTS || ms.LastTS != rs.LastTS || ms.FileBytes > int64(len(data)) {
		t.Fatalf("from memory: stats %+v; as a stream %+v (%d bytes)", ms, rs, len(data))
	}
	return res
}

func replayFrom(t *testing.T, in io.Reader, cfg ring.ReplayConfig) replayResult {
	t.Helper()
	rp, err := ring.OpenReplay(in, cfg)
	if err != nil {
		t.Fatalf("OpenReplay: %v", err)
	}
	t.Cleanup(func() { rp.Close() })
	srcs := rp.Sources()
	res := replayResult{workers: make([][]frame, len(srcs)), batches: make([][]batchInfo, len(srcs)), rp: rp}
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, src := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.workers[i], res.batches[i], errs[i] = drain(src, cfg.BatchSize)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != io.EOF {
			t.Fatalf("worker %d ended with %v, want io.EOF", i, err)
		}
	}
	return res
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// oracle reads a capture with pcapgo's allocating calls: the frames a
// replay to one worker must deliver.
func oracle(t testing.TB, data []byte) []frame {
	t.Helper()
	var out []frame
	if binary.LittleEndian.Uint32(data) == 0x0a0d0d0a {
		r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			t.Fatal(err)
		}
		for {
			d, ci, err := r.ReadPacketData()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			link := ring.LinkType(ci.AncillaryData[0].(layers.LinkType))
			out = append(out, frame{link, ci.Timestamp.UnixNano(), ci.Length, d})
		}
	}
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		d, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{ring.LinkType(r.LinkType()), ci.Timestamp.UnixNano(), ci.Length, d})
	}
}

// ipOffset is where the IP header starts in a test frame.
func ipOffset(link ring.LinkType) int {
	switch link {
	case ring.LinkTypeEthernet:
		return 14
	case ring.LinkTypeLinuxSLL:
		return 16
	case ring.LinkTypeLinuxSLL2:
		return 20
	case ring.LinkTypeNull, ring.LinkTypeLoop:
		return 4
	}
	return 0
}

// flowKey returns the canonical (direction-free) address/port pair of an
// IPv4 or IPv6 TCP/UDP frame without extension headers.
func flowKey(f []byte, link ring.LinkType) (string, bool) {
	off := ipOffset(link)
	if len(f) < off+1 {
		return "", false
	}
	ip := f[off:]
	var a, b []byte
	switch ip[0] >> 4 {
	case 4:
		ihl := int(ip[0]&15) * 4
		if len(ip) < ihl+4 {
			return "", false
		}
		a = append(append([]byte{}, ip[12:16]...), ip[ihl:ihl+2]...)
		b = append(append([]byte{}, ip[16:20]...), ip[ihl+2:ihl+4]...)
	case 6:
		if len(ip) < 44 {
			return "", false
		}
		a = append(append([]byte{}, ip[8:24]...), ip[40:42]...)
		b = append(append([]byte{}, ip[24:40]...), ip[42:44]...)
	default:
		return "", false
	}
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	return string(a) + string(b), true
}

// symHash is the tests' stand-in for the sensor's symmetric flow hash.
func symHash(f []byte, link ring.LinkType) (uint64, bool) {
	key, ok := flowKey(f, link)
	if !ok {
		return 0, false
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	x := h.Sum64()
	// splitmix64's finaliser, so the high bits mix too.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x, true
}

// symHashNoAlloc is symHash without allocations, for the alloc tests: it
// xors the two directions' address words so they give the same value.
func symHashNoAlloc(f []byte, link ring.LinkType) (uint64, bool) {
	off := ipOffset(link)
	if len(f) < off+24 || f[off]>>4 != 4 {
		return 0, false
	}
	ip := f[off:]
	ihl := int(ip[0]&15) * 4
	if len(ip) < ihl+4 {
		return 0, false
	}
	s := uint64(binary.BigEndian.Uint32(ip[12:]))<<16 | uint64(binary.BigEndian.Uint16(ip[ihl:]))
	d := uint64(binary.BigEndian.Uint32(ip[16:]))<<16 | uint64(binary.BigEndian.Uint16(ip[ihl+2:]))
	x := s ^ d
	x *= 0x9e3779b97f4a7c15
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	return x ^ x>>32, true
}

// tcpPacket builds an IPv4 or IPv6 TCP segment.
func tcpPacket(t testing.TB, src, dst net.IP, sport, dport uint16, syn, ack bool, payload []byte) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Window: 65535, Seq: 1000, Ack: 1}
	var ip gopacket.SerializableLayer
	if v4 := src.To4(); v4 != nil {
		l := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: v4, DstIP: dst.To4()}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	} else {
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// wrap puts a link-layer header of link in front of an IP packet.
func wrap(t testing.TB, link ring.LinkType, ip []byte) []byte {
	t.Helper()
	v6 := ip[0]>>4 == 6
	etype := uint16(0x0800)
	if v6 {
		etype = 0x86dd
	}
	var h []byte
	switch link {
	case ring.LinkTypeEthernet:
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetType(etype)}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload(ip)); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(buf.Bytes())
	case ring.LinkTypeLinuxSLL: // packet type, ARPHRD, address length, address, protocol
		h = binary.BigEndian.AppendUint16(nil, 0)
		h = binary.BigEndian.AppendUint16(h, 772)
		h = binary.BigEndian.AppendUint16(h, 6)
		h = append(h, 2, 0, 0, 0, 0, 1, 0, 0)
		h = binary.BigEndian.AppendUint16(h, etype)
	case ring.LinkTypeLinuxSLL2: // protocol, reserved, ifindex, ARPHRD, packet type, address length, address
		h = binary.BigEndian.AppendUint16(nil, etype)
		h = binary.BigEndian.AppendUint16(h, 0)
		h = binary.BigEndian.AppendUint32(h, 1)
		h = binary.BigEndian.AppendUint16(h, 772)
		h = append(h, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0)
	case ring.LinkTypeNull: // host byte order AF_
		af := uint32(2)
		if v6 {
			af = 30
		}
		h = binary.NativeEndian.AppendUint32(nil, af)
	case ring.LinkTypeLoop: // network byte order AF_
		af := uint32(2)
		if v6 {
			af = 24
		}
		h = binary.BigEndian.AppendUint32(nil, af)
	case ring.LinkTypeRaw, ring.LinkTypeIPv4, ring.LinkTypeIPv6:
	default:
		t.Fatalf("no header for link type %d", link)
	}
	return append(h, ip...)
}

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()

// synthFrames builds flows*perFlow frames of link, flows interleaved,
// both directions of each flow, about 1 µs apart (with nanoseconds). Every third frame carries a
// payload of up to 1400 bytes; with snap > 0 frames are cut to snap bytes.
func synthFrames(t testing.TB, link ring.LinkType, flows, perFlow, snap int) []frame {
	t.Helper()
	v6 := link == ring.LinkTypeIPv6
	var out []frame
	for i := 0; i < perFlow; i++ {
		for f := 0; f < flows; f++ {
			c4, s4 := net.IPv4(10, 0, byte(f>>8), byte(f)), net.IPv4(10, 1, 0, 1)
			if v6 || link != ring.LinkTypeIPv4 && f%5 == 4 {
				c4, s4 = net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
			}
			var payload []byte
			if i%3 == 2 {
				payload = bytes.Repeat([]byte{byte(f), byte(i)}, (f*37+i*11)%700)
			}
			sport, dport := uint16(40000+f), uint16(443)
			var p []byte
			if i%2 == 0 {
				p = tcpPacket(t, c4, s4, sport, dport, i == 0, i > 0, payload)
			} else {
				p = tcpPacket(t, s4, c4, dport, sport, i == 1, true, payload)
			}
			d := wrap(t, link, p)
			wire := len(d)
			if snap > 0 && len(d) > snap {
				d = d[:snap]
			}
			n := int64(len(out))
			out = append(out, frame{link, t0 + n*1000 + n%997, wire, d})
		}
	}
	return out
}

func pcapBytes(t testing.TB, link ring.LinkType, frames []frame, nano bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if nano {
		w = pcapgo.NewWriterNanos(&buf)
	}
	if err := w.WriteFileHeader(65535, layers.LinkType(link)); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, f.TS), CaptureLength: len(f.Data), Length: f.Wire}
		if err := w.WritePacket(ci, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// pcapngBytes writes frames to a pcapng file with one interface per link
// type, in order of first use, all described before the first packet. It
// also returns the offset of every packet block.
func pcapngBytes(t testing.TB, frames []frame) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	ifaces := map[ring.LinkType]int{}
	var order []ring.LinkType
	for _, f := range frames {
		if _, ok := ifaces[f.Link]; !ok {
			ifaces[f.Link] = len(order)
			order = append(order, f.Link)
		}
	}
	if len(order) == 0 {
		order = append(order, ring.LinkTypeEthernet)
	}
	intf := pcapgo.DefaultNgInterface
	intf.LinkType = layers.LinkType(order[0])
	w, err := pcapgo.NewNgWriterInterface(&buf, intf, pcapgo.DefaultNgWriterOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range order[1:] {
		intf.LinkType = layers.LinkType(l)
		if _, err := w.AddInterface(intf); err != nil {
			t.Fatal(err)
		}
	}
	var offs []int
	for _, f := range frames {
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, buf.Len())
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, f.TS), CaptureLength: len(f.Data), Length: f.Wire, InterfaceIndex: ifaces[f.Link]}
		if err := w.WritePacket(ci, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), offs
}

// bigEndianPcap rewrites a little-endian pcap file in big-endian order.
func bigEndianPcap(le []byte) []byte {
	be := bytes.Clone(le)
	swap32 := func(o int) { binary.BigEndian.PutUint32(be[o:], binary.LittleEndian.Uint32(le[o:])) }
	swap16 := func(o int) { binary.BigEndian.PutUint16(be[o:], binary.LittleEndian.Uint16(le[o:])) }
	swap32(0)
	swap16(4)
	swap16(6)
	for _, o := range []int{8, 12, 16, 20} {
		swap32(o)
	}
	for o := 24; o < len(le); {
		caplen := int(binary.LittleEndian.Uint32(le[o+8:]))
		for i := 0; i < 16; i += 4 {
			swap32(o + i)
		}
		o += 16 + caplen
	}
	return be
}

// pcapRecordOffsets returns the offset of every record of a pcap file.
func pcapRecordOffsets(data []byte) []int {
	var offs []int
	for o := 24; o+16 <= len(data); {
		offs = append(offs, o)
		o += 16 + int(binary.LittleEndian.Uint32(data[o+8:]))
	}
	return offs
}

// pcapngPacketOffsets returns the offset of every enhanced packet block
// of a little-endian pcapng file.
func pcapngPacketOffsets(data []byte) []int {
	var offs []int
	for o := 0; o+8 <= len(data); {
		if binary.LittleEndian.Uint32(data[o:]) == 6 {
			offs = append(offs, o)
		}
		o += int(binary.LittleEndian.Uint32(data[o+4:]))
	}
	return offs
}

// ngBlock builds a little-endian pcapng block of type typ around body.
func ngBlock(typ uint32, body []byte) []byte {
	n := 12 + (len(body)+3)&^3
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	b = append(b, body...)
	b = append(b, make([]byte, n-12-len(body))...)
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// splice returns data with ins inserted at offset at.
func splice(data []byte, at int, ins []byte) []byte {
	out := append([]byte{}, data[:at]...)
	out = append(out, ins...)
	return append(out, data[at:]...)
}

// goroutinesSettle waits until the goroutine count is back to n.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
}
