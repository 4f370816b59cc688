//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/report"
)

// TestJSON checks -json on made-up results: the median run of every
// point, points without runs left out, capacity medians over the timed
// runs, the field names, and agreement with the Markdown tables.
func TestJSON(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	mk := func(rate int, runs ...run) *point { return &point{Reader: "x", Rate: rate, Runs: runs} }
	r := func(sentN uint64, secs float64, got, drops uint64, cpu time.Duration) run {
		return run{Sent: sentIn(sentN, secs), Got: counts{Received: got, Kernel: sentN, Drops: drops}, CPU: cpu}
	}
	res := &results{
		Config:   config{Rates: []int{100000, 0}},
		Machine:  machine{Date: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC), ReaderCPUs: []int{0}},
		Readers:  []readerSpec{{Key: "a1", Name: "tcpsentry pipeline, 1 worker(s)"}, {Key: keyAfpacket, Name: "gopacket/afpacket"}},
		Packets:  123456,
		Baseline: sentIn(2400000, 2),
		Points: map[string]map[int]*point{
			"a1": {
				// Received 300000, 290000, 299000: the median is the last.
				100000: mk(100000, r(300000, 3, 300000, 0, ms(90)), r(300000, 3, 290000, 10000, ms(80)), r(300000, 3, 299000, 1000, ms(100))),
				0:      mk(0, r(2000000, 2, 1500000, 500000, ms(1500))),
			},
			keyAfpacket: {
				100000: mk(100000, r(300000, 3, 300000, 0, ms(60))),
				0:      {Reader: keyAfpacket}, // no runs: left out
			},
		},
		Capacity: map[string][]capacityRun{
			"a1":        {{Frames: 1000, Elapsed: 50 * time.Microsecond}, {Frames: 1000, Elapsed: 40 * time.Microsecond}, {Frames: 1000}},
			keyAfpacket: {{Frames: 1000, Elapsed: 100 * time.Microsecond}},
		},
	}
	var buf bytes.Buffer
	if err := res.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}

	// The names of the fields are the interface: check them as written.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	if got, want := sortedKeys(raw), []string{"baseline_pps", "capacity", "date", "packets", "points", "readers"}; !slices.Equal(got, want) {
		t.Errorf("top-level keys %v, want %v", got, want)
	}
	var pts []map[string]any
	if err := json.Unmarshal(raw["points"], &pts); err != nil || len(pts) == 0 {
		t.Fatalf("points: %v", err)
	}
	if got, want := sortedKeys(pts[0]), []string{"cpu_ns_per_packet", "drops", "loss_pct", "lost", "rate", "reader", "received", "rx_pps", "sent", "sent_pps"}; !slices.Equal(got, want) {
		t.Errorf("point keys %v, want %v", got, want)
	}

	var got report.LiveResults
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Date != "2026-11-22T06:00:00Z" || got.Packets != 123456 || !near(got.BaselinePPS, 1.2e6) {
		t.Errorf("date %q, packets %d, baseline %v", got.Date, got.Packets, got.BaselinePPS)
	}
	if want := []report.LiveReader{{Key: "a1", Name: "tcpsentry pipeline, 1 worker(s)"}, {Key: "b", Name: "gopacket/afpacket"}}; !slices.Equal(got.Readers, want) {
		t.Errorf("readers %+v, want %+v", got.Readers, want)
	}
	wantPts := []report.LivePoint{
		{Reader: "a1", Rate: 100000, Sent: 300000, SentPPS: 100000, Received: 299000, RxPPS: 299000.0 / 3,
			Lost: 1000, LossPct: 100 * 1000.0 / 300000, Drops: 1000, CPUNsPerPacket: 100e6 / 299000.0},
		{Reader: "a1", Rate: 0, Sent: 2000000, SentPPS: 1e6, Received: 1500000, RxPPS: 750000,
			Lost: 500000, LossPct: 25, Drops: 500000, CPUNsPerPacket: 1000},
		{Reader: "b", Rate: 100000, Sent: 300000, SentPPS: 100000, Received: 300000, RxPPS: 100000,
			Lost: 0, LossPct: 0, Drops: 0, CPUNsPerPacket: 200},
	}
	if len(got.Points) != len(wantPts) {
		t.Fatalf("%d points, want %d: %+v", len(got.Points), len(wantPts), got.Points)
	}
	for i, w := range wantPts {
		g := got.Points[i]
		if g.Reader != w.Reader || g.Rate != w.Rate || g.Sent != w.Sent || g.Received != w.Received || g.Lost != w.Lost || g.Drops != w.Drops ||
			!near(g.SentPPS, w.SentPPS) || !near(g.RxPPS, w.RxPPS) || !near(g.LossPct, w.LossPct) || !near(g.CPUNsPerPacket, w.CPUNsPerPacket) {
			t.Errorf("point %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	// a1: 20M and 25M pps timed, one run not (the upper median of two).
	wantCap := []report.LiveCapacity{{Reader: "a1", MedianPPS: 25e6, Runs: 3}, {Reader: "b", MedianPPS: 10e6, Runs: 1}}
	if len(got.Capacity) != len(wantCap) {
		t.Fatalf("capacity %+v, want %+v", got.Capacity, wantCap)
	}
	for i, w := range wantCap {
		if g := got.Capacity[i]; g.Reader != w.Reader || g.Runs != w.Runs || !near(g.MedianPPS, w.MedianPPS) {
			t.Errorf("capacity %d: got %+v, want %+v", i, g, w)
		}
	}

	// The Markdown shows the same numbers.
	var sb strings.Builder
	res.report(&sb)
	md := sb.String()
	for _, p := range got.Points {
		row := fmt.Sprintf("| (%s) | %s | %d | %d | %d |", p.Reader, rateLabel(p.Rate), p.Sent, p.Received, p.Drops)
		cpu := fmt.Sprintf("| %.0f |", p.CPUNsPerPacket)
		if !strings.Contains(md, row) || !strings.Contains(md, cpu) {
			t.Errorf("report lacks %q / %q:\n%s", row, cpu, md)
		}
		if !strings.Contains(md, " "+report.Rate(p.RxPPS)+" | ") {
			t.Errorf("report lacks rx pps %s", report.Rate(p.RxPPS))
		}
	}
	for _, c := range got.Capacity {
		if !strings.Contains(md, " | "+report.Rate(c.MedianPPS)+" | ") {
			t.Errorf("report lacks the capacity median %s of (%s)", report.Rate(c.MedianPPS), c.Reader)
		}
	}
	if t.Failed() {
		t.Logf("JSON:\n%s", buf.String())
	}

	// Nothing measured is still valid JSON, with empty lists, not null.
	empty := &results{Machine: machine{Date: res.Machine.Date}}
	buf.Reset()
	if err := empty.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"readers": []`, `"points": []`, `"capacity": []`} {
		if !strings.Contains(buf.String(), k) {
			t.Errorf("empty results lack %s:\n%s", k, buf.String())
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
