//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tcpsentry/tcpsentry/bench/report"
	"github.com/tcpsentry/tcpsentry/bench/traffic"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

// config is one benchmark run.
type config struct {
	Messages int             // events per publish run
	Repeat   int             // runs per measurement
	Traffic  traffic.Options // the replayed traffic, without refusals
	Refused  []float64       // shares of refused connections, one load each
	Workers  int             // replay workers
	Progress io.Writer       // a line per run (nil: quiet)
}

func defaultConfig() config {
	return config{
		Messages: 200_000,
		Repeat:   5,
		Traffic:  traffic.Options{Connections: 200_000, Concurrent: 5000, IPv6Share: 0.1, VLANShare: 0.1, Seed: 1},
		Refused:  []float64{0.01, 0.1},
		Workers:  1,
	}
}

// Publish paths, in report order.
const (
	rawJetStream = iota // minimal nats.go JetStream async publish: the ceiling
	ourJetStream        // natspub.Publisher, JetStream
	rawCore             // minimal nats.go core publish: the ceiling
	ourCore             // natspub.Publisher, core NATS
	numPublish
)

// Replay cases, in report order.
const (
	replayClean        = iota // traffic without refusals: no events
	replayDiscard             // refusals, events encoded and thrown away
	replayJetStream           // refusals, events to JetStream in this process (as tcpsentry run's embedded broker)
	replayJetStreamExt        // refusals, events to JetStream in another process, over TCP on loopback (as tcpsentry replay --nats)
	replayCore                // refusals, events to core NATS in this process
	replayCoreExt             // refusals, events to core NATS in another process
	numReplay
)

type results struct {
	Config  config
	Host    report.Host
	Date    time.Time
	Publish [numPublish][]float64 // msgs/s per run
	Clean   []float64             // packets/s per run, traffic without events
	Loads   []load
	// CleanPackets is the packet count of the traffic without refusals.
	CleanPackets int
	RecordSize   int
}

// load is the replay of traffic with a share of refused connections.
type load struct {
	Share           float64
	Packets, Events int
	Replay          [numReplay][]float64 // packets/s per run (not replayClean)
	CPU             [numReplay][]float64 // the process's CPU time per packet, ns, per run
}

func run(ctx context.Context, cfg config) (*results, error) {
	res := &results{Config: cfg, Host: report.Describe(), Date: time.Now()}
	ids, bodies := records(cfg.Messages)
	res.RecordSize = len(bodies[0])
	for r := range cfg.Repeat {
		for k := range numPublish {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rate, err := publishRun(k, ids, bodies)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", publishNames[k], err)
			}
			res.Publish[k] = append(res.Publish[k], rate)
			res.progress("run %d/%d  %-34s %9.0f msgs/s", r+1, cfg.Repeat, publishNames[k], rate)
		}
	}

	cleanData, cst, err := capture(cfg.Traffic)
	if err != nil {
		return nil, err
	}
	res.CleanPackets = cst.Packets
	datas := make([][]byte, len(cfg.Refused))
	for i, share := range cfg.Refused {
		o := cfg.Traffic
		o.RefusedShare = share
		d, st, err := capture(o)
		if err != nil {
			return nil, err
		}
		datas[i] = d
		res.Loads = append(res.Loads, load{Share: share, Packets: st.Packets, Events: st.Refused})
	}
	for r := range cfg.Repeat {
		pps, _, err := res.replay(ctx, replayClean, cleanData, cst.Packets, 0)
		if err != nil {
			return nil, err
		}
		res.Clean = append(res.Clean, pps)
		res.progress("run %d/%d  replay %-38s %9.0f packets/s", r+1, cfg.Repeat, replayNames[replayClean], pps)
		for i := range res.Loads {
			l := &res.Loads[i]
			for k := replayDiscard; k < numReplay; k++ {
				pps, cpu, err := res.replay(ctx, k, datas[i], l.Packets, l.Events)
				if err != nil {
					return nil, err
				}
				l.Replay[k] = append(l.Replay[k], pps)
				l.CPU[k] = append(l.CPU[k], cpu)
				res.progress("run %d/%d  replay %-46s %4.0f%% %9.0f packets/s %6.1f ns CPU/packet", r+1, cfg.Repeat, replayNames[k], 100*l.Share, pps, cpu)
			}
		}
	}
	return res, nil
}

