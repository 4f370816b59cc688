package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpsentry/tcpsentry/ring/filter"
)

// Replay plays a pcap or pcapng recording through the same Source
// interface as a live ring, spread over workers by a software fanout.
//
// One reader goroutine reads the file, asks ReplayConfig.Hash where each
// frame goes, copies the frame once into that worker's current buffer and
// hands full buffers over a channel. Each worker has replayBuffers
// buffers that go round between the reader and the worker's Source, so a
// steady replay allocates nothing. The reader starts with the first
// NextBatch on any source and ends at the end of the file, at an error
// (see Err), or when every source is closed.
//
// The reader waits for a worker that has no free buffer, so every source
// must be consumed concurrently, or closed: the frames of a closed source
// are dropped (ReplayStats.Dropped) and the others go on.
type Replay struct {
	rd        *capReader
	hash      HashFunc
	batchSize int
	arenaSize int
	srcs      []*replaySource
	// byRef: frames are handed on where they lie in the file in memory
	// (InMemory) rather than copied into the buffers' arenas. Only with
	// more than one worker: the reader has then read each frame's headers
	// to deal it out, and copying it was a third of the reader's time on
	// the CPU the workers share. With one, the copy costs a CPU the worker
	// does not use, and the worker found its frames in a cache more often
	// (the same replay took 1.1 times as long without it, median of 8
	// alternating runs).
	byRef bool
	// filter is ReplayConfig.Filter; prog is its program for the link
	// type progLink, progs every link type's met so far.
	filter   string
	prog     *filter.Program
	progLink LinkType
	progs    map[LinkType]*filter.Program

	startOnce sync.Once
	mu        sync.Mutex // guards closed, err and the start of the reader
	closed    bool
	err       error
	wg        sync.WaitGroup
	stop      chan struct{} // closed when the last source closes
	stopOnce  sync.Once
	open      atomic.Int32 // sources not yet closed

	// The reader's counts, published to st after each batch.
	packets, bytes, dropped, filtered uint64
	firstTS, lastTS                   int64
	nextBeat                          int64 // capture time of the next beat
	st                                struct {
		packets, bytes, dropped, filtered atomic.Uint64
		firstTS, lastTS                   atomic.Int64
		memOff                            atomic.Int64 // rd.memOff, for a file in memory
		truncated, done                   atomic.Bool
	}
}

// ReplayConfig configures OpenReplay. The zero value replays to one
// worker in batches of DefaultBatchSize.
type ReplayConfig struct {
	// Workers is the number of sources, one per worker; <= 0 means 1.
	Workers int
	// Hash is the symmetric flow hash that picks a frame's worker from
	// the high 32 bits of its hash (the flow table uses the low bits).
	// Frames it cannot hash, and every frame when Hash is nil, go to
	// worker 0. It is called from the reader goroutine only, and not at
	// all with one worker.
	Hash HashFunc
	// BatchSize is the most frames per batch; <= 0 means
	// DefaultBatchSize. A batch also ends where the link type changes
	// (a pcapng file may mix them) and when its buffer is full.
	BatchSize int
	// Filter is a capture filter in tcpdump syntax (ring/filter), run by
	// the reader over each frame as tcpdump -r runs it: the frames it
	// rejects go to no worker (ReplayStats.Filtered). "" keeps every
	// frame.
	Filter string
}

const (
	// replayBuffers is the number of batch buffers per worker: one
	// being filled, one being consumed, the rest in flight. The reader
	// is far faster than a worker, so it is usually parked waiting for a
	// free buffer, and the worker's freeing it queues the reader on the
	// worker's own P: while the other P is busy (the correlator, an
	// embedded NATS broker), the reader runs only once the worker has
	// emptied every full buffer and parked. The full buffers are the
	// worker's slack for that: with 4 (about 1 ms of packets) a 1-worker
	// replay waited for the reader 6% of its time with events discarded
	// and 12% with them going to an embedded JetStream; with 32, under
	// 1% and about 2% (bench/events, 2656878 packets, 10% of
	// connections refused).
	replayBuffers = 32
	// frameBudget sizes a buffer's arena: BatchSize frames of this
	// many bytes fit, longer frames end the batch early.
	frameBudget = 2048
	minArena    = 64 << 10
	maxArena    = 8 << 20
)

// ReplayStats counts the reader's progress. It is safe to read from any
// goroutine while the replay runs; counts are updated after every batch.
type ReplayStats struct {
	// Packets is the number of frames read from the file.
	Packets uint64
	// Bytes is their captured length in total.
	Bytes uint64
	// FileBytes is the number of bytes read from the io.Reader (the
	// compressed bytes for a .gz file), read-ahead included.
	FileBytes int64
	// Dropped is the number of frames read for a worker after its
	// source was closed; they were not delivered.
	Dropped uint64
	// Filtered is the number of frames read that ReplayConfig.Filter
	// rejected; they were not delivered.
	Filtered uint64
	// FirstTS and LastTS are the capture times of the first and the
	// last frame read, in file order (nanoseconds since the epoch).
	FirstTS, LastTS int64
	// Truncated is true when the file ended inside its last record;
	// every whole record before it was delivered.
	Truncated bool
	// Done is true once the reader has stopped.
	Done bool
}

