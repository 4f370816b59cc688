package ring

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// This file turns a pcap or pcapng stream into frames, one at a time, for
// the replay's reader goroutine. pcapgo reads the file headers and parses
// the pcapng blocks; a check of each record header in the read-ahead
// buffer runs first, so a corrupt length is reported with its record
// number and byte offset before pcapgo would read (or allocate) it, and a
// file cut short is told apart from a corrupt one. A pcap record, once
// checked, is simple enough to take from the read-ahead buffer here.

// MaxFrameLen is the longest frame replay accepts: libpcap's
// MAXIMUM_SNAPLEN. A record header claiming more is corrupt.
const MaxFrameLen = 262144

const (
	// readWindow is the read-ahead buffer; record headers are checked in
	// it, so it must hold a whole record of MaxFrameLen and then some.
	readWindow = 1 << 20
	// maxBlockLen bounds a pcapng block of any type; a longer one is
	// corrupt (it would otherwise be skipped to the end of the file).
	maxBlockLen = 16 << 20

	pcapHeaderLen   = 24
	pcapRecordLen   = 16
	magicMicros     = 0xa1b2c3d4
	magicNanos      = 0xa1b23c4d
	magicKuznetzov  = 0xa1b2cd34
	ngSectionHeader = 0x0a0d0d0a
	ngByteOrder     = 0x1a2b3c4d

	ngBlockIDB = 1
	ngBlockPB  = 2 // obsolete Packet Block
	ngBlockSPB = 3
	ngBlockEPB = 6
	ngBlockDSB = 0x0a
)

var (
	// ErrNotCapture means the input is not a pcap or pcapng file: it is
	// empty, its first bytes are no known magic, or its file header is
	// cut short or of an unknown version. The error text says which.
	ErrNotCapture = errors.New("ring: not a pcap or pcapng file")
	// ErrUnsupportedLink means the capture holds frames of a link type
	// other than the LinkType constants (see UnsupportedLinkError).
	ErrUnsupportedLink = errors.New("ring: unsupported link type")
	// ErrCorrupt means a record in the middle of the file is damaged; it
	// comes wrapped in a RecordError that says which record.
	ErrCorrupt = errors.New("ring: corrupt capture file")
)

// UnsupportedLinkError names a link type replay does not accept. It
// matches ErrUnsupportedLink with errors.Is.
type UnsupportedLinkError struct {
	Link LinkType
}

func (e *UnsupportedLinkError) Error() string {
	if name := linkName(e.Link); name != "" {
		return "ring: unsupported link type " + strconv.Itoa(int(e.Link)) + " (" + name + ")"
	}
	return "ring: unsupported link type " + strconv.Itoa(int(e.Link))
}

// Is makes errors.Is(err, ErrUnsupportedLink) true.
func (e *UnsupportedLinkError) Is(target error) bool { return target == ErrUnsupportedLink }

// RecordError reports why reading stopped at a record in the middle of a
// capture. Every frame before that record has been delivered. Err wraps
// ErrCorrupt for a damaged record, ErrUnsupportedLink for a frame of an
// unsupported link type, or the reader's own error.
type RecordError struct {
	// Record is the 1-based number of the packet record that could not
	// be read (the number of frames read before it, plus one).
	Record int64
	// Offset is the record's byte offset in the capture stream (after
	// gzip decompression, for a .gz file). For pcapng it is the packet
	// block's offset when the check found the damage, otherwise the
	// offset of the first block of the failed read.
	Offset int64
	// Err is what is wrong.
	Err error
}

func (e *RecordError) Error() string {
	return "ring: packet record " + strconv.FormatInt(e.Record, 10) +
		" at byte offset " + strconv.FormatInt(e.Offset, 10) + ": " +
		strings.TrimPrefix(e.Err.Error(), "ring: ")
}

func (e *RecordError) Unwrap() error { return e.Err }

// countingReader counts the bytes read through it and keeps the first
// error other than io.EOF, so a failed read can be told apart from bad
// file contents.
type countingReader struct {
	r   io.Reader
	n   atomic.Int64
	err error // only the replay's reader goroutine touches it
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && !isEOF(err) && c.err == nil {
		c.err = err
	}
	return n, err
}

