package ring

import (
	"time"
)

// LiveConfig configures a live capture: one TPACKET_V3 socket per
// (interface, worker), every interface's sockets in one fanout group.
// The zero value of a size means its default.
type LiveConfig struct {
	// Interfaces to capture on (at least one).
	Interfaces []string
	// Workers is the number of sources; socket i of every interface
	// feeds source i.
	Workers int
	// BlockSize is the size of one ring block in bytes: a power of two,
	// at least the page size (default 1 MiB). A block is the unit the
	// kernel hands over and a worker walks as one batch.
	BlockSize int
	// Blocks is the number of blocks per socket (default 32).
	Blocks int
	// FrameSize is tp_frame_size (default 2048). TPACKET_V3 packs frames
	// of any length into a block, so it only sets tp_frame_nr.
	FrameSize int
	// RetireTimeout is how long the kernel keeps a partly filled block
	// before handing it over (default 50 ms); an idle worker advances its
	// clock at this pace. On a slow link every block carries a few
	// packets, so Blocks x RetireTimeout is how long a worker may stall
	// before the kernel drops: 32 x 50 ms = 1.6 s by default. Events wait
	// a second for the workers' clocks anyway, so a shorter timeout buys
	// no latency worth having.
	RetireTimeout time.Duration
	// Snaplen is how many bytes of each frame the kernel copies into the
	// ring (default DefaultSnaplen; MaxFrameLen for whole frames). The
	// sensor reads headers only and takes lengths from the IP header, so
	// a short snap costs nothing in analysis, while it keeps the kernel's
	// copy small and lets the ring hold more packets of full-size traffic
	// (a 1,514-byte frame takes about 1,600 bytes of ring whole, 340
	// snapped), which is what carries a worker through a stall.
	Snaplen int
	// Filter is a capture filter in tcpdump syntax (pcap-filter(7)),
	// compiled by ring/filter for each interface's link type and attached
	// to every socket before it is bound, so nothing it rejects is ever
	// captured ("": everything).
	Filter string
	// NoPromisc leaves promiscuous mode off (it is turned on for every
	// interface that is not loopback).
	NoPromisc bool
	// Netns, when set, is the path of a network namespace to capture in
	// (/var/run/netns/NAME); the sockets are created there.
	Netns string
}

// Defaults of LiveConfig.
const (
	DefaultBlockSize     = 1 << 20
	DefaultBlocks        = 32
	DefaultFrameSize     = 2048
	DefaultRetireTimeout = 50 * time.Millisecond
	// DefaultSnaplen holds every header the decoder reads: Ethernet with
	// two inner VLAN tags (22), IPv4 with options (60) or IPv6 with 74
	// bytes of extension headers (114), and TCP with options (60).
	DefaultSnaplen = 256
	// MinSnaplen is Ethernet, one VLAN tag, IPv4 and TCP without options.
	MinSnaplen = 58
)

func (c *LiveConfig) defaults() {
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.BlockSize <= 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.Blocks <= 0 {
		c.Blocks = DefaultBlocks
	}
	if c.FrameSize <= 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.RetireTimeout <= 0 {
		c.RetireTimeout = DefaultRetireTimeout
	}
	if c.Snaplen <= 0 {
		c.Snaplen = DefaultSnaplen
	}
}

// MemoryBytes is the ring memory the configuration maps in total.
func (c LiveConfig) MemoryBytes() int64 {
	c.defaults()
	return int64(c.BlockSize) * int64(c.Blocks) * int64(c.Workers) * int64(len(c.Interfaces))
}

// Interface describes one capture interface of a Live.
type Interface struct {
	Name     string
	Index    int
	Link     LinkType
	Loopback bool
	// FilterLen is the length of the interface's filter program in
	// instructions (0 without a filter).
	FilterLen int
	// Offloads lists the receive/transmit offloads that coalesce
	// segments into giant frames and are on (gro, lro, tso, gso), as read
	// at start; empty when none or unknown.
	Offloads []string
}

// IfaceStats counts one interface's capture, summed over its sockets.
type IfaceStats struct {
	// Kernel counters (PACKET_STATISTICS): Packets includes Drops.
	Packets uint64
	Drops   uint64 // no room in the ring: the workers fell behind
	Freezes uint64 // times the ring was full (queue frozen)
	// Frames handed to workers, and those of them that the kernel marked
	// TP_STATUS_LOSING (a drop happened since the last statistics read).
	Frames uint64
	Losing uint64
	// CsumNotReady counts locally generated frames whose checksum the
	// NIC had not yet filled (TP_STATUS_CSUMNOTREADY): not bad checksums.
	CsumNotReady uint64
	// Errors counts socket errors reported by poll (e.g. the interface
	// went down).
	Errors uint64
	// NetDown counts those of Errors that were ENETDOWN: the interface
	// went down (one per socket each time).
	NetDown uint64
}

// Add adds o to s.
func (s *IfaceStats) Add(o IfaceStats) {
	s.Packets += o.Packets
	s.Drops += o.Drops
	s.Freezes += o.Freezes
	s.Frames += o.Frames
	s.Losing += o.Losing
	s.CsumNotReady += o.CsumNotReady
	s.Errors += o.Errors
	s.NetDown += o.NetDown
}