// OpenReplay reads the file header of a pcap (microsecond or nanosecond,
// either byte order) or pcapng recording from r, which may be gzipped,
// and prepares its replay. It fails with an error matching ErrNotCapture
// for a file that is none of these and ErrUnsupportedLink for a link type
// other than the LinkType constants. Nothing is read beyond the file
// header and its read-ahead until the first NextBatch.
//
// A file that grows while it is replayed is read, as tcpdump -r reads
// it, up to the first end the reader meets: what was appended before is
// read, what is appended after is not, and a record still being written
// at that moment is a truncated last record (see Truncated).
//
// The caller keeps r open until the replay is done (every source returned
// io.EOF, or Close returned).
func OpenReplay(r io.Reader, cfg ReplayConfig) (*Replay, error) {
	c, err := openCapture(r)
	if err != nil {
		return nil, err
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	rp := &Replay{
		rd:        c,
		hash:      cfg.Hash,
		batchSize: cfg.BatchSize,
		arenaSize: min(max(cfg.BatchSize*frameBudget, minArena), maxArena),
		srcs:      make([]*replaySource, cfg.Workers),
		stop:      make(chan struct{}),
		byRef:     c.mem != nil && cfg.Workers > 1,
		filter:    cfg.Filter,
	}
	if cfg.Filter != "" {
		// The file's first link type now, so that a bad expression is
		// an error before anything runs; a pcapng file's others when
		// the reader meets them.
		rp.progs = map[LinkType]*filter.Program{}
		if err := rp.useFilter(c.link); err != nil {
			return nil, err
		}
	}
	rp.open.Store(int32(cfg.Workers))
	for i := range rp.srcs {
		s := &replaySource{
			r:     rp,
			full:  make(chan *replayBuf, replayBuffers),
			free:  make(chan *replayBuf, replayBuffers),
			spent: make([]*replayBuf, 0, freeTogether),
			done:  make(chan struct{}),
		}
		for range replayBuffers {
			// Arenas are allocated by the reader when first used.
			s.free <- &replayBuf{
				frames: make([][]byte, cfg.BatchSize),
				ts:     make([]int64, cfg.BatchSize),
				wire:   make([]int, cfg.BatchSize),
			}
		}
		rp.srcs[i] = s
	}
	return rp, nil
}

// Sources returns one Source per worker, in worker order.
func (r *Replay) Sources() []Source {
	out := make([]Source, len(r.srcs))
	for i, s := range r.srcs {
		out[i] = s
	}
	return out
}

// Link returns the file's link type: for a pcapng file, that of its first
// interface (batches carry each frame's own).
func (r *Replay) Link() LinkType { return r.rd.link }

// Close closes every source and waits for the reader goroutine to stop.
// A Read blocked on the io.Reader (a pipe) delays it until that Read
// returns. Close is idempotent and returns nil.
func (r *Replay) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, s := range r.srcs {
		s.Close()
	}
	r.wg.Wait()
	return nil
}

// Err returns the error that stopped the reader before the end of the
// file, such as a *RecordError, or nil. Check it once every source has
// returned io.EOF: the frames before the error have been delivered. A
// truncated last record is not an error (see Truncated).
func (r *Replay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Truncated reports whether the file ended inside its last record.
func (r *Replay) Truncated() bool { return r.st.truncated.Load() }

// Stats returns the reader's progress.
func (r *Replay) Stats() ReplayStats {
	fileBytes := r.rd.file.n.Load()
	if r.rd.mem != nil {
		fileBytes = r.st.memOff.Load()
	}
	return ReplayStats{
		Packets:   r.st.packets.Load(),
		Bytes:     r.st.bytes.Load(),
		FileBytes: fileBytes,
		Dropped:   r.st.dropped.Load(),
		Filtered:  r.st.filtered.Load(),
		FirstTS:   r.st.firstTS.Load(),
		LastTS:    r.st.lastTS.Load(),
		Truncated: r.st.truncated.Load(),
		Done:      r.st.done.Load(),
	}
}

// start starts the reader goroutine once, unless the replay is closed.
func (r *Replay) start() {
	r.startOnce.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			return
		}
		r.wg.Add(1)
		go r.run()
	})
}

