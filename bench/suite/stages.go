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
