//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/traffic"
	"github.com/tcpsentry/tcpsentry/ring"
)

// config is one benchmark run.
type config struct {
	Rates    []int         // offered packets/s; 0 is top speed
	Duration time.Duration // how long each point sends
	Repeat   int           // runs per point; the median is reported
	Workers  []int         // worker counts of tcpsentry's readers
	Geometry ringGeometry  // ring memory of every reader
	Traffic  traffic.Options
	// Capacity also measures how fast each in-process reader empties a
	// ring the sender filled while it was not reading, CapacityRepeat
	// times (a run is short and noisy: the median of many is reported).
	Capacity       bool
	CapacityRepeat int
	Progress       io.Writer // one line per run (nil: silent)
}

// readerSpec makes fresh readers of one kind, one per run.
type readerSpec struct {
	Key  string // column label
	Name string
	New  func() reader
	// NoCapacity, when set, says why the reader is not in the capacity
	// runs.
	NoCapacity string
}

// run is one reader against one sender run.
type run struct {
	Sent      sent
	Got       counts
	CPU       time.Duration // the reader's CPU time while the point ran
	VethDrops uint64        // frames the veth pair dropped before any tap
	Drain     time.Duration // from the sender's end until the counts settled
	// Steal is the time the hypervisor ran something else on this VM's
	// CPUs while the point ran (/proc/stat, all CPUs): a run that loses
	// packets with steal well above the others lost them to the host.
	Steal time.Duration
}

// RxPPS is the packets/s the reader received over the sending time.
func (r run) RxPPS() float64 {
	if r.Sent.Elapsed <= 0 {
		return 0
	}
	return float64(r.Got.Received) / r.Sent.Elapsed.Seconds()
}

// Lost is what was sent and not received, whatever the reason.
func (r run) Lost() uint64 {
	if r.Got.Received >= r.Sent.Packets {
		return 0
	}
	return r.Sent.Packets - r.Got.Received
}

// Unaccounted is loss that neither the kernel's ring drops nor the veth
// explain (should be 0).
func (r run) Unaccounted() int64 {
	return int64(r.Sent.Packets) - int64(r.Got.Received) - int64(r.Got.Drops) - int64(r.Got.IfDrops) - int64(r.VethDrops)
}

// CPUPerPacket is the reader's CPU time per packet received.
func (r run) CPUPerPacket() time.Duration {
	if r.Got.Received == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Got.Received)
}

// point is the runs of one reader at one offered rate.
type point struct {
	Reader string
	Rate   int
	Runs   []run
}

// Median is the run with the median received packets/s.
func (p point) Median() run {
	rs := slices.Clone(p.Runs)
	slices.SortFunc(rs, func(a, b run) int {
		switch {
		case a.RxPPS() < b.RxPPS():
			return -1
		case a.RxPPS() > b.RxPPS():
			return 1
		}
		return 0
	})
	return rs[len(rs)/2]
}

// capacityRun is how fast a reader emptied a ring filled beforehand.
type capacityRun struct {
	Frames  uint64
	Elapsed time.Duration
	Drops   uint64 // while filling: the ring was too small (should be 0)
}

func (c capacityRun) PPS() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return float64(c.Frames) / c.Elapsed.Seconds()
}

// results is everything a benchmark run measured.
type results struct {
	Config   config
	Machine  machine
	Readers  []readerSpec
	Netns    string // the lab's namespace (removed at the end)
	Packets  int    // in the pcap
	TopCount int64  // packets each top-speed point sends
	Baseline sent   // the sender alone at top speed, no reader
	Points   map[string]map[int]*point
	Capacity map[string][]capacityRun
}

// bench runs the whole schedule in the lab.
type bench struct {
	cfg    config
	lab    *lab
	sender *sender
	cpus   []int // reader CPUs: the sender's last
}

func (b *bench) progress(format string, args ...any) {
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, format+"\n", args...)
	}
}