// run is the reader goroutine.
func (r *Replay) run() {
	defer r.wg.Done()
	// Its own label in CPU profiles (pprof -tags): it starts from the
	// first worker that asks for frames and would carry that one's.
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("role", "replay reader")))
	err := r.pump()
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	r.publish()
	r.st.truncated.Store(r.rd.truncated)
	r.st.done.Store(true)
	for _, s := range r.srcs {
		if b := s.fill; b != nil && b.n > 0 && !s.dead {
			b.clock = r.lastTS
			s.full <- b // never blocks: the channel holds every buffer
		}
		s.fill = nil
		close(s.full)
	}
}

// pump reads frames and deals them out until the end of the file, an
// error, or the close of every source.
func (r *Replay) pump() error {
	n := uint64(len(r.srcs))
	for {
		data, ts, wire, link, err := r.rd.next()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if r.packets == 0 {
			r.firstTS = ts
		}
		r.packets++
		r.bytes += uint64(len(data))
		r.lastTS = ts
		if r.filter != "" {
			if link != r.progLink {
				if err := r.useFilter(link); err != nil {
					return err
				}
			}
			if !r.prog.Match(data, wire) {
				r.filtered++
				// The clock goes on: a worker that gets no frames for
				// a while still fires its timers on time.
				if ts >= r.nextBeat {
					r.beat(ts)
				}
				continue
			}
		}
		s := r.srcs[0]
		if n > 1 && r.hash != nil {
			if h, ok := r.hash(data, link); ok {
				s = r.srcs[pickWorker(h, n)]
			}
		}
		if !r.put(s, data, ts, wire, link) {
			return nil
		}
		if ts >= r.nextBeat && (n > 1 || r.filter != "") {
			r.beat(ts)
		}
	}
}

// useFilter makes the filter's program for link the one Match runs,
// compiling it the first time the link type is met.
func (r *Replay) useFilter(link LinkType) error {
	p, ok := r.progs[link]
	if !ok {
		insns, err := filter.Compile(r.filter, uint16(link), filter.Options{})
		if err == nil {
			p, err = filter.New(insns)
		}
		if err != nil {
			return fmt.Errorf("filter %q on link type %v: %s", r.filter, link, strings.TrimPrefix(err.Error(), "filter: "))
		}
		r.progs[link] = p
	}
	r.prog, r.progLink = p, link
	return nil
}

// beatInterval is how much capture time may pass before every worker is
// told the clock, even one that gets no frames: its timers must fire
// when they are due, not at the end of the file.
const beatInterval = int64(500 * time.Millisecond)

// beat hands each source that has heard nothing for beatInterval its
// partly filled buffer, or an empty one carrying only the clock.
func (r *Replay) beat(ts int64) {
	r.nextBeat = ts + beatInterval
	for _, s := range r.srcs {
		if s.dead || ts-s.sentClock < beatInterval {
			continue
		}
		if s.fill != nil && s.fill.n > 0 {
			r.flush(s)
			continue
		}
		select {
		case b := <-s.free: // never wait: a busy worker has buffers to go
			b.link, b.n = r.rd.link, 0
			if b.arena != nil {
				b.arena = b.arena[:0]
			}
			s.fill = b
			r.flush(s)
		default:
		}
	}
}

// pickWorker maps a hash to one of n workers by its high 32 bits.
func pickWorker(h, n uint64) int {
	return int((h >> 32) * n >> 32)
}

// put copies a frame into s's current buffer, handing the buffer over when
// it is full. It returns false when every source is closed.
func (r *Replay) put(s *replaySource, data []byte, ts int64, wire int, link LinkType) bool {
	if s.dead {
		return r.drop()
	}
	b := s.fill
	if b != nil && (b.link != link || !r.byRef && len(b.arena)+len(data) > cap(b.arena)) {
		r.flush(s)
		b = nil
	}
	if b == nil {
		select {
		case <-s.done:
			s.dead = true
			return r.drop()
		default:
		}
		select {
		case b = <-s.free:
		case <-s.done:
			s.dead = true
			return r.drop()
		case <-r.stop:
			return false
		}
		if !r.byRef && (b.arena == nil || cap(b.arena) < len(data)) {
			b.arena = make([]byte, 0, max(r.arenaSize, len(data)))
		}
		b.link, b.n, b.arena = link, 0, b.arena[:0]
		s.fill = b
	}
	if r.byRef {
		b.frames[b.n] = data // where it lies in the file in memory
	} else {
		// The arena never grows beyond its capacity (a frame that does
		// not fit ends the batch), so this slice stays where it is.
		start := len(b.arena)
		b.arena = append(b.arena, data...)
		b.frames[b.n] = b.arena[start:len(b.arena):len(b.arena)]
	}
	b.ts[b.n] = ts
	b.wire[b.n] = wire
	b.n++
	if b.n == len(b.frames) {
		r.flush(s)
	}
	return true
}

