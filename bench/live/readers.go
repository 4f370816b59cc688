//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"github.com/tcpsentry/tcpsentry/ring"
)

// counts is a reader's accounting at one moment.
type counts struct {
	Received uint64 // packets the reader itself got
	Kernel   uint64 // packets the kernel put in (or dropped from) its ring
	Drops    uint64 // of those, dropped: the ring was full
	IfDrops  uint64 // tcpdump's "dropped by interface" (0 for the others)
}

// reader is one capture under test. Open binds its socket(s) in the lab
// (from then on the kernel fills its ring); Run starts consuming; Counts
// may be called while it runs; Stop ends it and returns the final counts.
type reader interface {
	Name() string
	Open(ctx context.Context, l *lab) error
	Run() error
	Counts() (counts, error)
	Stop() (counts, error)
	// CPU is the CPU time the reader has used so far (user + system).
	CPU() (time.Duration, error)
}

// ringGeometry is the ring memory every reader gets in total, split over
// its sockets: blocks of BlockSize bytes.
type ringGeometry struct {
	BlockSize int // bytes
	Blocks    int // in total, over all sockets
	// Snaplen is tcpsentry's snap length (0: its default); the other
	// readers capture whole frames, as they do by default.
	Snaplen int
}

func (g ringGeometry) bytes() int64 { return int64(g.BlockSize) * int64(g.Blocks) }

// processCPU is this process's CPU time: the in-process readers' measure.
func processCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// liveStats sums a Live's per-interface counters.
func liveStats(l *ring.Live) ring.IfaceStats {
	var s ring.IfaceStats
	for _, st := range l.Stats() {
		s.Add(st)
	}
	return s
}

// ringConfig is the LiveConfig of tcpsentry's ring for the lab: the
// geometry's blocks split evenly over the workers.
func ringConfig(l *lab, g ringGeometry, workers int) ring.LiveConfig {
	return ring.LiveConfig{
		Interfaces: []string{capIface},
		Workers:    workers,
		BlockSize:  g.BlockSize,
		Blocks:     max(2, g.Blocks/workers),
		Snaplen:    g.Snaplen,
		Netns:      l.path,
	}
}

// ringCount is (a'): tcpsentry's ring alone, a goroutine per source
// pinned with ring.PinThread, counting b.N.
type ringCount struct {
	workers int
	geom    ringGeometry
	cpus    []int

	live     *ring.Live
	received atomic.Uint64
	target   uint64       // set before Run
	first    atomic.Int64 // when the first frames came (unix ns)
	reached  atomic.Int64 // when received reached target (unix ns)
	wg       sync.WaitGroup
	errs     []error
}

func (r *ringCount) Name() string { return fmt.Sprintf("ring count-only, %d worker(s)", r.workers) }

func (r *ringCount) Open(_ context.Context, l *lab) error {
	live, err := ring.OpenLive(ringConfig(l, r.geom, r.workers))
	if err != nil {
		return err
	}
	r.live = live
	return nil
}

func (r *ringCount) Run() error {
	srcs := r.live.Sources()
	r.errs = make([]error, len(srcs))
	for i, src := range srcs {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// The goroutine keeps its pinned thread until it exits, and
			// Go then ends the thread.
			if err := ring.PinThread(r.cpus[i%len(r.cpus)]); err != nil {
				r.errs[i] = err
				return
			}
			b := ring.NewBatch(0)
			for {
				if err := src.NextBatch(b); err != nil {
					if !errors.Is(err, ring.ErrClosed) {
						r.errs[i] = err
					}
					return
				}
				if b.N > 0 {
					n := r.received.Add(uint64(b.N))
					if r.target != 0 && (n == uint64(b.N) || n >= r.target) {
						r.mark(n)
					}
				}
			}
		}()
	}
	return nil
}

func (r *ringCount) Counts() (counts, error) {
	st := liveStats(r.live)
	return counts{Received: r.received.Load(), Kernel: st.Packets, Drops: st.Drops}, nil
}

func (r *ringCount) Stop() (counts, error) {
	if r.live == nil {
		return counts{}, nil
	}
	r.live.Stop()
	r.wg.Wait()
	_ = r.live.Close()
	st := liveStats(r.live)
	r.live = nil
	return counts{Received: r.received.Load(), Kernel: st.Packets, Drops: st.Drops}, errors.Join(r.errs...)
}

func (r *ringCount) CPU() (time.Duration, error) { return processCPU() }