// runBench builds the lab, runs every reader at every rate, and removes
// the lab again, also when ctx is cancelled.
func runBench(ctx context.Context, cfg config, specs func(b *bench) []readerSpec) (res *results, err error) {
	if err := checkTools(); err != nil {
		return nil, err
	}
	cpus, err := ring.CPUs()
	if err != nil || len(cpus) == 0 {
		return nil, fmt.Errorf("reading the CPU affinity: %v", err)
	}
	b := &bench{cfg: cfg}
	// The sender gets the last CPU, the readers start at the first: with
	// 2 CPUs one reader thread has a CPU to itself, and a second worker
	// shares the sender's.
	b.cpus = cpus
	b.progress("writing the traffic (%d connections, %d concurrent)", cfg.Traffic.Connections, cfg.Traffic.Concurrent)
	b.lab, err = newLab(ctx, cfg.Traffic)
	if err != nil {
		return nil, err
	}
	defer b.lab.close()
	b.sender = &sender{lab: b.lab, cpu: cpus[len(cpus)-1]}

	res = &results{Config: cfg, Machine: readMachine(), Readers: specs(b),
		Points: map[string]map[int]*point{}, Capacity: map[string][]capacityRun{}}
	res.Packets, res.Netns = b.lab.pkts, b.lab.ns
	res.Machine.SenderCPU = b.sender.cpu
	res.Machine.ReaderCPUs = cpus

	if slices.Contains(cfg.Rates, 0) {
		// The top-speed points all send the same number of packets: what
		// the sender alone manages in one duration.
		if err := b.lab.waitNoSockets(ctx); err != nil {
			return res, err
		}
		res.Baseline, err = b.sender.send(ctx, 0, 0, cfg.Duration)
		if err != nil {
			return res, err
		}
		res.TopCount = int64(res.Baseline.Packets)
		b.progress("sender alone at top speed: %d packets in %v (%.0f pps)", res.Baseline.Packets, res.Baseline.Elapsed, res.Baseline.PPS())
	}
	for _, spec := range res.Readers {
		res.Points[spec.Key] = map[int]*point{}
		for _, rate := range cfg.Rates {
			res.Points[spec.Key][rate] = &point{Reader: spec.Key, Rate: rate}
		}
	}
	// Repeats are the outer loop so that a slow drift of the machine
	// spreads over every reader rather than hitting one.
	for rep := range cfg.Repeat {
		for _, spec := range res.Readers {
			for _, rate := range cfg.Rates {
				count := int64(float64(rate) * cfg.Duration.Seconds())
				if rate == 0 {
					count = res.TopCount
				}
				r, err := b.runPoint(ctx, spec, rate, count)
				if err != nil {
					return res, fmt.Errorf("%s at %s: %w", spec.Name, rateLabel(rate), err)
				}
				p := res.Points[spec.Key][rate]
				p.Runs = append(p.Runs, r)
				b.progress("[%d/%d] %-28s %9s: sent %9d in %6.2fs, received %9d (%8.0f pps), drops %d, veth %d, cpu %v/pkt, drained in %v, steal %v",
					rep+1, cfg.Repeat, spec.Name, rateLabel(rate), r.Sent.Packets, r.Sent.Elapsed.Seconds(),
					r.Got.Received, r.RxPPS(), r.Got.Drops, r.VethDrops, r.CPUPerPacket(), r.Drain.Round(time.Millisecond), r.Steal)
			}
		}
	}
	if cfg.Capacity {
		n := max(cfg.Repeat, cfg.CapacityRepeat)
		for rep := range n {
			for _, spec := range res.Readers {
				if spec.NoCapacity != "" {
					continue
				}
				c, err := b.runCapacity(ctx, spec)
				if err != nil {
					return res, fmt.Errorf("%s, emptying a full ring: %w", spec.Name, err)
				}
				res.Capacity[spec.Key] = append(res.Capacity[spec.Key], c)
				if c.Elapsed > 0 {
					b.progress("[%d/%d] %-28s emptied a ring of %d frames in %v: %.0f pps", rep+1, n, spec.Name, c.Frames, c.Elapsed, c.PPS())
				} else {
					b.progress("[%d/%d] %-28s emptied a ring of %d frames, but its start and end were not seen apart", rep+1, n, spec.Name, c.Frames)
				}
			}
		}
	}
	return res, nil
}

func rateLabel(rate int) string {
	if rate == 0 {
		return "top speed"
	}
	return fmt.Sprintf("%d pps", rate)
}

// settle is how long a reader runs before the sender starts, so that its
// start-up (allocating tables, starting threads) is not in its CPU time.
const settle = 200 * time.Millisecond

