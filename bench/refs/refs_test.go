//go:build linux

package refs

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/bench/report"
	"github.com/tcpsentry/tcpsentry/bench/traffic"
)

// TestBuildCycle: the chase's successor links form one cycle through all
// n nodes, so a chase from node 0 visits each node exactly once before it
// comes back, whatever the seed.
func TestBuildCycle(t *testing.T) {
	for _, n := range []int{2, 3, 4, 7, 64, 1000, 4099} {
		for seed := range uint64(5) {
			nodes := make([]node, n)
			buildCycle(nodes, rand.New(rand.NewPCG(seed, 1)))
			seen := make([]bool, n)
			i, steps := uint64(0), 0
			for {
				if i >= uint64(n) {
					t.Fatalf("n=%d seed=%d: link to %d, out of range", n, seed, i)
				}
				if seen[i] {
					break
				}
				seen[i] = true
				i = nodes[i].next
				steps++
			}
			if i != 0 || steps != n {
				t.Fatalf("n=%d seed=%d: chase from 0 came back to %d after %d steps, want 0 after %d", n, seed, i, steps, n)
			}
		}
	}
	// Different seeds give different cycles (n=2 has only one).
	a, b := make([]node, 100), make([]node, 100)
	buildCycle(a, rand.New(rand.NewPCG(1, 1)))
	buildCycle(b, rand.New(rand.NewPCG(2, 1)))
	same := true
	for i := range a {
		same = same && a[i].next == b[i].next
	}
	if same {
		t.Error("seeds 1 and 2 built the same cycle")
	}
}

func TestNodeIsALine(t *testing.T) {
	var n node
	if s := int(unsafe.Sizeof(n)); s != lineSize {
		t.Fatalf("node is %d bytes, want %d", s, lineSize)
	}
}

func TestMemoryAccessSmall(t *testing.T) {
	ns, err := MemoryAccess(1<<20, 100_000, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if !(ns > 0) || math.IsInf(ns, 0) {
		t.Fatalf("%v ns per access", ns)
	}
	// The smallest valid chase: 2 nodes (size rounded down from 191).
	if _, err := MemoryAccess(191, 1, 1, false); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryAccessBadInput(t *testing.T) {
	for _, c := range []struct {
		size  int64
		steps int
	}{{-1, 10}, {0, 10}, {64, 10}, {127, 10}, {1 << 20, 0}, {1 << 20, -5}} {
		if ns, err := MemoryAccess(c.size, c.steps, 1, false); err == nil {
			t.Errorf("MemoryAccess(%d, %d) = %v, want an error", c.size, c.steps, ns)
		}
	}
}

// pkt is one frame of the hand-made capture.
type pkt struct {
	v6       bool
	vlan     uint16 // 802.1Q tag when non-zero
	udp      bool
	src, dst string
	sp, dp   uint16
	truncate int // keep only this many bytes when non-zero
}

// smallPackets: flow A (IPv4) both ways, one of its frames 802.1Q-tagged;
// flow B (IPv6) both ways; flow C with both ends on one address (the port
// decides the order); a UDP datagram; an IPv4 frame cut inside its TCP
// header. 10 packets, 8 TCP, 3 flows.
var smallPackets = []pkt{
	{src: "10.0.0.1", dst: "10.0.0.2", sp: 40000, dp: 80},
	{src: "10.0.0.2", dst: "10.0.0.1", sp: 80, dp: 40000},
	{src: "10.0.0.1", dst: "10.0.0.2", sp: 40000, dp: 80},
	{src: "10.0.0.2", dst: "10.0.0.1", sp: 80, dp: 40000, vlan: 10},
	{v6: true, src: "fd00::1", dst: "fd00::2", sp: 40001, dp: 443},
	{v6: true, src: "fd00::2", dst: "fd00::1", sp: 443, dp: 40001},
	{src: "10.0.0.9", dst: "10.0.0.9", sp: 6000, dp: 5000},
	{src: "10.0.0.9", dst: "10.0.0.9", sp: 5000, dp: 6000},
	{udp: true, src: "10.0.0.1", dst: "10.0.0.2", sp: 5353, dp: 53},
	{src: "10.0.0.1", dst: "10.0.0.3", sp: 40002, dp: 80, truncate: 14 + 20 + 10},
}

const smallTCP, smallFlows = 8, 3

func (p pkt) frame(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	}
	ls := []gopacket.SerializableLayer{eth}
	et := layers.EthernetTypeIPv4
	if p.v6 {
		et = layers.EthernetTypeIPv6
	}
	if p.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: p.vlan, Type: et})
	} else {
		eth.EthernetType = et
	}
	var nl gopacket.NetworkLayer
	if p.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.ParseIP(p.src), DstIP: net.ParseIP(p.dst), NextHeader: layers.IPProtocolTCP}
		if p.udp {
			ip.NextHeader = layers.IPProtocolUDP
		}
		nl, ls = ip, append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(p.src).To4(), DstIP: net.ParseIP(p.dst).To4(), Protocol: layers.IPProtocolTCP}
		if p.udp {
			ip.Protocol = layers.IPProtocolUDP
		}
		nl, ls = ip, append(ls, ip)
	}
	if p.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sp), DstPort: layers.UDPPort(p.dp)}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, u, gopacket.Payload("query"))
	} else {
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sp), DstPort: layers.TCPPort(p.dp), Seq: 1000, ACK: true, Ack: 1, Window: 512}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp, gopacket.Payload("hello"))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// packetWriter is what the pcap and pcapng writers offer.
type packetWriter interface {
	WritePacket(gopacket.CaptureInfo, []byte) error
}