// replay runs replayRun labelled for -cpuprofile (pprof -tagfocus
// case=...): the goroutines started within, the broker's included,
// inherit the label.
func (res *results) replay(ctx context.Context, k int, data []byte, packets, events int) (pps, cpu float64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	pprof.Do(ctx, pprof.Labels("case", replayKeys[k]), func(ctx context.Context) {
		pps, cpu, err = replayRun(ctx, k, data, res.Config.Workers, packets, events)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("replay %s: %w", replayNames[k], err)
	}
	return pps, cpu, nil
}

func (res *results) progress(format string, args ...any) {
	if res.Config.Progress != nil {
		fmt.Fprintf(res.Config.Progress, format+"\n", args...)
	}
}

var publishNames = [numPublish]string{
	rawJetStream: "raw nats.go JetStream async publish",
	ourJetStream: "tcpsentry publisher, JetStream",
	rawCore:      "raw nats.go core publish",
	ourCore:      "tcpsentry publisher, core NATS",
}

// replayKeys label the cases in profiles.
var replayKeys = [numReplay]string{replayClean: "clean", replayDiscard: "discard", replayJetStream: "jetstream", replayJetStreamExt: "jetstream-ext", replayCore: "core", replayCoreExt: "core-ext"}

var replayNames = [numReplay]string{
	replayClean:        "clean traffic (no events)",
	replayDiscard:      "refusals, events discarded",
	replayJetStream:    "refusals, events to JetStream",
	replayJetStreamExt: "refusals, events to JetStream in another process",
	replayCore:         "refusals, events to core NATS",
	replayCoreExt:      "refusals, events to core NATS in another process",
}

// records returns n events of about 600 bytes with unique ids.
func records(n int) (ids []string, bodies [][]byte) {
	pad := bytes.Repeat([]byte{'x'}, 520)
	for i := range n {
		id := fmt.Sprintf("bench-7f3c-%012d", i)
		ids = append(ids, id)
		bodies = append(bodies, fmt.Appendf(nil, `{"event":{"id":%q,"action":"connection_refused"},"pad":%q}`, id, pad))
	}
	return ids, bodies
}

// newBroker starts a broker on a free loopback port in a fresh directory;
// stop shuts it down and removes the directory.
func newBroker() (b *broker.Broker, stop func(), err error) {
	dir, err := os.MkdirTemp("", "tcpsentry-bench-events-")
	if err != nil {
		return nil, nil, err
	}
	b, err = broker.Start(broker.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return b, func() { b.Shutdown(); os.RemoveAll(dir) }, nil
}

const subject = natspub.SubjectPrefix + "bench.connection_refused"

// publishRun sends every record by path k to a fresh broker and returns
// msgs/s from the first publish until the last is acknowledged
// (JetStream) or flushed (core). It checks that all of them arrived.
func publishRun(k int, ids []string, bodies [][]byte) (float64, error) {
	b, stop, err := newBroker()
	if err != nil {
		return 0, err
	}
	defer stop()
	url := b.ClientURL()
	n := len(ids)
	var took time.Duration
	runtime.GC() // not the garbage of the run before
	switch k {
	case rawJetStream, rawCore:
		nc, err := nats.Connect(url)
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		if k == rawCore {
			start := time.Now()
			for i := range n {
				if err := nc.Publish(subject, bodies[i]); err != nil {
					return 0, err
				}
			}
			if err := nc.Flush(); err != nil {
				return 0, err
			}
			took = time.Since(start)
			break
		}
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(natspub.DefaultInFlight))
		if err != nil {
			return 0, err
		}
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: natspub.StreamName, Subjects: []string{natspub.StreamSubject}}); err != nil {
			return 0, err
		}
		start := time.Now()
		for i := range n {
			if _, err := js.PublishAsync(subject, bodies[i], jetstream.WithMsgID(ids[i])); err != nil {
				return 0, err
			}
		}
		<-js.PublishAsyncComplete()
		took = time.Since(start)
	default:
		mode := natspub.JetStream
		if k == ourCore {
			mode = natspub.Core
		}
		p, err := natspub.Open(natspub.Options{URLs: url}, natspub.Config{Sensor: "bench", Mode: mode, Wait: true})
		if err != nil {
			return 0, err
		}
		start := time.Now()
		for i := range n {
			p.Publish("connection_refused", []byte(ids[i]), bodies[i])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		st := p.Close(ctx) // core: closing the connection flushes it
		cancel()
		took = time.Since(start)
		if st.Published != uint64(n) {
			return 0, fmt.Errorf("published %d of %d (%+v)", st.Published, n, st)
		}
	}
	if k == rawJetStream || k == ourJetStream {
		if err := checkStored(url, n); err != nil {
			return 0, err
		}
	}
	return float64(n) / took.Seconds(), nil
}