func (r *ringCount) SetTarget(n uint64) { r.target = n }

// mark notes the time of the first frames and of the target (only in
// the capacity run, off the counting path otherwise).
func (r *ringCount) mark(n uint64) {
	now := time.Now().UnixNano()
	r.first.CompareAndSwap(0, now)
	if n >= r.target {
		r.reached.CompareAndSwap(0, now)
	}
}

func (r *ringCount) Reached() (first, last time.Time, ok bool) {
	return reachedAt(&r.first, &r.reached)
}

func reachedAt(first, last *atomic.Int64) (time.Time, time.Time, bool) {
	f, l := first.Load(), last.Load()
	return time.Unix(0, f), time.Unix(0, l), l != 0
}

// afpacketCount is (b): one gopacket/afpacket TPACKET_V3 socket read
// with ZeroCopyReadPacketData, counting packets, on a pinned goroutine.
type afpacketCount struct {
	geom ringGeometry
	cpu  int

	tp       *afpacket.TPacket
	received atomic.Uint64
	target   uint64       // set before Run
	first    atomic.Int64 // when the first packet came (unix ns)
	reached  atomic.Int64 // when received reached target (unix ns)
	stop     atomic.Bool
	done     chan struct{}
	err      error
}

func (r *afpacketCount) Name() string { return "gopacket/afpacket" }

// afpacketPoll is the poll timeout of the afpacket reader: how often an
// idle reader publishes its count and looks at the stop flag.
const afpacketPoll = 10 * time.Millisecond

func (r *afpacketCount) Open(_ context.Context, l *lab) error {
	return l.inNetns(func() error {
		tp, err := afpacket.NewTPacket(
			afpacket.OptInterface(capIface),
			afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
			afpacket.OptFrameSize(ring.DefaultFrameSize),
			afpacket.OptBlockSize(r.geom.BlockSize),
			afpacket.OptNumBlocks(r.geom.Blocks),
			afpacket.OptBlockTimeout(ring.DefaultRetireTimeout),
			afpacket.OptPollTimeout(afpacketPoll),
			afpacket.OptAddVLANHeader(false),
		)
		if err != nil {
			return fmt.Errorf("afpacket on %s: %w", capIface, err)
		}
		r.tp = tp
		return nil
	})
}

func (r *afpacketCount) Run() error {
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		if err := ring.PinThread(r.cpu); err != nil {
			r.err = err
			return
		}
		// The count is published every 1024 packets and whenever the
		// socket is idle, so the per-packet path is a plain increment,
		// as it is for the ring's b.N.
		var n uint64
		for {
			_, _, err := r.tp.ZeroCopyReadPacketData()
			switch {
			case err == nil:
				n++
				if r.target != 0 && (n == 1 || n == r.target) {
					r.mark(n)
				}
				if n&1023 != 0 {
					continue
				}
				r.received.Store(n)
				if !r.stop.Load() {
					continue
				}
			case errors.Is(err, afpacket.ErrTimeout):
				r.received.Store(n)
				if !r.stop.Load() {
					continue
				}
			default:
				r.received.Store(n)
				r.err = err
			}
			return
		}
	}()
	return nil
}

func (r *afpacketCount) kernel() (counts, error) {
	_, v3, err := r.tp.SocketStats()
	if err != nil {
		return counts{}, err
	}
	// tp_packets includes the drops (the kernel adds them in).
	return counts{Kernel: uint64(v3.Packets()), Drops: uint64(v3.Drops())}, nil
}

func (r *afpacketCount) Counts() (counts, error) {
	c, err := r.kernel()
	c.Received = r.received.Load()
	return c, err
}

func (r *afpacketCount) Stop() (counts, error) {
	if r.tp == nil {
		return counts{}, nil
	}
	if r.done != nil {
		r.stop.Store(true)
		<-r.done
	}
	c, err := r.kernel()
	c.Received = r.received.Load()
	r.tp.Close()
	r.tp = nil
	return c, errors.Join(err, r.err)
}

func (r *afpacketCount) CPU() (time.Duration, error) { return processCPU() }

func (r *afpacketCount) SetTarget(n uint64) { r.target = n }

func (r *afpacketCount) mark(n uint64) {
	now := time.Now().UnixNano()
	r.first.CompareAndSwap(0, now)
	if n == r.target {
		r.reached.Store(now)
	}
}

func (r *afpacketCount) Reached() (first, last time.Time, ok bool) {
	return reachedAt(&r.first, &r.reached)
}
