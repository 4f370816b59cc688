//go:build linux

package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/report"
)

// toJSON is the results in the shape of report.LiveResults (see there).
func (res *results) toJSON() report.LiveResults {
	j := report.LiveResults{
		Date:        res.Machine.Date.Format(time.RFC3339),
		Packets:     res.Packets,
		Readers:     []report.LiveReader{},
		Points:      []report.LivePoint{},
		Capacity:    []report.LiveCapacity{},
		BaselinePPS: res.Baseline.PPS(),
	}
	for _, s := range res.Readers {
		j.Readers = append(j.Readers, report.LiveReader{Key: s.Key, Name: s.Name})
	}
	for _, s := range res.Readers {
		for _, rate := range res.Config.Rates {
			pt := res.Points[s.Key][rate]
			if pt == nil || len(pt.Runs) == 0 {
				continue
			}
			r := pt.Median()
			j.Points = append(j.Points, report.LivePoint{
				Reader:   s.Key,
				Rate:     rate,
				Sent:     r.Sent.Packets,
				SentPPS:  r.Sent.PPS(),
				Received: r.Got.Received,
				RxPPS:    r.RxPPS(),
				Lost:     r.Lost(),
				LossPct:  100 * lossFrac(r),
				Drops:    r.Got.Drops,
				// As the accounting table: fractional, not rounded to a
				// whole nanosecond as run.CPUPerPacket is.
				CPUNsPerPacket: float64(r.CPU.Nanoseconds()) / max(1, float64(r.Got.Received)),
			})
		}
	}
	for _, s := range res.Readers {
		cs := res.Capacity[s.Key]
		if len(cs) == 0 {
			continue
		}
		j.Capacity = append(j.Capacity, report.LiveCapacity{Reader: s.Key, MedianPPS: median(cs), Runs: len(cs)})
	}
	return j
}

// writeJSON writes the results as indented JSON (see report.LiveResults).
func (res *results) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res.toJSON())
}
