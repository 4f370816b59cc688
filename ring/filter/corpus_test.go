package filter

import (
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The corpus the differential tests run both compilers' programs over:
// network-layer packets of every shape the primitives look at, wrapped in
// each link type's header, whole and truncated, plus every frame of the
// repository's capture files under their own link type.

type frame struct {
	name string
	data []byte
}

// l3 is a network-layer packet and the Ethernet type that announces it.
type l3 struct {
	name  string
	etype uint16
	data  []byte
}

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ip6(src, dst string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
}

type tcpFlags struct{ fin, syn, rst, psh, ack, urg, ece, cwr bool }

func tcp(sport, dport uint16, f tcpFlags) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, Window: 512,
		FIN: f.fin, SYN: f.syn, RST: f.rst, PSH: f.psh, ACK: f.ack, URG: f.urg, ECE: f.ece, CWR: f.cwr}
}

// packets builds the network-layer corpus.
func packets(tb testing.TB) []l3 {
	var ps []l3
	add := func(name string, etype uint16, data []byte) { ps = append(ps, l3{name, etype, data}) }
	v4 := func(name string, ip *layers.IPv4, rest ...gopacket.SerializableLayer) {
		if t, ok := rest[0].(*layers.TCP); ok {
			t.SetNetworkLayerForChecksum(ip)
		}
		if u, ok := rest[0].(*layers.UDP); ok {
			u.SetNetworkLayerForChecksum(ip)
		}
		add(name, 0x0800, serialize(tb, append([]gopacket.SerializableLayer{ip}, rest...)...))
	}
	v6 := func(name string, ip *layers.IPv6, rest ...gopacket.SerializableLayer) {
		for _, l := range rest {
			if t, ok := l.(*layers.TCP); ok {
				t.SetNetworkLayerForChecksum(ip)
			}
			if u, ok := l.(*layers.UDP); ok {
				u.SetNetworkLayerForChecksum(ip)
			}
		}
		add(name, 0x86dd, serialize(tb, append([]gopacket.SerializableLayer{ip}, rest...)...))
	}
	payload := gopacket.Payload("GET / HTTP/1.1\r\nHost: x\r\n\r\n")

	// TCP over IPv4: every flag alone and the usual combinations, on the
	// ports the expressions name, both directions.
	flagSets := map[string]tcpFlags{
		"none": {}, "fin": {fin: true}, "syn": {syn: true}, "rst": {rst: true}, "psh": {psh: true},
		"ack": {ack: true}, "urg": {urg: true}, "ece": {ece: true}, "cwr": {cwr: true},
		"synack": {syn: true, ack: true}, "rstack": {rst: true, ack: true}, "finack": {fin: true, ack: true},
		"pshack": {psh: true, ack: true}, "synece": {syn: true, ece: true, cwr: true},
		"all": {true, true, true, true, true, true, true, true},
	}
	for name, f := range flagSets {
		v4("v4 tcp 1024>80 "+name, ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP), tcp(1024, 80, f))
		v6("v6 tcp 1024>80 "+name, ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolTCP), tcp(1024, 80, f))
	}
	for _, pp := range [][2]uint16{{80, 1024}, {443, 50000}, {50000, 443}, {22, 22}, {22, 2222}, {8080, 90}, {85, 85}, {1023, 1024}, {65535, 0}, {53, 53}} {
		for _, hosts := range [][2]string{{"10.0.0.1", "10.0.0.2"}, {"192.168.1.1", "10.0.0.1"}, {"127.0.0.1", "127.0.0.1"}, {"1.2.3.4", "224.0.0.1"}} {
			v4(fmt.Sprintf("v4 tcp %s:%d>%s:%d", hosts[0], pp[0], hosts[1], pp[1]), ip4(hosts[0], hosts[1], layers.IPProtocolTCP), tcp(pp[0], pp[1], tcpFlags{ack: true, psh: true}), payload)
		}
		for _, hosts := range [][2]string{{"2001:db8::1", "2001:db8::2"}, {"::1", "::1"}, {"fe80::1", "ff02::1"}, {"2001:db9::5", "fe80::1"}} {
			v6(fmt.Sprintf("v6 tcp %s:%d>%s:%d", hosts[0], pp[0], hosts[1], pp[1]), ip6(hosts[0], hosts[1], layers.IPProtocolTCP), tcp(pp[0], pp[1], tcpFlags{ack: true}), payload)
		}
		v4(fmt.Sprintf("v4 udp %d>%d", pp[0], pp[1]), ip4("10.0.0.2", "10.0.0.1", layers.IPProtocolUDP), &layers.UDP{SrcPort: layers.UDPPort(pp[0]), DstPort: layers.UDPPort(pp[1])}, payload)
		v6(fmt.Sprintf("v6 udp %d>%d", pp[0], pp[1]), ip6("2001:db8::2", "::1", layers.IPProtocolUDP), &layers.UDP{SrcPort: layers.UDPPort(pp[0]), DstPort: layers.UDPPort(pp[1])}, payload)
		v4(fmt.Sprintf("v4 sctp %d>%d", pp[0], pp[1]), ip4("10.0.0.1", "10.0.0.3", layers.IPProtocolSCTP), &layers.SCTP{SrcPort: layers.SCTPPort(pp[0]), DstPort: layers.SCTPPort(pp[1])})
		v6(fmt.Sprintf("v6 sctp %d>%d", pp[0], pp[1]), ip6("2001:db8::1", "2001:db8::3", layers.IPProtocolSCTP), &layers.SCTP{SrcPort: layers.SCTPPort(pp[0]), DstPort: layers.SCTPPort(pp[1])})
	}
	v4("v4 udp 53 zero-len payload", ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolUDP), &layers.UDP{SrcPort: 53, DstPort: 53})

	// IPv4 with options (IHL 6, 8 and 15): ports sit further in.
	for _, words := range []int{1, 3, 10} {
		ip := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
		ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
		for i := 1; i < 4*words-3; i++ {
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: 1}) // NOP
		}
		v4(fmt.Sprintf("v4 options %d words tcp 80>443 syn", words), ip, tcp(80, 443, tcpFlags{syn: true}))
		ip2 := *ip
		ip2.Protocol = layers.IPProtocolUDP
		v4(fmt.Sprintf("v4 options %d words udp 53>53", words), &ip2, &layers.UDP{SrcPort: 53, DstPort: 53}, payload)
	}

	// Fragments: the first carries the TCP header; a later one carries
	// bytes that read as port 80 and a RST, which libpcap must not take.
	first := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
	first.Flags = layers.IPv4MoreFragments
	v4("v4 first fragment tcp 80>1024 rst", first, tcp(80, 1024, tcpFlags{rst: true}), payload)
	later := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
	later.FragOffset = 185
	v4("v4 later fragment", later, gopacket.Payload(append([]byte{0, 80, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x04}, make([]byte, 30)...)))
	df := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP)
	df.Flags = layers.IPv4DontFragment
	v4("v4 df tcp 80>80", df, tcp(80, 80, tcpFlags{ack: true}))
	laterUDP := ip4("10.0.0.2", "10.0.0.1", layers.IPProtocolUDP)
	laterUDP.FragOffset = 3
	laterUDP.Flags = layers.IPv4MoreFragments
	v4("v4 later fragment udp", laterUDP, gopacket.Payload([]byte{0, 53, 0, 53, 0, 8, 0, 0}))

	// ICMP, IGMP and other protocols.
	for _, tc := range []struct{ t, c uint8 }{{8, 0}, {0, 0}, {3, 3}, {11, 0}, {5, 1}} {
		v4(fmt.Sprintf("v4 icmp %d/%d", tc.t, tc.c), ip4("10.0.0.1", "192.168.1.1", layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(tc.t, tc.c), Id: 1, Seq: 1}, gopacket.Payload("ping"))
	}
	for _, tc := range []struct{ t, c uint8 }{{128, 0}, {129, 0}, {135, 0}, {1, 4}, {143, 0}} {
		ip := ip6("fe80::1", "ff02::1", layers.IPProtocolICMPv6)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(tc.t, tc.c)}
		icmp.SetNetworkLayerForChecksum(ip)
		v6(fmt.Sprintf("v6 icmp6 %d/%d", tc.t, tc.c), ip, icmp, gopacket.Payload("12345678"))
	}
	for _, p := range []layers.IPProtocol{layers.IPProtocolIGMP, layers.IPProtocolGRE, layers.IPProtocolESP, layers.IPProtocolAH, 103, 112, 9, 0} {
		v4(fmt.Sprintf("v4 proto %d", p), ip4("10.0.0.5", "10.0.0.1", p), gopacket.Payload([]byte{0x11, 0x22, 0x00, 0x50, 0x00, 0x50, 0, 0, 0, 0, 0, 0}))
		v6(fmt.Sprintf("v6 proto %d", p), ip6("2001:db8::5", "2001:db8::1", p), gopacket.Payload([]byte{0x11, 0x22, 0x00, 0x50, 0x00, 0x50, 0, 0, 0, 0, 0, 0}))
	}

	// IPv6 extension headers: libpcap reads TCP only as the fixed next
	// header, or right after a fragment header for "tcp" itself.
	hbh := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}}
	hbh.NextHeader = layers.IPProtocolTCP
	v6("v6 hop-by-hop tcp 80>1024", ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolIPv6HopByHop), hbh, tcp(80, 1024, tcpFlags{syn: true}))
	for _, f := range []struct {
		name string
		off  uint16
		next layers.IPProtocol
	}{{"first", 0, layers.IPProtocolTCP}, {"later", 100, layers.IPProtocolTCP}, {"first udp", 0, layers.IPProtocolUDP}} {
		fr := &layers.IPv6Fragment{NextHeader: f.next, FragmentOffset: f.off, MoreFragments: true, Identification: 7}
		var rest gopacket.SerializableLayer = tcp(80, 1024, tcpFlags{rst: true})
		if f.next == layers.IPProtocolUDP {
			rest = &layers.UDP{SrcPort: 53, DstPort: 53}
		}
		v6("v6 fragment "+f.name, ip6("2001:db8::1", "2001:db8::2", layers.IPProtocolIPv6Fragment), fr, rest)
	}
	dst := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}}
	dst.NextHeader = layers.IPProtocolUDP
	v6("v6 dest-opts udp 53>53", ip6("::1", "::1", layers.IPProtocolIPv6Destination), dst, &layers.UDP{SrcPort: 53, DstPort: 53})

	// ARP and RARP, request and reply.
	for _, op := range []uint16{1, 2} {
		arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: net.HardwareAddr{0, 0x11, 0x22, 0x33, 0x44, 0x55}, SourceProtAddress: net.ParseIP("10.0.0.1").To4(),
			DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: net.ParseIP("10.0.0.2").To4()}
		b := serialize(tb, arp)
		add(fmt.Sprintf("arp op %d", op), 0x0806, b)
		add(fmt.Sprintf("rarp op %d", op), 0x8035, b)
	}

	// Odd IPv4: IHL below 5, and version 6 under the IPv4 type.
	oddIP, oddTCP := ip4("10.0.0.1", "10.0.0.2", layers.IPProtocolTCP), tcp(80, 80, tcpFlags{rst: true})
	oddTCP.SetNetworkLayerForChecksum(oddIP)
	odd := serialize(tb, oddIP, oddTCP)
	odd[0] = 0x44
	add("v4 ihl 4", 0x0800, odd)
	v6IP, v6TCP := ip6("::1", "::1", layers.IPProtocolTCP), tcp(80, 80, tcpFlags{rst: true})
	v6TCP.SetNetworkLayerForChecksum(v6IP)
	v6in4 := serialize(tb, v6IP, v6TCP)
	add("v6 bytes under ipv4 type", 0x0800, v6in4)

	// Other Ethernet types.
	add("lldp", 0x88cc, make([]byte, 40))
	add("llc length 100", 100, append([]byte{0x42, 0x42, 0x03}, make([]byte, 40)...))
	return ps
}

