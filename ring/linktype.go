package ring

import (
	"strconv"

	"github.com/gopacket/gopacket/layers"
)

// String returns the link type's usual name, such as "Ethernet" or
// "Linux SLL2", or its number for a type without one.
func (l LinkType) String() string {
	if name := linkName(l); name != "" {
		return name
	}
	return "LinkType(" + strconv.Itoa(int(l)) + ")"
}

// supported reports whether replay accepts frames of link type l: exactly
// the LinkType constants of this package.
func (l LinkType) supported() bool {
	switch l {
	case LinkTypeNull, LinkTypeEthernet, LinkTypeRaw, LinkTypeLoop,
		LinkTypeLinuxSLL, LinkTypeIPv4, LinkTypeIPv6, LinkTypeLinuxSLL2:
		return true
	}
	return false
}

// linkNames names the link types of this package and the ones a capture
// file is most likely to hold instead (https://www.tcpdump.org/linktypes.html),
// so an unsupported file is rejected with a name a person recognises.
var linkNames = map[LinkType]string{
	LinkTypeNull:      "BSD loopback",
	LinkTypeEthernet:  "Ethernet",
	LinkTypeRaw:       "raw IP",
	LinkTypeLoop:      "OpenBSD loopback",
	LinkTypeLinuxSLL:  "Linux SLL",
	LinkTypeIPv4:      "raw IPv4",
	LinkTypeIPv6:      "raw IPv6",
	LinkTypeLinuxSLL2: "Linux SLL2",
	6:                 "IEEE 802.5 Token Ring",
	9:                 "PPP",
	10:                "FDDI",
	50:                "PPP in HDLC-like framing",
	51:                "PPPoE",
	104:               "Cisco HDLC",
	105:               "IEEE 802.11",
	107:               "Frame Relay",
	119:               "IEEE 802.11 with Prism header",
	127:               "IEEE 802.11 with radiotap header",
	163:               "IEEE 802.11 with AVS header",
	187:               "Bluetooth HCI H4",
	189:               "Linux USB",
	192:               "PPI",
	195:               "IEEE 802.15.4",
	201:               "Bluetooth HCI H4 with pseudo-header",
	220:               "Linux USB (memory-mapped)",
	227:               "SocketCAN",
	249:               "USBPcap",
	252:               "Wireshark upper PDU",
	253:               "Linux netlink",
	254:               "Bluetooth Linux monitor",
}

func linkName(l LinkType) string {
	if name, ok := linkNames[l]; ok {
		return name
	}
	if l >= 147 && l <= 162 {
		return "user-defined " + strconv.Itoa(int(l)-147)
	}
	// gopacket knows a few more; it says "UnknownLinkType" for the rest.
	if name := layers.LinkType(l).String(); name != "UnknownLinkType" {
		return name
	}
	return ""
}
