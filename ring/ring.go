// Package ring owns packet capture: the live TPACKET_V3 ring (a later
// change) and the replay of pcap/pcapng recordings. Both hand frames to
// workers in batches through Source. ring knows frames, capture timestamps,
// link types and drops; it knows nothing about IP or TCP, so the software
// fanout of replay asks its caller for the flow hash (ReplayConfig.Hash).
package ring

import "errors"

// LinkType is a pcap LINKTYPE_* number. It travels with every batch as a
// plain number, so the decoder needs no import of this package.
type LinkType uint16

// Link types the replay source accepts (https://www.tcpdump.org/linktypes.html).
const (
	LinkTypeNull      LinkType = 0   // BSD loopback: 4-byte host-order AF_ header
	LinkTypeEthernet  LinkType = 1   // Ethernet II, possibly VLAN-tagged
	LinkTypeRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkTypeLoop      LinkType = 108 // OpenBSD loopback: 4-byte network-order AF_ header
	LinkTypeLinuxSLL  LinkType = 113 // Linux cooked capture v1 (16-byte header)
	LinkTypeIPv4      LinkType = 228 // raw IPv4
	LinkTypeIPv6      LinkType = 229 // raw IPv6
	LinkTypeLinuxSLL2 LinkType = 276 // Linux cooked capture v2 (20-byte header), tcpdump -i any
)

// Batch is a caller-owned set of frame views filled by Source.NextBatch.
// The caller allocates it once with NewBatch and reuses it for the life of
// the source; NextBatch never grows it. Frames are views into the source's
// memory (an mmap'd block or a replay buffer): they stay valid until the
// next call to NextBatch or Close on the same source, and must not be kept.
type Batch struct {
	// Link is the link type of every frame in the batch.
	Link LinkType
	// Iface is the index of the interface (LiveConfig.Interfaces) every
	// frame of the batch came from; 0 in a replay.
	Iface int
	// N is the number of valid entries in Frames, TS and WireLen.
	N int
	// Frames[i] is the captured bytes of frame i (possibly snapped).
	Frames [][]byte
	// TS[i] is the capture time of frame i in nanoseconds since the epoch.
	TS []int64
	// WireLen[i] is the frame's length on the wire (>= len(Frames[i])).
	WireLen []int
	// VLAN[i] is the outer VLAN tag the capture took out of frame i, as
	// TPID<<16 | TCI, or 0 when it took none. A live ring on Ethernet gets
	// the tag beside the frame from the kernel and passes it on as it is:
	// putting it back into the frame would move the MAC addresses of every
	// tagged frame (AppendWire does that for whoever needs the bytes). The
	// tag is counted in WireLen but not in Frames[i]. Always 0 in a replay,
	// where a tag is part of the recorded frame.
	VLAN []uint32
	// Clock is the capture time the source has reached: no later frame
	// of this source is older. It lets an idle worker run its timers; a
	// batch may carry only a clock (N == 0). 0 when unknown.
	Clock int64
}

// DefaultBatchSize is the replay batch size and the capacity NewBatch
// gives when asked for 0. A TPACKET_V3 block rarely holds more frames.
const DefaultBatchSize = 256

// NewBatch returns a batch able to hold size frames (DefaultBatchSize if
// size <= 0).
func NewBatch(size int) *Batch {
	if size <= 0 {
		size = DefaultBatchSize
	}
	return &Batch{
		Frames:  make([][]byte, size),
		TS:      make([]int64, size),
		WireLen: make([]int, size),
		VLAN:    make([]uint32, size),
	}
}

// AppendWire appends frame i as it was on the wire to dst: on Ethernet
// with its outer VLAN tag back between the addresses and the EtherType,
// as libpcap writes it; otherwise as it is.
func (b *Batch) AppendWire(dst []byte, i int) []byte {
	f, tag := b.Frames[i], b.VLAN[i]
	if tag == 0 || b.Link != LinkTypeEthernet || len(f) < ethAddrsLen {
		return append(dst, f...)
	}
	dst = append(dst, f[:ethAddrsLen]...)
	dst = append(dst, byte(tag>>24), byte(tag>>16), byte(tag>>8), byte(tag))
	return append(dst, f[ethAddrsLen:]...)
}

// ethAddrsLen is the destination and source MAC addresses: an outer VLAN
// tag goes right after them.
const ethAddrsLen = 12

// LastTS is the capture time of the batch's last frame, 0 for an empty batch.
func (b *Batch) LastTS() int64 {
	if b.N == 0 {
		return 0
	}
	return b.TS[b.N-1]
}

// Source hands one worker its frames, a batch at a time.
type Source interface {
	// NextBatch fills b with the next frames, releasing the previous batch.
	// It blocks until frames are available. It returns io.EOF when a
	// replay is exhausted and ErrClosed after Close; b.N is 0 then.
	NextBatch(b *Batch) error
	// Close releases the source; a blocked NextBatch returns ErrClosed.
	Close() error
}

// HashFunc returns a flow hash of a frame that is the same for both
// directions of a connection (symmetric); replay uses it to spread frames
// over workers as the kernel's PACKET_FANOUT_HASH does. ok is false for a
// frame it cannot hash (not IP, truncated); such frames go to worker 0.
type HashFunc func(frame []byte, link LinkType) (hash uint64, ok bool)

var (
	// ErrClosed is returned by NextBatch after Close.
	ErrClosed = errors.New("ring: source closed")
	// ErrUnsupported is returned where the platform lacks a capture facility.
	ErrUnsupported = errors.New("ring: not supported on this platform")
)