// Link-layer wrappers.

var (
	macA  = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}
	macB  = []byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
	bcast = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast = []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
)

// ether wraps p with the given tags (TPID, VID pairs) between the
// addresses and the type.
func ether(dst, src []byte, tags [][2]uint16, etype uint16, p []byte) []byte {
	b := append(append([]byte(nil), dst...), src...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t[0])
		b = binary.BigEndian.AppendUint16(b, 0x2000|t[1]) // priority 1 in the TCI
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	return append(b, p...)
}

func sll(etype uint16, p []byte) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[0:], 0)      // to us
	binary.BigEndian.PutUint16(b[2:], 1)      // ARPHRD_ETHER
	binary.BigEndian.PutUint16(b[4:], 6)      // address length
	copy(b[6:], macA)                         // address
	binary.BigEndian.PutUint16(b[14:], etype) // protocol
	return append(b, p...)
}

func sll2(etype uint16, p []byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], etype)
	binary.BigEndian.PutUint32(b[4:], 2) // ifindex
	binary.BigEndian.PutUint16(b[8:], 1) // ARPHRD_ETHER
	b[10] = 4                            // outgoing
	b[11] = 6
	copy(b[12:], macA)
	return append(b, p...)
}

func loopHdr(af uint32, order binary.AppendByteOrder, p []byte) []byte {
	b := order.AppendUint32(nil, af)
	return append(b, p...)
}