// drop counts a frame of a closed source.
func (r *Replay) drop() bool {
	r.dropped++
	select {
	case <-r.stop:
		return false
	default:
		return true
	}
}

// flush hands s's current buffer to its source, or drops its frames if
// the source has been closed meanwhile.
func (r *Replay) flush(s *replaySource) {
	select {
	case <-s.done:
		s.dead = true
		r.dropped += uint64(s.fill.n)
	default:
		s.fill.clock = r.lastTS
		s.sentClock = r.lastTS
		s.full <- s.fill // never blocks: the channel holds every buffer
	}
	s.fill = nil
	r.publish()
}

func (r *Replay) publish() {
	r.st.packets.Store(r.packets)
	r.st.bytes.Store(r.bytes)
	r.st.dropped.Store(r.dropped)
	r.st.filtered.Store(r.filtered)
	r.st.firstTS.Store(r.firstTS)
	r.st.lastTS.Store(r.lastTS)
	r.st.memOff.Store(int64(r.rd.memOff))
}

// replayBuf is one batch: frames packed into an arena, or for a file in
// memory where they lie; frames[i] is frame i either way.
type replayBuf struct {
	link   LinkType
	n      int
	clock  int64 // the reader's latest capture time when it was handed over
	arena  []byte
	frames [][]byte
	ts     []int64
	wire   []int
}

// replaySource is one worker's Source.
type replaySource struct {
	r    *Replay
	full chan *replayBuf // filled buffers, reader -> worker; closed at the end
	free chan *replayBuf // consumed buffers, worker -> reader
	done chan struct{}   // closed by Close
	once sync.Once

	// Worker side (NextBatch).
	cur *replayBuf
	pos int // frames of cur already delivered
	// spent holds consumed buffers to hand back to the reader
	// freeTogether at a time (see giveBack).
	spent []*replayBuf

	// Reader side.
	fill      *replayBuf // the buffer being filled
	dead      bool       // done was seen closed
	sentClock int64      // the clock of the last buffer handed over
}

var _ Source = (*replaySource)(nil)

var errNoRoom = errors.New("ring: NextBatch: the batch holds no frames (use NewBatch)")

// NextBatch fills b with the next frames of this worker, in file order.
// They stay valid until the next NextBatch. When b is smaller than the
// replay's batches, the rest follows in the next calls.
func (s *replaySource) NextBatch(b *Batch) error {
	b.N = 0
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	room := min(len(b.Frames), len(b.TS), len(b.WireLen))
	if room == 0 {
		return errNoRoom
	}
	if s.cur == nil || s.pos == s.cur.n {
		if s.cur != nil {
			s.spent = append(s.spent, s.cur)
			s.cur = nil
			if len(s.spent) == freeTogether {
				s.giveBack()
			}
		}
		s.r.start()
		var buf *replayBuf
		ok := true
		select {
		case buf, ok = <-s.full:
		default:
			// About to wait: the reader may be waiting for these.
			s.giveBack()
			select {
			case buf, ok = <-s.full:
			case <-s.done:
				return ErrClosed
			}
		}
		if !ok {
			return io.EOF
		}
		s.cur, s.pos = buf, 0
	}
	buf := s.cur
	n := min(buf.n-s.pos, room)
	// The reader laid the frames out for this: three block copies.
	copy(b.Frames[:n], buf.frames[s.pos:s.pos+n])
	copy(b.TS[:n], buf.ts[s.pos:s.pos+n])
	copy(b.WireLen[:n], buf.wire[s.pos:s.pos+n])
	b.Link, b.N, b.Clock = buf.link, n, buf.clock
	s.pos += n
	return nil
}

// freeTogether is how many consumed buffers a worker hands back at once.
// The reader is faster than a worker and mostly parked waiting for a free
// buffer; handing one back wakes it (a futex call, several microseconds
// on a VM, on the worker's CPU) and it fills just that one. Handed back
// together, one wake-up fills them all. The worker keeps at most
// freeTogether-1 of them back, and none while it waits for the reader.
const freeTogether = replayBuffers / 4

// giveBack hands the spent buffers back to the reader.
func (s *replaySource) giveBack() {
	for _, b := range s.spent {
		s.free <- b // never blocks: the channel holds every buffer
	}
	clear(s.spent)
	s.spent = s.spent[:0]
}

// Close makes a blocked and every later NextBatch return ErrClosed. The
// reader drops this worker's frames from now on and stops once every
// source is closed. Close is idempotent and returns nil.
func (s *replaySource) Close() error {
	s.once.Do(func() {
		close(s.done)
		if s.r.open.Add(-1) == 0 {
			s.r.stopOnce.Do(func() { close(s.r.stop) })
		}
	})
	return nil
}