// smallCapture writes smallPackets in one of three formats.
func smallCapture(t *testing.T, format string) []byte {
	t.Helper()
	var out bytes.Buffer
	var w packetWriter
	var flush func() error
	switch format {
	case "pcap", "pcap-ns":
		pw := pcapgo.NewWriter(&out)
		if format == "pcap-ns" {
			pw = pcapgo.NewWriterNanos(&out)
		}
		if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		w, flush = pw, func() error { return nil }
	case "pcapng":
		nw, err := pcapgo.NewNgWriter(&out, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		w, flush = nw, nw.Flush
	default:
		t.Fatalf("format %q", format)
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range smallPackets {
		data := p.frame(t)
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(data), Length: len(data)}
		if p.truncate > 0 {
			data = data[:p.truncate]
			ci.CaptureLength = p.truncate
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestGopacketReaderSmall: exact counts on the hand-made capture, as pcap
// (micro- and nanosecond) and as pcapng: the tagged frame is TCP, the
// reverse directions and the same-address flow fold into their flows, the
// UDP datagram and the truncated frame are packets but not TCP.
func TestGopacketReaderSmall(t *testing.T) {
	for _, format := range []string{"pcap", "pcap-ns", "pcapng"} {
		res, err := GopacketReader(smallCapture(t, format))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if res.Packets != len(smallPackets) || res.TCP != smallTCP || res.Flows != smallFlows {
			t.Errorf("%s: %d packets, %d TCP, %d flows; want %d, %d, %d",
				format, res.Packets, res.TCP, res.Flows, len(smallPackets), smallTCP, smallFlows)
		}
		if res.Took <= 0 {
			t.Errorf("%s: took %v", format, res.Took)
		}
	}
}

// TestGopacketReaderVLAN: the tagged frame alone is one TCP flow, so the
// Dot1Q layer really hands on to IPv4.
func TestGopacketReaderVLAN(t *testing.T) {
	saved := smallPackets
	defer func() { smallPackets = saved }()
	smallPackets = []pkt{saved[3], {v6: true, vlan: 7, src: "fd00::5", dst: "fd00::6", sp: 1, dp: 2}}
	res, err := GopacketReader(smallCapture(t, "pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Packets != 2 || res.TCP != 2 || res.Flows != 2 {
		t.Fatalf("%+v, want 2 packets, 2 TCP, 2 flows", res)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGopacketReaderTestdata: real kernel captures. Packet counts are
// tcpdump's (tcpdump -n -r FILE | wc -l: demo 48, refused_any 22,
// clean_many 7431); the flows are the connections testdata/README.md lists.
// refused_any is Linux SLL2: the decoder comes from the file header.
func TestGopacketReaderTestdata(t *testing.T) {
	for _, c := range []struct {
		file           string
		packets, flows int
	}{
		{"demo.pcap", 48, 6},
		{"refused_any.pcap", 22, 5},
		{"clean_many.pcap.gz", 7431, 312},
	} {
		res, err := GopacketReader(readTestdata(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if res.Packets != c.packets || res.TCP != c.packets || res.Flows != c.flows {
			t.Errorf("%s: %d packets, %d TCP, %d flows; want %d, %d, %d",
				c.file, res.Packets, res.TCP, res.Flows, c.packets, c.packets, c.flows)
		}
	}
}

func TestGopacketReaderBadInput(t *testing.T) {
	demo := readTestdata(t, "demo.pcap")
	for name, data := range map[string][]byte{
		"empty":   nil,
		"short":   {0xd4, 0xc3},
		"garbage": bytes.Repeat([]byte("not a capture "), 10),
		"cut":     demo[:len(demo)-10], // inside the last record
	} {
		if res, err := GopacketReader(data); err == nil {
			t.Errorf("%s: %+v, want an error", name, res)
		}
	}
}

// TestMeasure makes the figures for a report by hand:
//
//	TCPSENTRY_REFS_MEASURE=1 go test ./bench/refs -run TestMeasure -v
//
// a 1 GiB chase of 20M steps, and GopacketReader on clean_many (gunzipped
// in memory) and on a 2M-packet synthetic capture.
func TestMeasure(t *testing.T) {
	if os.Getenv("TCPSENTRY_REFS_MEASURE") != "1" {
		t.Skip("set TCPSENTRY_REFS_MEASURE=1 to measure (allocates 1 GiB)")
	}
	h := report.Describe()
	t.Logf("host: %s, %d CPUs, %s, %s", h.CPU, h.Cores, h.Kernel, h.Go)
	for _, size := range []int64{1 << 20, 1 << 30} {
		ns, err := MemoryAccess(size, 20_000_000, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("MemoryAccess(%d MiB, 20M steps): %.1f ns/access", size>>20, ns)
	}

	zr, err := gzip.NewReader(bytes.NewReader(readTestdata(t, "clean_many.pcap.gz")))
	if err != nil {
		t.Fatal(err)
	}
	many, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var synth bytes.Buffer
	if _, err := traffic.Write(&synth, traffic.Options{Connections: 100_000, Concurrent: 5000, IPv6Share: 0.1, VLANShare: 0.1, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"clean_many.pcap", many}, {"traffic 100k connections", synth.Bytes()}} {
		var rates []float64
		var res GopacketResult
		for range 5 {
			if res, err = GopacketReader(c.data); err != nil {
				t.Fatal(err)
			}
			rates = append(rates, float64(res.Packets)/res.Took.Seconds())
		}
		t.Logf("GopacketReader %s (%d bytes): %d packets, %d TCP, %d flows; median of 5 %s packets/s",
			c.name, len(c.data), res.Packets, res.TCP, res.Flows, report.Rate(report.Median(rates)))
	}
}
