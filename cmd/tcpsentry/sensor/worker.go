package sensor

import (
	"errors"
	"io"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
	"github.com/tcpsentry/tcpsentry/ring"
)

// WorkerStats counts what one worker saw. The worker owns it; read it
// after the worker stopped.
type WorkerStats struct {
	Packets      uint64
	Bytes        uint64 // on the wire
	Drops        [decode.NumReasons]uint64
	OptMalformed uint64 // segments with a malformed TCP option (still tracked)
}

// Worker is one hot loop: it owns its source, flow table, detectors and
// event buffer; nothing on its per-packet path locks, allocates or reads
// the clock.
type Worker struct {
	src   ring.Source
	batch *ring.Batch
	pkt   decode.Packet
	flows *flowtable.Table
	det   *detectors.Set
	out   *detectors.Out
	stats WorkerStats
	// reorder is how far before the clock a packet's timestamp may be.
	reorder int64
	// endClock returns the capture time the whole input reached, read
	// once the source ended, so every worker ends at the same time.
	endClock func() int64
}

// newWorker builds worker id; send hands its event batches on (see
// detectors.NewOut).
func newWorker(id int, src ring.Source, tcfg flowtable.Config, dcfg detectors.Config, send func(*detectors.Batch) *detectors.Batch, ended func(worker int, c *flowtable.Conn)) (*Worker, error) {
	w := &Worker{src: src, batch: ring.NewBatch(0)}
	w.out = detectors.NewOut(id, send)
	w.det = detectors.NewSet(dcfg, w.out)
	var h flowtable.Handler = w.det
	if ended != nil {
		h = endHook{w.det, func(c *flowtable.Conn) { ended(id, c) }}
	}
	t, err := flowtable.New(tcfg, h)
	if err != nil {
		return nil, err
	}
	w.flows = t
	return w, nil
}

// Process runs one batch through decode, the flow table and the
// detectors. It is the whole per-packet path.
func (w *Worker) Process(b *ring.Batch) {
	link, iface := int(b.Link), uint8(b.Iface)
	for i := 0; i < b.N; i++ {
		w.stats.Packets++
		w.stats.Bytes += uint64(b.WireLen[i])
		r := decode.Parse(b.Frames[i], link, &w.pkt)
		if r != decode.OK {
			w.stats.Drops[r]++
			continue
		}
		if tag := b.VLAN[i]; tag != 0 {
			w.pkt.OuterVLAN(uint16(tag))
		}
		w.pkt.Iface = iface
		if w.pkt.Opts&decode.OptMalformed != 0 {
			w.stats.OptMalformed++
		}
		ts := b.TS[i]
		c, seg := w.flows.Packet(&w.pkt, ts)
		w.det.Segment(c, &w.pkt, seg, ts)
	}
	if b.Clock > 0 {
		w.flows.Advance(b.Clock)
	}
	// Everything this worker emits from now on is due at or after this:
	// expiries not before the table's horizon, packets not more than
	// w.reorder before the clock. The watermark holds back the
	// Correlator, so it is also how late an event is published.
	w.out.Publish(w.flows.Horizon() - w.reorder)
}

// run processes batches until the source ends, then ends every flow as at
// the end of a capture (pending timers fire) and hands on the events.
func (w *Worker) run() error {
	var err error
	for {
		if err = w.src.NextBatch(w.batch); err != nil {
			break
		}
		w.Process(w.batch)
	}
	w.finish()
	if errors.Is(err, io.EOF) || errors.Is(err, ring.ErrClosed) {
		return nil
	}
	return err
}

// finish ends the worker as at the end of the capture: first what is due
// by the input's last capture time (the same for every worker), then, as
// the flush, whatever is still open.
func (w *Worker) finish() {
	end := w.flows.Now()
	if w.endClock != nil {
		end = max(end, w.endClock())
	}
	w.flows.AdvanceExact(end)
	w.out.Flushing()
	w.flows.Flush()
	w.out.Close()
}

// endHook passes every connection's end to a function after the
// detectors saw it (Config.flowEnded).
type endHook struct {
	*detectors.Set
	f func(c *flowtable.Conn)
}

func (h endHook) Evicted(c *flowtable.Conn, why flowtable.Evict, when int64) {
	h.Set.Evicted(c, why, when)
	h.f(c)
}