// wrap puts p in every framing link type link can carry it in.
func wrap(link uint16, p l3) []frame {
	var fs []frame
	add := func(name string, d []byte) { fs = append(fs, frame{p.name + " / " + name, d}) }
	switch link {
	case linkEthernet:
		add("eth", ether(macB, macA, nil, p.etype, p.data))
		add("eth bcast", ether(bcast, macA, nil, p.etype, p.data))
		add("eth mcast from B", ether(mcast, macB, nil, p.etype, p.data))
		add("eth A>A", ether(macA, macA, nil, p.etype, p.data))
		add("eth 8021q 100", ether(macB, macA, [][2]uint16{{0x8100, 100}}, p.etype, p.data))
		add("eth 8021q 200", ether(macA, macB, [][2]uint16{{0x8100, 200}}, p.etype, p.data))
		add("eth qinq 88a8 100 / 8100 200", ether(macB, macA, [][2]uint16{{0x88a8, 100}, {0x8100, 200}}, p.etype, p.data))
		add("eth qinq 9100 200 / 8100 100", ether(macB, macA, [][2]uint16{{0x9100, 200}, {0x8100, 100}}, p.etype, p.data))
	case linkSLL:
		add("sll", sll(p.etype, p.data))
	case linkSLL2:
		add("sll2", sll2(p.etype, p.data))
	case linkNull, linkLoop:
		order := binary.AppendByteOrder(binary.BigEndian)
		if link == linkNull {
			order = binary.NativeEndian
		}
		switch p.etype {
		case 0x0800:
			add("af 2", loopHdr(afInet, order, p.data))
			add("af 2 other order", loopHdr(0x02000000, order, p.data))
		case 0x86dd:
			for _, af := range []uint32{afInet6BSD, afInet6FreeBSD, afInet6Darwin, 10} {
				add(fmt.Sprint("af ", af), loopHdr(af, order, p.data))
			}
		default:
			add("af 0", loopHdr(0, order, p.data))
		}
	case linkRaw, linkIPv4, linkIPv6:
		if p.etype == 0x0800 || p.etype == 0x86dd {
			add("raw", p.data)
		}
	}
	return fs
}

