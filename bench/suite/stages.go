package main

import (
	"strings"
	"time"
)

// stage is the CPU a profiled replay spent in one part of the pipeline.
type stage struct {
	Name        string
	CPU         time.Duration
	Share       float64 // of all samples
	NsPerPacket float64 // CPU per packet replayed
}

// The stages, by the package of the function a sample is in (its own
// time, "flat"). Go inlines small functions into their callers: a hash
// inlined into the table's probe counts as the table's.
var stageOf = []struct{ prefix, name string }{
	{"github.com/tcpsentry/tcpsentry/ring", "read: pcap records into batches (ring)"},
	{"github.com/tcpsentry/tcpsentry/flowtable/decode", "decode (flowtable/decode)"},
	{"github.com/tcpsentry/tcpsentry/flowtable", "flow table: hash, probe, state (flowtable)"},
	{"github.com/tcpsentry/tcpsentry/detectors/events", "event encoding (detectors/events)"},
	{"github.com/tcpsentry/tcpsentry/detectors", "detectors"},
	{"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor", "worker loop and publisher (sensor)"},
	{"runtime.", "Go runtime: scheduler, GC, memmove"},
	{"", "other (standard library)"},
}

// stages splits a `go tool pprof -top` listing by stage; packets is the
// replay's packet count.
func stages(top string, packets uint64) []stage {
	out := make([]stage, len(stageOf))
	for i, s := range stageOf {
		out[i].Name = s.name
	}
	var total time.Duration
	for _, line := range strings.Split(top, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		d, err := time.ParseDuration(f[0])
		if err != nil {
			continue // the header
		}
		name := strings.Join(f[5:], " ")
		for i, s := range stageOf {
			if strings.HasPrefix(name, s.prefix) {
				out[i].CPU += d
				break
			}
		}
		total += d
	}
	var kept []stage
	for _, s := range out {
		if s.CPU == 0 {
			continue
		}
		if total > 0 {
			s.Share = float64(s.CPU) / float64(total)
		}
		if packets > 0 {
			s.NsPerPacket = float64(s.CPU.Nanoseconds()) / float64(packets)
		}
		kept = append(kept, s)
	}
	return kept
}

// topLines is the header and the first n functions of a -top listing.
func topLines(top string, n int) string {
	var b strings.Builder
	rows := 0
	for _, line := range strings.Split(top, "\n") {
		f := strings.Fields(line)
		isRow := len(f) >= 6 && strings.HasSuffix(f[1], "%") && f[0] != "flat"
		if isRow {
			if rows == n {
				break
			}
			rows++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// roles splits the CPU of a profile by goroutine: the "role" labels the
// sensor and the replay reader give their goroutines, read from `go tool
// pprof -tags`. Samples without a role (setup on the caller's goroutine,
// the Go runtime's own) are "other". packets is the replay's count.
func roles(tags string, packets uint64) []stage {
	var out []stage
	var labeled, total time.Duration
	in := false
	for _, line := range strings.Split(tags, "\n") {
		t := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(t, "role:"); ok {
			in = true
			// " Total 2.39s of 2.82s (84.75%)"
			if f := strings.Fields(name); len(f) >= 4 && f[0] == "Total" && f[2] == "of" {
				total, _ = time.ParseDuration(f[3])
			}
			continue
		}
		if !in {
			continue
		}
		// "1.37s (48.58%): worker"
		d, rest, ok := strings.Cut(t, " ")
		_, name, ok2 := strings.Cut(rest, "): ")
		cpu, err := time.ParseDuration(d)
		if !ok || !ok2 || err != nil {
			in = false // the next key's section, or the end
			continue
		}
		out = append(out, stage{Name: name, CPU: cpu})
		labeled += cpu
	}
	if len(out) == 0 {
		return nil
	}
	if total > labeled {
		out = append(out, stage{Name: "other: setup on the caller's goroutine, Go runtime", CPU: total - labeled})
	}
	for i := range out {
		if total > 0 {
			out[i].Share = float64(out[i].CPU) / float64(total)
		}
		if packets > 0 {
			out[i].NsPerPacket = float64(out[i].CPU.Nanoseconds()) / float64(packets)
		}
	}
	return out
}