// isEOF reports whether err means the stream ended (an io.ErrUnexpectedEOF
// comes from a gzip stream cut short).
func isEOF(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

type captureFormat uint8

const (
	formatPcap captureFormat = iota + 1
	formatPcapng
)

// capReader reads frames from a capture stream. It is used by one
// goroutine at a time: OpenReplay, then the replay's reader goroutine.
type capReader struct {
	format captureFormat
	file   *countingReader // the caller's io.Reader
	stream *countingReader // what br reads: file, or its gzip decompression
	br     *bufio.Reader   // shared with pcapgo, which reads through it
	order  binary.ByteOrder

	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
	// fracNanos turns a pcap record's fraction of a second into
	// nanoseconds: 1 or 1000, as the file's magic says.
	fracNanos uint32

	link  LinkType // pcap: the file's; pcapng: the first interface's
	mixed bool     // pcapng with interfaces of differing link types

	records   int64 // packet records read
	truncated bool  // the stream ended inside a record

	// mem is the whole file when it is held in memory (InMemory) and not
	// compressed: pcap records are then read where they lie, and their
	// frames handed on without a copy; memOff is the next record's.
	mem    []byte
	memOff int
}

// memCapture is a capture held in memory (InMemory).
type memCapture struct {
	*bytes.Reader
	data []byte
}

// InMemory returns a reader of a capture held in memory, for OpenReplay.
// A replay of it hands the frames of a pcap file to the workers where
// they lie in data, without copying them into batches, and reads no
// record through a read-ahead buffer: the reader goroutine only walks the
// record headers. data must not change until the replay is done.
func InMemory(data []byte) io.Reader { return &memCapture{bytes.NewReader(data), data} }

// openCapture detects the format from the magic and reads the file header.
func openCapture(r io.Reader) (*capReader, error) {
	c := &capReader{file: &countingReader{r: r}}
	c.stream = c.file
	c.br = bufio.NewReaderSize(c.file, readWindow)
	head, err := c.br.Peek(4)
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		// gzip, as pcapgo reads it too; the magic lies inside.
		zr, zerr := gzip.NewReader(c.br)
		if zerr != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrNotCapture, zerr)
		}
		c.stream = &countingReader{r: zr}
		c.br = bufio.NewReaderSize(c.stream, readWindow)
		head, err = c.br.Peek(4)
	}
	if len(head) < 4 {
		if err != nil && !isEOF(err) {
			return nil, fmt.Errorf("ring: reading capture header: %w", err)
		}
		if len(head) == 0 {
			return nil, fmt.Errorf("%w: the file is empty", ErrNotCapture)
		}
		return nil, fmt.Errorf("%w: only %d bytes long", ErrNotCapture, len(head))
	}
	le, be := binary.LittleEndian.Uint32(head), binary.BigEndian.Uint32(head)
	switch {
	case le == magicMicros || le == magicNanos:
		c.order = binary.LittleEndian
		return c, c.openPcap(r)
	case be == magicMicros || be == magicNanos:
		c.order = binary.BigEndian
		return c, c.openPcap(r)
	case le == ngSectionHeader:
		return c, c.openPcapng()
	}
	return nil, fmt.Errorf("%w: %s", ErrNotCapture, describeMagic(c.br))
}

// describeMagic says what the first bytes of a non-capture look like.
func describeMagic(br *bufio.Reader) string {
	head, _ := br.Peek(8)
	if m := binary.LittleEndian.Uint32(head); m == magicKuznetzov || binary.BigEndian.Uint32(head) == magicKuznetzov {
		return "modified (Kuznetzov) pcap format is not supported; convert it with editcap -F pcap"
	}
	if string(head) == "snoop\x00\x00\x00" {
		return "snoop format is not supported; convert it with editcap -F pcap"
	}
	var sb strings.Builder
	sb.WriteString("it starts with")
	for _, b := range head {
		fmt.Fprintf(&sb, " %02x", b)
	}
	text := true
	for _, b := range head {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' || b >= 0x7f {
			text = false
		}
	}
	if text {
		fmt.Fprintf(&sb, " (%q, text)", head)
	}
	return sb.String()
}