// runPoint runs one reader against one sender run.
func (b *bench) runPoint(ctx context.Context, spec readerSpec, rate int, count int64) (r run, err error) {
	if err := b.lab.waitNoSockets(ctx); err != nil {
		return r, err
	}
	rd := spec.New()
	if err := rd.Open(ctx, b.lab); err != nil {
		return r, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = rd.Stop()
		}
	}()
	if err := rd.Run(); err != nil {
		return r, err
	}
	if err := sleep(ctx, settle); err != nil {
		return r, err
	}
	if c, err := rd.Counts(); err != nil {
		return r, err
	} else if c.Kernel != 0 || c.Received != 0 {
		return r, fmt.Errorf("the reader saw %d packets before the sender started: the lab is not quiet", max(c.Kernel, c.Received))
	}
	veth0, err := b.lab.vethDrops(ctx)
	if err != nil {
		return r, err
	}
	cpu0, err := rd.CPU()
	if err != nil {
		return r, err
	}
	steal0 := stealTime()
	if r.Sent, err = b.sender.send(ctx, rate, count, b.cfg.Duration); err != nil {
		return r, err
	}
	sentAt := time.Now()
	if _, err := waitDrained(ctx, rd); err != nil {
		return r, err
	}
	r.Drain = time.Since(sentAt)
	r.Steal = stealTime() - steal0
	cpu1, err := rd.CPU()
	if err != nil {
		return r, err
	}
	r.CPU = cpu1 - cpu0
	stopped = true
	if r.Got, err = rd.Stop(); err != nil {
		return r, err
	}
	veth1, err := b.lab.vethDrops(ctx)
	if err != nil {
		return r, err
	}
	r.VethDrops = veth1 - veth0
	return r, nil
}

// waitDrained polls the reader until its counts stop moving and it has
// taken every frame the kernel put in its ring (a frame may wait in a
// block until the block retires).
func waitDrained(ctx context.Context, rd reader) (counts, error) {
	const (
		every  = 50 * time.Millisecond
		still  = 300 * time.Millisecond
		giveUp = 30 * time.Second
	)
	var prev counts
	start := time.Now()
	since := start
	for first := true; ; first = false {
		c, err := rd.Counts()
		if err != nil {
			return c, err
		}
		now := time.Now()
		if first || c != prev {
			prev, since = c, now
		} else if now.Sub(since) >= still && c.Received+c.Drops >= c.Kernel {
			return c, nil
		}
		if now.Sub(start) > giveUp {
			return c, fmt.Errorf("the reader did not drain within %v: received %d + dropped %d of %d", giveUp, c.Received, c.Drops, c.Kernel)
		}
		if err := sleep(ctx, every); err != nil {
			return c, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// capacityFill is the share of the ring the capacity run fills: with
// two workers the hash splits the frames unevenly, so one ring must not
// overflow.
const capacityFill = 0.5

// targeted is a reader that notes when it has received a given number of
// packets, for the capacity run.
type targeted interface {
	reader
	// SetTarget is called before Run.
	SetTarget(n uint64)
	// Reached is when the reader got its first frames and its target;
	// ok is false before it has the target.
	Reached() (first, last time.Time, ok bool)
}

// runCapacity opens the reader without reading, fills its ring at top
// speed, then starts it and times how long it takes to get every frame.
func (b *bench) runCapacity(ctx context.Context, spec readerSpec) (c capacityRun, err error) {
	if err := b.lab.waitNoSockets(ctx); err != nil {
		return c, err
	}
	rd, ok := spec.New().(targeted)
	if !ok {
		return c, errors.New("the reader cannot time a target")
	}
	if err := rd.Open(ctx, b.lab); err != nil {
		return c, err
	}
	defer rd.Stop()
	// Frames take their length plus about 96 bytes of headers in a
	// block; the pcap's mean frame is about 100 bytes.
	n := int64(float64(b.cfg.Geometry.bytes()) * capacityFill / 200)
	s, err := b.sender.send(ctx, 0, n, 0)
	if err != nil {
		return c, err
	}
	c.Frames = s.Packets
	// Wait for the kernel to have every frame in the ring and the last
	// block to retire.
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, err := rd.Counts()
		if err != nil {
			return c, err
		}
		if k.Kernel >= c.Frames {
			c.Drops = k.Drops
			break
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("the kernel counted %d of %d frames", k.Kernel, c.Frames)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return c, err
		}
	}
	if err := sleep(ctx, 100*time.Millisecond); err != nil {
		return c, err
	}
	rd.SetTarget(c.Frames - c.Drops)
	start := time.Now()
	if err := rd.Run(); err != nil {
		return c, err
	}
	// Timed from the first frames, not from Run: the pipeline allocates
	// its flow tables when it starts. Elapsed stays 0 when the reader
	// could not tell (a polled reader whose poller had no CPU).
	for {
		if first, last, ok := rd.Reached(); ok {
			if !first.IsZero() && last.After(first) {
				c.Elapsed = last.Sub(first)
			}
			return c, nil
		}
		if time.Since(start) > 10*time.Second {
			k, _ := rd.Counts()
			return c, fmt.Errorf("got %d of %d frames in 10 s", k.Received, c.Frames-c.Drops)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// stealTime is the steal time of all CPUs so far, from /proc/stat's cpu
// line (in USER_HZ ticks, 10 ms here); 0 when it cannot be read.
func stealTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	n, err := strconv.ParseInt(f[8], 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(n) * 10 * time.Millisecond
}
