// Package decode parses a captured frame down to its TCP segment without
// allocating or copying: Parse fills a caller-owned Packet with values read
// from the frame (Payload is the only view into it). Anything it cannot
// use is reported as a Reason, counted by the caller, never a panic or an
// error value.
package decode

// Link types understood by Parse (pcap LINKTYPE_* numbers; the same values
// as ring.LinkType, repeated here so neither package imports the other).
const (
	LinkNull      = 0
	LinkEthernet  = 1
	LinkRaw       = 101
	LinkLoop      = 108
	LinkLinuxSLL  = 113
	LinkIPv4      = 228
	LinkIPv6      = 229
	LinkLinuxSLL2 = 276
)

// TCP flag bits as in the TCP header's flags byte.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80
)

// Option presence bits in Packet.Opts.
const (
	OptMSS       = 1 << iota // MSS is valid
	OptWScale                // WScale is valid
	OptSACKPerm              // SACK permitted seen
	OptSACK                  // SACK blocks present (NSACK of them kept)
	OptTimestamp             // TSval/TSecr are valid
	// OptMalformed: an option had length 0/1 or ran past the header. As
	// the kernel does (tcp_parse_options), parsing stops there and the
	// segment is still used; the caller counts it.
	OptMalformed
)

// MaxVLAN is how many VLAN tags (802.1Q / 802.1ad) Packet keeps; deeper
// stacks are decoded through but only the outer MaxVLAN ids are kept.
const MaxVLAN = 2

// MaxSACK is how many SACK blocks Packet keeps (a TCP header holds <= 4).
const MaxSACK = 4

// Packet is the decoded view of one TCP segment. The zero value is an
// empty packet; Parse overwrites every field it reports.
type Packet struct {
	// L2
	NVLAN int             // VLAN tags seen (may exceed MaxVLAN)
	VLAN  [MaxVLAN]uint16 // VLAN ids, outermost first (12-bit VID)

	// Iface is the capture interface's index; Parse sets 0 and the
	// caller, which knows the source, sets the rest.
	Iface uint8

	// L3
	Family   uint8    // 4 or 6
	Src, Dst [16]byte // IPv4 in the first 4 bytes, rest zero
	TTL      uint8    // IPv4 TTL or IPv6 hop limit
	IPID     uint16   // IPv4 identification (0 for IPv6)
	IPLen    int      // IP total length from the header (IPv6: 40 + payload length); the captured length if the header says 0 (TSO, BIG TCP, jumbogram)

	// L4
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8 // Flag* bits
	Window           uint16
	Urgent           uint16
	Checksum         uint16
	HdrLen           int // TCP header length incl. options (data offset * 4)

	// PayloadLen is the TCP payload length on the wire, computed from the
	// IP length fields, so it is right even when the capture snapped the
	// frame. Payload is what was captured of it (a view into the frame,
	// its capacity capped at its length).
	PayloadLen int
	Payload    []byte

	// Options (valid when the matching Opt* bit is set in Opts).
	Opts         uint8
	MSS          uint16
	WScale       uint8
	TSval, TSecr uint32
	NSACK        int
	SACK         [MaxSACK][2]uint32 // left, right edges

	portsOnly bool // Endpoints: stop after the TCP ports
}

// Has reports whether all the given Flag* bits are set.
func (p *Packet) Has(flags uint8) bool { return p.Flags&flags == flags }

// Reason says why a frame was not decoded to a TCP segment. OK is zero.
type Reason uint8

// Reasons, stable names in reasonNames (they appear in summaries/metrics).
const (
	OK               Reason = iota
	BadLinkType             // link type not decoded
	TruncatedL2             // frame shorter than its link header or VLAN tag
	NotIP                   // ARP, LLDP, ... (counted, not an error)
	TruncatedIP             // shorter than the IP header or its IHL / payload length
	BadIPVersion            // version nibble does not match the link's claim
	BadIPHeader             // IHL < 5, total length < header length
	IPFragment              // a non-first IPv4 fragment or non-first IPv6 fragment: no TCP header
	BadIPv6ExtHeader        // extension header chain too long or past the end
	NotTCP                  // UDP, ICMP, ... (counted, not an error)
	TruncatedTCP            // shorter than 20 bytes or its data offset
	BadTCPHeader            // data offset < 5 or past the IP payload
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:               "ok",
	BadLinkType:      "bad_link_type",
	TruncatedL2:      "truncated_l2",
	NotIP:            "not_ip",
	TruncatedIP:      "truncated_ip",
	BadIPVersion:     "bad_ip_version",
	BadIPHeader:      "bad_ip_header",
	IPFragment:       "ip_fragment",
	BadIPv6ExtHeader: "bad_ipv6_ext_header",
	NotTCP:           "not_tcp",
	TruncatedTCP:     "truncated_tcp",
	BadTCPHeader:     "bad_tcp_header",
}

// String returns the stable snake_case name of the reason.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