func (c *capReader) openPcap(r io.Reader) error {
	c.format = formatPcap
	hdr, err := c.br.Peek(pcapHeaderLen)
	if len(hdr) < pcapHeaderLen {
		if err != nil && !isEOF(err) {
			return fmt.Errorf("ring: reading pcap file header: %w", err)
		}
		return fmt.Errorf("%w: pcap file header cut short (%d of %d bytes)", ErrNotCapture, len(hdr), pcapHeaderLen)
	}
	c.fracNanos = 1000
	if m := c.order.Uint32(hdr[0:4]); m == magicNanos {
		c.fracNanos = 1
	}
	// The link type field's upper bits carry FCS information.
	c.link = LinkType(c.order.Uint32(hdr[20:24]))
	if !c.link.supported() {
		return &UnsupportedLinkError{Link: c.link}
	}
	// pcapgo reads through br itself: bufio.NewReader returns a
	// *bufio.Reader at least 4 KiB large unchanged.
	c.pcap, err = pcapgo.NewReader(c.br)
	if err != nil {
		return fmt.Errorf("%w: pcap file header: %v", ErrNotCapture, err)
	}
	if m, ok := r.(*memCapture); ok && c.stream == c.file {
		c.mem, c.memOff = m.data, int(c.pos())
	}
	return nil
}

func (c *capReader) openPcapng() error {
	c.format = formatPcapng
	hdr, err := c.br.Peek(12)
	if len(hdr) < 12 {
		if err != nil && !isEOF(err) {
			return fmt.Errorf("ring: reading pcapng section header: %w", err)
		}
		return fmt.Errorf("%w: pcapng section header cut short (%d bytes)", ErrNotCapture, len(hdr))
	}
	switch {
	case binary.LittleEndian.Uint32(hdr[8:]) == ngByteOrder:
		c.order = binary.LittleEndian
	case binary.BigEndian.Uint32(hdr[8:]) == ngByteOrder:
		c.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: pcapng section header without byte-order magic", ErrNotCapture)
	}

	// Look at the interfaces described before the first packet. pcapgo
	// replays mixed link types only by boxing each packet's link type in
	// an interface value, which allocates for types >= 256 (SLL2); a file
	// with one link type is read without that.
	links, state, err := c.prescan()
	if err != nil {
		return err
	}
	if len(links) > 0 {
		c.link = links[0]
	}
	for _, l := range links {
		if !l.supported() {
			return &UnsupportedLinkError{Link: l}
		}
		if l != c.link {
			c.mixed = true
		}
	}
	opts := pcapgo.NgReaderOptions{SkipUnknownVersion: true}
	if c.mixed || len(links) == 0 || state != walkPacket && state != walkEOF {
		// Mixed, or unknown: a section whose interfaces come late, or a
		// file cut short before its first packet.
		opts.WantMixedLinkType = true
	} else {
		// A later interface of another link type stops the replay
		// with a clear error rather than being skipped silently.
		opts.ErrorOnMismatchingLinkType = true
	}
	c.ng, err = pcapgo.NewNgReader(c.br, opts)
	if err != nil {
		return fmt.Errorf("%w: pcapng: %v", ErrNotCapture, err)
	}
	return nil
}

// pos is the stream offset of pcapgo's next read.
func (c *capReader) pos() int64 { return c.stream.n.Load() - int64(c.br.Buffered()) }

// next returns the next frame: its bytes (valid until the next call), its
// capture time in nanoseconds, its length on the wire and its link type.
// err is io.EOF at the end of the capture, with c.truncated set if the
// last record was cut short, and a *RecordError otherwise.
func (c *capReader) next() (data []byte, ts int64, wire int, link LinkType, err error) {
	if c.format == formatPcap {
		data, ts, wire, err = c.nextPcap()
		return data, ts, wire, c.link, err
	}
	return c.nextPcapng()
}

