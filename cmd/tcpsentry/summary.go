package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// writeSummary prints the one-screen replay summary.
func writeSummary(w io.Writer, name string, s *sensor.Summary) {
	secs := s.Elapsed.Seconds()
	pps := 0.0
	if secs > 0 {
		pps = float64(s.Packets) / secs
	}
	fmt.Fprintf(w, "tcpsentry replay %s\n", name)
	fmt.Fprintf(w, "  packets   %d (%s on the wire) in %.3f s: %.0f packets/s, %d worker(s)\n",
		s.Packets, bytesHuman(s.Bytes), secs, pps, s.Workers)
	if s.Filter != "" {
		fmt.Fprintf(w, "  filter    %q left out %d frames (not in these counts)\n", s.Filter, s.Filtered)
	}
	if s.FirstTS != 0 {
		span := time.Duration(s.LastTS - s.FirstTS)
		fmt.Fprintf(w, "  capture   %s .. %s (%s)\n",
			time.Unix(0, s.FirstTS).UTC().Format(time.RFC3339Nano),
			time.Unix(0, s.LastTS).UTC().Format(time.RFC3339Nano), span.Round(time.Millisecond))
	}
	writeCounts(w, s)
}

// writeCounts prints the flow, decode and event lines common to replay
// and live summaries.
func writeCounts(w io.Writer, s *sensor.Summary) {
	// The most held at once says how near --flows the traffic came, which
	// the evictions say only once it is too small. Both it and the slots
	// are summed over the workers, each of which fills its own share.
	fmt.Fprintf(w, "  flows     %d created, at most %d held at once (%.1f%% of %d slots), %d evicted idle, %d evicted full (table full), %d 4-tuple reused, %d ended at end of capture\n",
		s.Flows.Created, s.Flows.Peak, 100*float64(s.Flows.Peak)/float64(max(s.FlowCapacity, 1)), s.FlowCapacity,
		s.Flows.EvictedIdle, s.Flows.EvictedFull, s.Flows.Reused, s.Flows.Flushed)
	var parts []string
	for r := decode.Reason(1); r < decode.NumReasons; r++ {
		if n := s.Drops[r]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
	}
	if s.OptMalformed > 0 {
		parts = append(parts, fmt.Sprintf("%d tcp_option_malformed (tracked)", s.OptMalformed))
	}
	fmt.Fprintf(w, "  not TCP   %s\n", orNone(parts))
	parts = parts[:0]
	for t := detectors.Type(1); t < detectors.NumTypes; t++ {
		if n := s.Events[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, t))
		}
	}
	for t := detectors.Type(1); t < detectors.NumTypes; t++ {
		if n := s.Suppressed[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s not written (disabled)", n, t))
		}
	}
	for t := detectors.Type(1); t < detectors.NumTypes; t++ {
		if n := s.RateLimited[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s NOT WRITTEN (over the rate limit, --event-rate)", n, t))
		}
	}
	if s.EventsLost > 0 {
		parts = append(parts, fmt.Sprintf("%d LOST (event buffer full)", s.EventsLost))
	}
	if s.Late > 0 {
		parts = append(parts, fmt.Sprintf("%d facts handled OUT OF ORDER (correlator queue full: cross-connection findings may be missing)", s.Late))
	}
	fmt.Fprintf(w, "  events    %s\n", orNone(parts))
}

func orNone(parts []string) string {
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