// truncations of a frame: every length up to its end for the few frames
// chosen for it, which covers a load at each offset failing.
func truncations(f frame) []frame {
	var fs []frame
	for n := 0; n < len(f.data); n++ {
		fs = append(fs, frame{fmt.Sprintf("%s [:%d]", f.name, n), f.data[:n]})
	}
	return fs
}

var (
	corpusMu    sync.Mutex
	corpusCache = map[uint16][]frame{}
	fileFrames  map[uint16][]frame
)

// corpus is every frame for link type link.
func corpus(tb testing.TB, link uint16) []frame {
	tb.Helper()
	corpusMu.Lock()
	defer corpusMu.Unlock()
	if fs, ok := corpusCache[link]; ok {
		return fs
	}
	var fs []frame
	for _, p := range packets(tb) {
		w := wrap(link, p)
		fs = append(fs, w...)
		// Truncate a few shapes at every length.
		switch p.name {
		case "v4 tcp 1024>80 rstack", "v6 tcp 1024>80 synack", "v4 options 3 words tcp 80>443 syn",
			"v6 fragment first", "arp op 1", "v4 icmp 8/0", "v6 icmp6 128/0", "v4 udp 53>53", "v6 udp 53>53":
			for _, f := range w {
				fs = append(fs, truncations(f)...)
			}
		}
	}
	if fileFrames == nil {
		fileFrames = readCaptures(tb)
	}
	fs = append(fs, fileFrames[link]...)
	corpusCache[link] = fs
	return fs
}

// readCaptures reads every frame of the pcap files under ring/testdata
// and testdata, by link type. pcapng files are left out: their frames are
// the same traffic as the pcap files beside them.
func readCaptures(tb testing.TB) map[uint16][]frame {
	out := map[uint16][]frame{}
	var files []string
	for _, dir := range []string{"../testdata", "../../testdata"} {
		for _, pat := range []string{"*.pcap", "*.pcap.gz"} {
			m, err := filepath.Glob(filepath.Join(dir, pat))
			if err != nil {
				tb.Fatal(err)
			}
			files = append(files, m...)
		}
	}
	if len(files) == 0 {
		tb.Fatal("no capture files found under ring/testdata and testdata")
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			tb.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				tb.Fatal(err)
			}
		}
		pr, err := pcapgo.NewReader(r)
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		link := uint16(pr.LinkType())
		for i := 0; ; i++ {
			data, _, err := pr.ReadPacketData()
			if err == io.EOF {
				break
			}
			if err != nil {
				tb.Fatalf("%s frame %d: %v", name, i, err)
			}
			out[link] = append(out[link], frame{fmt.Sprintf("%s #%d", filepath.Base(name), i), data})
		}
		f.Close()
	}
	return out
}
