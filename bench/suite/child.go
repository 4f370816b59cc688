//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/refs"
	"github.com/tcpsentry/tcpsentry/bench/workload"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/ring"
)

// Every measurement runs in a child process (this program again, with
// childEnv set), so that each starts with an empty heap and its peak RSS
// is its own. A child prints one JSON object on stdout.
const childEnv = "TCPSENTRY_SUITE_CHILD"

// isChild reports whether this process is a measuring child.
func isChild() bool { return os.Getenv(childEnv) == "1" }

// childMain runs a child: args are the mode and its flags.
func childMain(args []string) error {
	if len(args) < 1 {
		return errors.New("child: no mode")
	}
	var res any
	var err error
	switch args[0] {
	case "replay":
		res, err = childReplay(args[1:])
	case "memref":
		res, err = childMemref(args[1:])
	case "gopacket":
		res, err = childGopacket(args[1:])
	case "score":
		res, err = childScore(args[1:])
	default:
		return fmt.Errorf("child: unknown mode %q", args[0])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// replayResult is one replay measured by a child.
type replayResult struct {
	Workers     int
	Flows       int // flow-table capacity
	InMemory    bool
	Packets     uint64
	Bytes       uint64 // on the wire
	Created     uint64 // flows created
	Peak        int    // most flows the tables held at once (each worker's most, summed)
	EvictedFull uint64 // flows evicted because the table was full (should be 0)
	Events      uint64
	EventsLost  uint64
	Late        uint64        // correlator items handled out of order (queue full)
	Decoded     uint64        // frames not decoded to TCP
	Elapsed     time.Duration // the whole sensor.Replay call
	Setup       time.Duration // of Elapsed: building the pipeline (sensor.Summary.Setup)
	CPU         time.Duration // process CPU after Setup (sensor.Summary.CPU)
	Mallocs     uint64        // heap allocations during the replay
	GCs         uint32        // GC cycles during the replay
	RSSBefore   int64         // bytes resident before the replay (the file, when in memory)
	RSSPeak     int64         // peak resident bytes of the process during the replay
	// Memory maps the pipeline's large arrays at the end (-memmap).
	Memory []sensor.MemoryRegion `json:",omitempty"`
}

// Running is the replay's wall time once its pipeline is built: Elapsed
// without Setup, which took 63-537 ms here whatever the capture (mostly
// the first touch of fresh memory) and would otherwise weigh up to 30%
// in a replay of a second.
func (r replayResult) Running() time.Duration {
	if r.Setup > 0 && r.Setup < r.Elapsed {
		return r.Elapsed - r.Setup
	}
	return r.Elapsed
}

// NsPerPacket is the replay's running time per packet.
func (r replayResult) NsPerPacket() float64 {
	if r.Packets == 0 {
		return 0
	}
	return float64(r.Running().Nanoseconds()) / float64(r.Packets)
}

// Busy is how many CPUs the running replay kept busy: its CPU time over
// its wall time (0 when CPU was not measured).
func (r replayResult) Busy() float64 {
	if r.Running() <= 0 {
		return 0
	}
	return r.CPU.Seconds() / r.Running().Seconds()
}

// CPUPerPacket is the running replay's CPU time per packet, in ns.
func (r replayResult) CPUPerPacket() float64 {
	if r.Packets == 0 {
		return 0
	}
	return float64(r.CPU.Nanoseconds()) / float64(r.Packets)
}

// PPS is packets per second of running replay.
func (r replayResult) PPS() float64 {
	if r.Running() <= 0 {
		return 0
	}
	return float64(r.Packets) / r.Running().Seconds()
}

// childReplay replays a capture through the whole pipeline: from memory
// (the file read first) or streamed from a file or stdin ("-").
func childReplay(args []string) (replayResult, error) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	file := fs.String("file", "", "capture (- for stdin)")
	inMem := fs.Bool("inmem", false, "read the file into memory first")
	workers := fs.Int("workers", 1, "workers")
	flows := fs.Int("flows", sensor.DefaultFlows, "flow-table capacity")
	events := fs.String("events", "", "write events here (JSON lines)")
	cpuprofile := fs.String("cpuprofile", "", "CPU profile of the replay")
	memprofile := fs.String("memprofile", "", "allocation profile of the replay (every allocation sampled)")
	memmap := fs.Bool("memmap", false, "map what the pipeline's large arrays take and what of them is resident")
	if err := fs.Parse(args); err != nil {
		return replayResult{}, err
	}
	res := replayResult{Workers: *workers, Flows: *flows, InMemory: *inMem}
	var in io.Reader
	switch {
	case *file == "-":
		in = bufio.NewReaderSize(os.Stdin, 1<<20)
	case *inMem:
		data, err := os.ReadFile(*file)
		if err != nil {
			return res, err
		}
		in = ring.InMemory(data) // frames handed on where they lie
	default:
		f, err := os.Open(*file)
		if err != nil {
			return res, err
		}
		defer f.Close()
		in = bufio.NewReaderSize(f, 1<<20)
	}
	out := io.Discard
	if *events != "" {
		f, err := os.Create(*events)
		if err != nil {
			return res, err
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 1<<20)
		defer bw.Flush()
		out = bw
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1
		defer func() {
			runtime.GC() // the profile is as of the last cycle
			if f, err := os.Create(*memprofile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	runtime.GC()
	resetPeakRSS()
	res.RSSBefore = procStatus("VmRSS")
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	sum, err := sensor.Replay(context.Background(), in, sensor.Config{Workers: *workers, Flows: *flows, MapMemory: *memmap}, out)
	res.Elapsed = time.Since(start)
	res.Setup, res.CPU = sum.Setup, sum.CPU
	runtime.ReadMemStats(&ms1)
	res.RSSPeak = procStatus("VmHWM")
	res.Memory = sum.Memory
	if err != nil {
		return res, err
	}
	res.Packets, res.Bytes = sum.Packets, sum.Bytes
	res.Created, res.EvictedFull, res.Peak = sum.Flows.Created, sum.Flows.EvictedFull, sum.Flows.Peak
	res.Events, res.EventsLost, res.Late = sum.EventsTotal(), sum.EventsLost, sum.Late
	res.Decoded = sum.DecodeFailures()
	res.Mallocs = ms1.Mallocs - ms0.Mallocs
	res.GCs = ms1.NumGC - ms0.NumGC
	return res, nil
}

// resetPeakRSS resets the kernel's peak RSS of this process (VmHWM), so
// that the peak read afterwards is the replay's.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// procStatus reads a "kB" line of /proc/self/status, in bytes (0 when it
// cannot).
func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// memrefResult is the memory wall: one dependent random access.
type memrefResult struct {
	Size   int64
	Steps  int
	Rounds []float64 // ns per access, each round
}

func childMemref(args []string) (memrefResult, error) {
	fs := flag.NewFlagSet("memref", flag.ContinueOnError)
	size := fs.Int64("size", 1<<30, "bytes")
	steps := fs.Int("steps", 20_000_000, "accesses per round")
	rounds := fs.Int("rounds", 3, "rounds")
	huge := fs.Bool("huge", false, "nodes in 2 MiB pages")
	if err := fs.Parse(args); err != nil {
		return memrefResult{}, err
	}
	res := memrefResult{Size: *size, Steps: *steps}
	for i := range *rounds {
		ns, err := refs.MemoryAccess(*size, *steps, uint64(i+1), *huge)
		if err != nil {
			return res, err
		}
		res.Rounds = append(res.Rounds, ns)
	}
	return res, nil
}

// gopacketResult is the decode + Go map reference on a file in memory.
type gopacketResult struct {
	refs.GopacketResult
	PPS float64
}

func childGopacket(args []string) (gopacketResult, error) {
	fs := flag.NewFlagSet("gopacket", flag.ContinueOnError)
	file := fs.String("file", "", "capture")
	if err := fs.Parse(args); err != nil {
		return gopacketResult{}, err
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return gopacketResult{}, err
	}
	r, err := refs.GopacketReader(data)
	res := gopacketResult{GopacketResult: r}
	if r.Took > 0 {
		res.PPS = float64(r.Packets) / r.Took.Seconds()
	}
	return res, err
}

// scoreResult compares events with a ground truth file (a tool for
// looking into a capture by hand).
type scoreResult struct {
	Quality []workload.Quality
	Missing []workload.Truth
	Extra   []workload.Truth
}

func childScore(args []string) (scoreResult, error) {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	truthFile := fs.String("truth", "", "ground truth (NAME.truth.jsonl)")
	events := fs.String("events", "", "tcpsentry's events (JSON lines)")
	if err := fs.Parse(args); err != nil {
		return scoreResult{}, err
	}
	var res scoreResult
	tf, err := os.Open(*truthFile)
	if err != nil {
		return res, err
	}
	defer tf.Close()
	truth, err := workload.ReadTruth(bufio.NewReader(tf))
	if err != nil {
		return res, err
	}
	var c caseRun
	if err := c.score(*events, truth); err != nil {
		return res, err
	}
	return scoreResult{c.Quality, c.Missing, c.Extra}, nil
}