// checkStored says whether the stream at url holds exactly n messages.
func checkStored(url string, n int) error {
	nc, err := natspub.Connect(natspub.Options{URLs: url})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, natspub.StreamName)
	if err != nil {
		return err
	}
	if got := s.CachedInfo().State.Msgs; got != uint64(n) {
		return fmt.Errorf("the stream holds %d messages, want %d", got, n)
	}
	return nil
}

// capture writes the traffic into memory: replay reads it from there, so
// the disk is not measured.
func capture(o traffic.Options) ([]byte, traffic.Stats, error) {
	var buf bytes.Buffer
	st, err := traffic.Write(&buf, o)
	return buf.Bytes(), st, err
}

// replayRun replays data through the whole pipeline with its events going
// where case k says, and returns packets/s until every event was written
// (and, to NATS, acknowledged or flushed) and the process's CPU time per
// packet over the same span. It checks the packet and event counts.
func replayRun(ctx context.Context, k int, data []byte, workers, packets, events int) (pps, cpu float64, err error) {
	cfg := sensor.Config{Workers: workers, Flows: 100_000, Name: "bench"}
	out := io.Discard
	var pub *natspub.Publisher
	var url string
	var other *otherProcess
	if k >= replayJetStream {
		o := natspub.Options{}
		if k == replayJetStream || k == replayCore {
			b, stop, err := newBroker()
			if err != nil {
				return 0, 0, err
			}
			defer stop()
			url = b.ClientURL()
			o.InProcess = b // as tcpsentry run with its embedded broker
		} else {
			if other, err = startOtherProcess(); err != nil {
				return 0, 0, err
			}
			defer other.stop()
			url = other.URL
		}
		o.URLs = url
		mode := natspub.JetStream
		if k == replayCore || k == replayCoreExt {
			mode = natspub.Core
		}
		// As tcpsentry replay --nats: a recording waits for room.
		if pub, err = natspub.Open(o, natspub.Config{Sensor: "bench", Mode: mode, Wait: true}); err != nil {
			return 0, 0, err
		}
		cfg.Sink, out = pub, nil
	}
	runtime.GC() // not the garbage of the run before
	cpu0 := cpuTime()
	if other != nil {
		cpu0 -= other.cpuTime()
	}
	start := time.Now()
	sum, err := sensor.Replay(ctx, bytes.NewReader(data), cfg, out)
	if pub != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		st := pub.Close(cctx)
		cancel()
		if err == nil && st.Published != uint64(events) {
			err = fmt.Errorf("published %d of %d events (%+v)", st.Published, events, st)
		}
	}
	took, used := time.Since(start), cpuTime()-cpu0
	if other != nil {
		used += other.cpuTime()
	}
	if err != nil {
		return 0, 0, err
	}
	if sum.Packets != uint64(packets) || sum.EventsTotal() != uint64(events) {
		return 0, 0, fmt.Errorf("%d packets and %d events, want %d and %d", sum.Packets, sum.EventsTotal(), packets, events)
	}
	if k == replayJetStream || k == replayJetStreamExt {
		if err := checkStored(url, events); err != nil {
			return 0, 0, err
		}
	}
	return float64(packets) / took.Seconds(), float64(used.Nanoseconds()) / float64(packets), nil
}

// cpuTime is the CPU time (user and system) this process has used, the
// broker's goroutines included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