func (c *capReader) recordError(off int64, err error) error {
	return &RecordError{Record: c.records + 1, Offset: off, Err: err}
}

func (c *capReader) corrupt(off int64, format string, args ...any) error {
	return c.recordError(off, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...))
}

// peekFailed turns a short Peek into the end of the capture (clean when
// nothing is left, truncated otherwise) or a read error.
func (c *capReader) peekFailed(off int64, got, start int, err error) error {
	if err == nil || isEOF(err) {
		if got > start {
			c.truncated = true
		}
		return io.EOF
	}
	return c.recordError(off, err)
}

func (c *capReader) nextPcap() (data []byte, ts int64, wire int, err error) {
	if c.mem != nil {
		return c.nextPcapMem()
	}
	off := c.pos()
	hdr, err := c.br.Peek(pcapRecordLen)
	if len(hdr) < pcapRecordLen {
		return nil, 0, 0, c.peekFailed(off, len(hdr), 0, err)
	}
	n, wirelen, err := c.pcapRecord(hdr, off)
	if err != nil {
		return nil, 0, 0, err
	}
	rec, err := c.br.Peek(n)
	if len(rec) < n {
		return nil, 0, 0, c.peekFailed(off, len(rec), 0, err)
	}
	// The whole record is checked and buffered: take the frame from the
	// read-ahead buffer, where it stays until the next read, rather than
	// have pcapgo copy it (the reader goroutine's largest cost).
	_, _ = c.br.Discard(n) // buffered: cannot fail
	c.records++
	return rec[pcapRecordLen:n:n], c.pcapTime(rec), wirelen, nil
}

// pcapRecord checks the lengths in the record header hdr, at file offset
// off, and returns the whole record's length and the frame's on the wire.
func (c *capReader) pcapRecord(hdr []byte, off int64) (n, wire int, err error) {
	caplen := c.order.Uint32(hdr[8:12])
	wirelen := c.order.Uint32(hdr[12:16])
	if caplen > MaxFrameLen {
		return 0, 0, c.corrupt(off, "capture length %d exceeds the %d-byte maximum", caplen, MaxFrameLen)
	}
	if caplen > wirelen {
		return 0, 0, c.corrupt(off, "capture length %d exceeds the original length %d", caplen, wirelen)
	}
	return pcapRecordLen + int(caplen), int(wirelen), nil
}

// pcapTime is the capture time in the record header hdr, in nanoseconds.
func (c *capReader) pcapTime(hdr []byte) int64 {
	sec, frac := c.order.Uint32(hdr[0:4]), c.order.Uint32(hdr[4:8])*c.fracNanos
	return int64(sec)*1e9 + int64(frac)
}

// nextPcapMem is nextPcap for a file in memory: the frame returned lies
// in the file's bytes.
func (c *capReader) nextPcapMem() (data []byte, ts int64, wire int, err error) {
	off := c.memOff
	rec := c.mem[off:]
	if len(rec) < pcapRecordLen {
		c.truncated = len(rec) > 0
		return nil, 0, 0, io.EOF
	}
	n, wirelen, err := c.pcapRecord(rec, int64(off))
	if err != nil {
		return nil, 0, 0, err
	}
	if len(rec) < n {
		c.truncated = true
		return nil, 0, 0, io.EOF
	}
	c.memOff += n
	c.records++
	return rec[pcapRecordLen:n:n], c.pcapTime(rec), wirelen, nil
}

// walkState is what a look at the blocks ahead found.
type walkState uint8

const (
	walkPacket    walkState = iota + 1 // a whole, sane packet block
	walkEOF                            // the stream ends at a block boundary
	walkTruncated                      // the stream ends inside a block
	walkBlind                          // blocks too large for the window; not checked
)

type walkResult struct {
	state  walkState
	pktOff int64 // offset of the packet block (walkPacket)
	end    int64 // offset just past it (walkPacket)
}

