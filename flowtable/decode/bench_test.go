package decode

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// BenchmarkParse measures the per-packet cost on the hot path's common
// shapes: an Ethernet/IPv4/TCP segment with timestamps (every Linux segment
// after the handshake), a SYN with the full option set, and IPv6.
func BenchmarkParse(b *testing.B) {
	pa := uint8(FlagPSH | FlagACK)
	payload := make([]byte, 100)
	cases := []struct {
		name  string
		link  int
		frame []byte
	}{
		{"eth-ipv4-tcp-ts", LinkEthernet, serialize(b, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP),
			tcpL(pa, tsOpts()...), gopacket.Payload(payload))},
		{"eth-ipv4-syn", LinkEthernet, serialize(b, ethL(layers.EthernetTypeIPv4), ip4L(layers.IPProtocolTCP),
			tcpL(FlagSYN, synOpts()...))},
		{"eth-dot1q-ipv4-tcp-ts", LinkEthernet, serialize(b, ethL(layers.EthernetTypeDot1Q), dot1q(100, layers.EthernetTypeIPv4),
			ip4L(layers.IPProtocolTCP), tcpL(pa, tsOpts()...), gopacket.Payload(payload))},
		{"eth-ipv6-tcp-ts", LinkEthernet, serialize(b, ethL(layers.EthernetTypeIPv6), ip6L(layers.IPProtocolTCP),
			tcpL(pa, tsOpts()...), gopacket.Payload(payload))},
		{"sll2-ipv4-tcp-ts", LinkLinuxSLL2, kernSLL2Data},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var p Packet
			if r := Parse(c.frame, c.link, &p); r != OK {
				b.Fatalf("Parse = %v", r)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			for b.Loop() {
				sinkReason = Parse(c.frame, c.link, &p)
			}
		})
		// What a replay's reader reads of each frame to deal it out.
		b.Run(c.name+"/endpoints", func(b *testing.B) {
			var p Packet
			for b.Loop() {
				sinkReason = Endpoints(c.frame, c.link, &p)
			}
		})
	}
}
