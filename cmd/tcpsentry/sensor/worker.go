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
}

// newWorker builds a worker; flush receives its events in batches.
func newWorker(src ring.Source, tcfg flowtable.Config, dcfg detectors.Config, iface uint16, flush func([]detectors.Event)) (*Worker, error) {
	w := &Worker{src: src, batch: ring.NewBatch(0)}
	w.out = detectors.NewOut(eventBatch, flush)
	w.det = detectors.NewSet(dcfg, w.out, iface)
	t, err := flowtable.New(tcfg, w.det)
	if err != nil {
		return nil, err
	}
	w.flows = t
	return w, nil
}

// eventBatch is how many events a worker buffers before handing them on.
const eventBatch = 256

// Process runs one batch through decode, the flow table and the
// detectors. It is the whole per-packet path.
func (w *Worker) Process(b *ring.Batch) {
	link := int(b.Link)
	for i := 0; i < b.N; i++ {
		w.stats.Packets++
		w.stats.Bytes += uint64(b.WireLen[i])
		if r := decode.Parse(b.Frames[i], link, &w.pkt); r != decode.OK {
			w.stats.Drops[r]++
			continue
		}
		if w.pkt.Opts&decode.OptMalformed != 0 {
			w.stats.OptMalformed++
		}
		ts := b.TS[i]
		c, seg := w.flows.Packet(&w.pkt, ts)
		w.det.Segment(c, &w.pkt, seg, ts)
	}
	w.out.Flush()
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
	w.flows.Flush()
	w.out.Flush()
	if errors.Is(err, io.EOF) || errors.Is(err, ring.ErrClosed) {
		return nil
	}
	return err
}