// block returns the pcapng block at window offset o (relative to pcapgo's
// position base), whole, after checking its length. A section header
// sets the byte order of what follows, as it does for pcapgo.
func (c *capReader) block(base int64, o int) (b []byte, typ uint32, state walkState, err error) {
	if o+12 > readWindow {
		// The blocks checked so far fill the window: the header of
		// this one lies beyond it (Peek would fail with
		// bufio.ErrBufferFull), so it cannot be checked ahead either.
		return nil, 0, walkBlind, nil
	}
	head, perr := c.br.Peek(o + 12)
	if len(head) < o+8 {
		if perr == nil || isEOF(perr) {
			if len(head) == o {
				return nil, 0, walkEOF, nil
			}
			return nil, 0, walkTruncated, nil
		}
		return nil, 0, 0, c.recordError(base+int64(o), perr)
	}
	typ = c.order.Uint32(head[o:])
	if typ == ngSectionHeader {
		if len(head) < o+12 {
			return nil, 0, walkTruncated, nil
		}
		switch {
		case binary.LittleEndian.Uint32(head[o+8:]) == ngByteOrder:
			c.order = binary.LittleEndian
		case binary.BigEndian.Uint32(head[o+8:]) == ngByteOrder:
			c.order = binary.BigEndian
		default:
			return nil, 0, 0, c.corrupt(base+int64(o), "pcapng section header without byte-order magic")
		}
	}
	blen := c.order.Uint32(head[o+4:])
	minLen := uint32(12)
	switch typ {
	case ngSectionHeader:
		minLen = 28
	case ngBlockIDB, ngBlockDSB:
		minLen = 20
	case ngBlockSPB:
		minLen = 16
	case ngBlockEPB, ngBlockPB:
		minLen = 32
	}
	if blen < minLen || blen > maxBlockLen {
		return nil, 0, 0, c.corrupt(base+int64(o), "pcapng block of type %#x claims a length of %d bytes", typ, blen)
	}
	if o+int(blen) > readWindow {
		return nil, typ, walkBlind, nil
	}
	b, perr = c.br.Peek(o + int(blen))
	if len(b) < o+int(blen) {
		if perr == nil || isEOF(perr) {
			return nil, 0, walkTruncated, nil
		}
		return nil, 0, 0, c.recordError(base+int64(o), perr)
	}
	return b[o:], typ, 0, nil
}

// prescan collects the link types of the interfaces described before the
// first packet block.
func (c *capReader) prescan() (links []LinkType, state walkState, err error) {
	for o := 0; ; {
		b, typ, st, err := c.block(0, o)
		if err != nil {
			return nil, 0, err
		}
		if st != 0 {
			if o == 0 && st != walkBlind {
				// Not even the section header is whole.
				return nil, 0, fmt.Errorf("%w: pcapng section header cut short", ErrNotCapture)
			}
			return links, st, nil
		}
		switch typ {
		case ngBlockIDB:
			links = append(links, LinkType(c.order.Uint16(b[8:])))
		case ngBlockEPB, ngBlockPB, ngBlockSPB:
			return links, walkPacket, nil
		}
		o += len(b)
	}
}

