package decode

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Test addresses (documentation ranges) and the TCP header every built
// segment starts from.
var (
	mac1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	mac2 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}

	v4Src = net.IP{192, 0, 2, 7}
	v4Dst = net.IP{10, 0, 0, 5}
	v6Src = net.ParseIP("2001:db8::7")
	v6Dst = net.ParseIP("2001:db8:1::5")
)

const (
	tSrcPort = 51234
	tDstPort = 80
	tSeq     = 0x01020304
	tAck     = 0xa0b0c0d0
	tWindow  = 29200
	tCsum    = 0xbeef
	tUrgent  = 7
	tIPID    = 0x1234
	tTTL     = 61
)

// serialize builds a frame from layers with fixed lengths and the
// checksums left as set (Parse does not look at them).
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethL(et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mac1, DstMAC: mac2, EthernetType: et}
}

func dot1q(vid uint16, next layers.EthernetType) *layers.Dot1Q {
	return &layers.Dot1Q{Priority: 5, VLANIdentifier: vid, Type: next}
}

func ip4L(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: tTTL, Id: tIPID, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: v4Src, DstIP: v4Dst}
}

func ip6L(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: tTTL, FlowLabel: 0x12345, NextHeader: next,
		SrcIP: v6Src, DstIP: v6Dst}
}

// tcpL is the TCP header of a test segment with the given flags and options.
func tcpL(flags uint8, opts ...layers.TCPOption) *layers.TCP {
	return &layers.TCP{SrcPort: tSrcPort, DstPort: tDstPort, Seq: tSeq, Ack: tAck,
		FIN: flags&FlagFIN != 0, SYN: flags&FlagSYN != 0, RST: flags&FlagRST != 0,
		PSH: flags&FlagPSH != 0, ACK: flags&FlagACK != 0, URG: flags&FlagURG != 0,
		ECE: flags&FlagECE != 0, CWR: flags&FlagCWR != 0,
		Window: tWindow, Checksum: tCsum, Urgent: tUrgent, Options: opts}
}

// TCP options as gopacket builds them.
func oMSS(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionData: binary.BigEndian.AppendUint16(nil, v)}
}
func oWS(v uint8) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{v}}
}
func oSACKPerm() layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted}
}
func oTS(val, ecr uint32) layers.TCPOption {
	d := binary.BigEndian.AppendUint32(nil, val)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionData: binary.BigEndian.AppendUint32(d, ecr)}
}
func oSACK(edges ...uint32) layers.TCPOption {
	var d []byte
	for _, e := range edges {
		d = binary.BigEndian.AppendUint32(d, e)
	}
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionData: d}
}
func oNOP() layers.TCPOption { return layers.TCPOption{OptionType: layers.TCPOptionKindNop} }
func oRaw(kind uint8, data ...byte) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKind(kind), OptionData: data}
}

// rawOpts is a TCP options area given byte for byte (malformed ones that
// gopacket would not serialize): NOPs reserve the room, patchOpts writes it.
func rawOpts(b []byte) []layers.TCPOption {
	o := make([]layers.TCPOption, len(b))
	for i := range o {
		o[i] = oNOP()
	}
	return o
}

// patchOpts writes opts over the options area of the TCP header at off.
func patchOpts(frame []byte, off int, opts []byte) []byte {
	copy(frame[off+20:], opts)
	return frame
}

// unhex decodes hex that may contain spaces and newlines.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

func v4Addr(ip net.IP) (a [16]byte) {
	copy(a[:], ip.To4())
	return a
}

func v6Addr(ip net.IP) (a [16]byte) {
	copy(a[:], ip.To16())
	return a
}

// diffPacket lists the fields in which got differs from want, Payload by
// content.
func diffPacket(got, want *Packet) string {
	var d []string
	chk := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	chk("NVLAN", got.NVLAN, want.NVLAN)
	chk("VLAN", got.VLAN, want.VLAN)
	chk("Family", got.Family, want.Family)
	chk("Src", got.Src, want.Src)
	chk("Dst", got.Dst, want.Dst)
	chk("TTL", got.TTL, want.TTL)
	chk("IPID", got.IPID, want.IPID)
	chk("IPLen", got.IPLen, want.IPLen)
	chk("SrcPort", got.SrcPort, want.SrcPort)
	chk("DstPort", got.DstPort, want.DstPort)
	chk("Seq", got.Seq, want.Seq)
	chk("Ack", got.Ack, want.Ack)
	chk("Flags", got.Flags, want.Flags)
	chk("Window", got.Window, want.Window)
	chk("Urgent", got.Urgent, want.Urgent)
	chk("Checksum", got.Checksum, want.Checksum)
	chk("HdrLen", got.HdrLen, want.HdrLen)
	chk("PayloadLen", got.PayloadLen, want.PayloadLen)
	chk("Payload", hex.EncodeToString(got.Payload), hex.EncodeToString(want.Payload))
	chk("Opts", fmt.Sprintf("%06b", got.Opts), fmt.Sprintf("%06b", want.Opts))
	chk("MSS", got.MSS, want.MSS)
	chk("WScale", got.WScale, want.WScale)
	chk("TSval", got.TSval, want.TSval)
	chk("TSecr", got.TSecr, want.TSecr)
	chk("NSACK", got.NSACK, want.NSACK)
	chk("SACK", got.SACK, want.SACK)
	return strings.Join(d, "\n")
}
