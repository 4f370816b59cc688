//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/ring"
)

// pipelineReaders is (a), the full pipeline, for each worker count.
func pipelineReaders(cfg config, b *bench) []readerSpec {
	var specs []readerSpec
	for _, w := range cfg.Workers {
		s := readerSpec{
			Key: fmt.Sprintf("a%d", w), Name: fmt.Sprintf("tcpsentry full pipeline, %d worker(s)", w),
			New: func() reader { return &pipelineReader{workers: w, geom: cfg.Geometry, cpus: b.cpus} },
		}
		if w >= len(b.cpus) {
			// Its pinned workers hold every CPU while they empty the
			// ring, so the goroutine that polls its counters (the only
			// clock on a pipeline) runs late and the timing is wrong.
			s.NoCapacity = "its workers hold every CPU, so nothing can time it from outside"
		}
		specs = append(specs, s)
	}
	return specs
}

// pipelineReader is (a): tcpsentry's ring and its whole pipeline
// (decode, flow table, detectors, event encoding) through
// sensor.Capture, with the events written to io.Discard.
type pipelineReader struct {
	workers int
	geom    ringGeometry
	cpus    []int

	live    *ring.Live
	cancel  context.CancelFunc
	done    chan struct{}
	sum     sensor.Summary
	err     error
	log     syncBuffer
	target  uint64
	first   time.Time
	reached time.Time
}

func (r *pipelineReader) Name() string {
	return fmt.Sprintf("tcpsentry full pipeline, %d worker(s)", r.workers)
}

func (r *pipelineReader) Open(_ context.Context, l *lab) error {
	live, err := ring.OpenLive(ringConfig(l, r.geom, r.workers))
	if err != nil {
		return err
	}
	r.live = live
	return nil
}

// Run starts the pipeline and returns once its workers are reading.
// Building it (the flow tables and the detectors' tables, hundreds of MB)
// took from 66 ms to 1.6 s on the 2-CPU VM, while the ring already
// received: with a fixed wait before the sender started, the runs whose
// build was slow lost packets at 400k packets/s at the start, with the
// build's CPU counted in theirs.
func (r *pipelineReader) Run() error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	obs := &sensor.Observer{}
	cfg := sensor.Config{Workers: r.workers, CPUs: r.cpus, Observer: obs}
	go func() {
		defer close(r.done)
		r.sum, r.err = sensor.Capture(ctx, r.live, cfg, io.Discard, slog.New(slog.NewTextHandler(&r.log, nil)))
	}()
	deadline := time.Now().Add(pipelineStart)
	for !obs.Snapshot().Running {
		select {
		case <-r.done:
			if r.err != nil {
				return r.err
			}
			return errors.New("the pipeline ended before it started")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pipeline did not start within %v", pipelineStart)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// pipelineStart bounds how long Run waits for the pipeline to be built.
const pipelineStart = time.Minute

// Counts reads the live counters: Received is the frames handed to the
// workers (the final count is the workers' own).
func (r *pipelineReader) Counts() (counts, error) {
	st := liveStats(r.live)
	return counts{Received: st.Frames, Kernel: st.Packets, Drops: st.Drops}, nil
}

func (r *pipelineReader) Stop() (counts, error) {
	if r.live == nil {
		return counts{}, nil
	}
	if r.done == nil { // never ran
		err := r.live.Close()
		r.live = nil
		return counts{}, err
	}
	r.cancel()
	<-r.done
	var k ring.IfaceStats
	for _, st := range r.sum.Kernel {
		k.Add(st)
	}
	r.live = nil
	c := counts{Received: r.sum.Packets, Kernel: k.Packets, Drops: k.Drops}
	if k.Frames != r.sum.Packets {
		return c, errors.Join(r.err, fmt.Errorf("the ring handed out %d frames and the workers counted %d", k.Frames, r.sum.Packets))
	}
	return c, r.err
}

func (r *pipelineReader) CPU() (time.Duration, error) { return processCPU() }

func (r *pipelineReader) SetTarget(n uint64) { r.target = n }

// Reached polls the frames handed to the workers (the pipeline cannot
// be instrumented from outside): the last batch of up to 256 frames may
// still be in a worker, which is well within the polling interval.
func (r *pipelineReader) Reached() (first, last time.Time, ok bool) {
	if r.reached.IsZero() {
		n := liveStats(r.live).Frames
		now := time.Now()
		if n > 0 && r.first.IsZero() {
			r.first = now
		}
		if n >= r.target {
			r.reached = now
		}
	}
	return r.first, r.reached, !r.reached.IsZero()
}

// Warnings is what Capture wrote to its log.
func (r *pipelineReader) Warnings() string {
	return strings.TrimSpace(r.log.String())
}

// syncBuffer is a bytes.Buffer safe for Capture's logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