// walk checks the blocks from pcapgo's position up to and including the
// next packet block, so that pcapgo reads nothing whose lengths lie.
func (c *capReader) walk() (walkResult, error) {
	base := c.pos()
	snap := int64(-2) // snap length of interface 0: -2 ask pcapgo, -1 none yet
	if c.ng.NInterfaces() == 0 {
		snap = -1
	}
	for o := 0; ; {
		b, typ, st, err := c.block(base, o)
		if err != nil || st != 0 {
			return walkResult{state: st}, err
		}
		off := base + int64(o)
		switch typ {
		case ngSectionHeader:
			snap = -1
		case ngBlockIDB:
			if snap == -1 {
				snap = int64(c.order.Uint32(b[12:]))
			}
		case ngBlockDSB:
			if n := c.order.Uint32(b[12:]); n > uint32(len(b))-20 {
				return walkResult{}, c.corrupt(off, "pcapng decryption secrets of %d bytes overrun a block of %d", n, len(b))
			}
		case ngBlockEPB, ngBlockPB:
			caplen, wirelen := c.order.Uint32(b[20:]), c.order.Uint32(b[24:])
			if caplen > MaxFrameLen {
				return walkResult{}, c.corrupt(off, "capture length %d exceeds the %d-byte maximum", caplen, MaxFrameLen)
			}
			if caplen > uint32(len(b))-32 {
				return walkResult{}, c.corrupt(off, "capture length %d overruns a packet block of %d bytes", caplen, len(b))
			}
			if caplen > wirelen {
				return walkResult{}, c.corrupt(off, "capture length %d exceeds the original length %d", caplen, wirelen)
			}
			return walkResult{state: walkPacket, pktOff: off, end: off + int64(len(b))}, nil
		case ngBlockSPB:
			caplen := int64(c.order.Uint32(b[8:]))
			if snap == -2 {
				i, _ := c.ng.Interface(0)
				snap = int64(i.SnapLength)
			}
			if snap > 0 && caplen > snap {
				caplen = snap
			}
			if caplen > MaxFrameLen {
				return walkResult{}, c.corrupt(off, "capture length %d exceeds the %d-byte maximum", caplen, MaxFrameLen)
			}
			if caplen > int64(len(b))-16 {
				return walkResult{}, c.corrupt(off, "capture length %d overruns a simple packet block of %d bytes", caplen, len(b))
			}
			return walkResult{state: walkPacket, pktOff: off, end: off + int64(len(b))}, nil
		}
		o += len(b)
	}
}

func (c *capReader) nextPcapng() (data []byte, ts int64, wire int, link LinkType, err error) {
	w, err := c.walk()
	switch {
	case err != nil:
		return nil, 0, 0, 0, err
	case w.state == walkEOF:
		return nil, 0, 0, 0, io.EOF
	case w.state == walkTruncated:
		c.truncated = true
		return nil, 0, 0, 0, io.EOF
	}
	off := c.pos()
	data, ci, err := c.ng.ZeroCopyReadPacketData()
	if err != nil {
		return nil, 0, 0, 0, c.ngFailed(w, off, err)
	}
	if w.state == walkPacket && c.pos() != w.end {
		return nil, 0, 0, 0, c.corrupt(w.pktOff, "pcapng block contents overrun its length")
	}
	if len(data) > MaxFrameLen {
		return nil, 0, 0, 0, c.corrupt(off, "capture length %d exceeds the %d-byte maximum", len(data), MaxFrameLen)
	}
	if len(data) > ci.Length {
		return nil, 0, 0, 0, c.corrupt(off, "capture length %d exceeds the original length %d", len(data), ci.Length)
	}
	link = c.link
	if len(ci.AncillaryData) > 0 { // WantMixedLinkType
		lt, ok := ci.AncillaryData[0].(layers.LinkType)
		if !ok {
			return nil, 0, 0, 0, c.corrupt(off, "pcapgo gave no link type")
		}
		if link = LinkType(lt); !link.supported() {
			return nil, 0, 0, 0, c.recordError(off, &UnsupportedLinkError{Link: link})
		}
	}
	if !ci.Timestamp.IsZero() { // a simple packet block has no time
		ts = ci.Timestamp.UnixNano()
	}
	c.records++
	return data, ts, ci.Length, link, nil
}

// ngFailed classifies an error from pcapgo.
func (c *capReader) ngFailed(w walkResult, off int64, err error) error {
	if errors.Is(err, pcapgo.ErrNgLinkTypeMismatch) {
		return c.recordError(off, fmt.Errorf("%w: a pcapng interface declared after the first packet has a link type other than %d (%s); "+
			"a file that mixes link types must declare all interfaces before its first packet", ErrUnsupportedLink, c.link, c.link))
	}
	if w.state == walkPacket {
		// Every byte pcapgo needed was checked and buffered: the
		// blocks themselves are wrong.
		return c.corrupt(off, "%v", err)
	}
	// The blocks ahead were too large to check (walkBlind).
	switch {
	case c.stream.err != nil:
		return c.recordError(off, c.stream.err)
	case err == io.EOF:
		return io.EOF
	case err == io.ErrUnexpectedEOF:
		c.truncated = true
		return io.EOF
	}
	return c.corrupt(off, "%v", err)
}
