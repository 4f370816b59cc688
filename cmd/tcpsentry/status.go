package main

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// defaultStatusInterval is --status-interval's default.
const defaultStatusInterval = time.Minute

// intervalFlag is --status-interval: 0 (off) or at least 100ms, so that a
// typo cannot flood the log.
type intervalFlag struct{ p *time.Duration }

func (f intervalFlag) String() string {
	if f.p == nil {
		return shortDuration(defaultStatusInterval)
	}
	return shortDuration(*f.p)
}
func (f intervalFlag) Get() any { return *f.p }
func (f intervalFlag) Set(v string) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if v = strings.TrimSpace(v); v == "0" {
		d, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("not a duration: %q (say 30s, 1m or 0 for none)", v)
	}
	if d != 0 && (d < 100*time.Millisecond || d > 24*time.Hour) {
		return fmt.Errorf("must be 0 (no status lines) or between 100ms and 24h, not %s", shortDuration(d))
	}
	*f.p = d
	return nil
}

// status is what one status line says: totals, and rates over the time
// since the previous line.
type status struct {
	packets, events                uint64 // totals
	pps, bytesPerSec, eventsPerSec float64
	drops                          uint64 // kernel drops since the previous line
	dropsOn                        []slog.Attr
	eventsLost                     uint64 // since the previous line
	flows, capacity                int
}

// statusBetween computes the status line from the snapshots taken at the
// previous line (or at the start, the zero Snapshot) and now, dt apart.
func statusBetween(prev, cur *sensor.Snapshot, dt time.Duration) status {
	var s status
	var bytes, prevPackets, prevBytes, prevLost uint64
	for _, w := range cur.Workers {
		s.packets += w.Packets
		bytes += w.Bytes
		s.eventsLost += w.EventsLost
		s.flows += w.Flows.Active
		s.capacity += w.FlowsCapacity
	}
	for _, w := range prev.Workers {
		prevPackets += w.Packets
		prevBytes += w.Bytes
		prevLost += w.EventsLost
	}
	var prevEvents uint64
	for t := range cur.Events {
		s.events += cur.Events[t]
		prevEvents += prev.Events[t]
	}
	for i, k := range cur.Kernel {
		var before uint64
		if i < len(prev.Kernel) {
			before = prev.Kernel[i].Drops
		}
		if d := sub(k.Drops, before); d > 0 {
			s.drops += d
			name := fmt.Sprint(i)
			if i < len(cur.Interfaces) {
				name = cur.Interfaces[i]
			}
			s.dropsOn = append(s.dropsOn, slog.Uint64(name, d))
		}
	}
	s.eventsLost = sub(s.eventsLost, prevLost)
	if secs := dt.Seconds(); secs > 0 {
		s.pps = round(float64(sub(s.packets, prevPackets))/secs, 0)
		s.bytesPerSec = round(float64(sub(bytes, prevBytes))/secs, 0)
		s.eventsPerSec = round(float64(sub(s.events, prevEvents))/secs, 2)
	}
	return s
}

// sub is a-b, 0 when the counter went back (it cannot, but a line must
// not say 18446744073709551615).
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// args are the status line's attributes.
func (s *status) args() []any {
	a := []any{
		"packets", s.packets, "pps", s.pps, "bytes_per_s", s.bytesPerSec,
		"kernel_drops", s.drops,
	}
	if len(s.dropsOn) > 0 {
		a = append(a, slog.GroupAttrs("kernel_drops_on", s.dropsOn...))
	}
	return append(a, "flows", s.flows, "flows_capacity", s.capacity,
		"events", s.events, "events_per_s", s.eventsPerSec, "events_lost", s.eventsLost)
}

// logStatus logs a status line every interval from obs's snapshots until
// done is closed. It reads only what the workers publish once per batch.
func logStatus(log *slog.Logger, obs *sensor.Observer, every time.Duration, done <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var prev sensor.Snapshot
	last := time.Now()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		cur, now := obs.Snapshot(), time.Now()
		s := statusBetween(&prev, &cur, now.Sub(last))
		log.Info("status", append(s.args(), "interval_s", every.Seconds())...)
		prev, last = cur, now
	}
}
