package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/ring"
)

func workerSnap(packets, bytes, lost uint64, active, capacity int) sensor.WorkerSnapshot {
	w := sensor.WorkerSnapshot{Flows: flowtable.Stats{Active: active}, FlowsCapacity: capacity, EventsLost: lost}
	w.Packets, w.Bytes = packets, bytes
	return w
}

// TestStatusBetween: the status line is computed from two snapshots:
// totals from the second, rates and drops from the difference, drops
// named per interface only where there were some.
func TestStatusBetween(t *testing.T) {
	prev := sensor.Snapshot{
		Running:    true,
		Interfaces: []string{"eth1", "eth2"},
		Workers:    []sensor.WorkerSnapshot{workerSnap(1000, 100_000, 1, 10, 500), workerSnap(3000, 300_000, 0, 20, 500)},
		Kernel:     []ring.IfaceStats{{Packets: 4000, Drops: 5}, {Packets: 10, Drops: 0}},
	}
	prev.Events[detectors.TypeConnectionRefused] = 7
	cur := prev
	cur.Workers = []sensor.WorkerSnapshot{workerSnap(61_000, 6_100_000, 4, 30, 500), workerSnap(63_000, 6_300_000, 0, 5, 500)}
	cur.Kernel = []ring.IfaceStats{{Packets: 130_000, Drops: 17}, {Packets: 20, Drops: 0}}
	cur.Events = [detectors.NumTypes]uint64{}
	cur.Events[detectors.TypeConnectionRefused] = 27
	cur.Events[detectors.TypeSynUnanswered] = 2

	s := statusBetween(&prev, &cur, time.Minute)
	var b bytes.Buffer
	newLogger(logText, slog.LevelInfo, &b).Info("status", s.args()...)
	want := "tcpsentry: status packets=124000 pps=2000 bytes_per_s=200000 kernel_drops=12 kernel_drops_on.eth1=12 flows=35 flows_capacity=1000 events=29 events_per_s=0.37 events_lost=3\n"
	if b.String() != want {
		t.Errorf("got  %swant %s", b.String(), want)
	}

	// The first line counts from the start (the zero Snapshot), and a
	// sensor not started yet gives zeros, not a panic.
	var zero sensor.Snapshot
	s = statusBetween(&zero, &prev, 2*time.Second)
	if s.packets != 4000 || s.pps != 2000 || s.drops != 5 || s.events != 7 || s.eventsPerSec != 3.5 {
		t.Errorf("from the start: %+v", s)
	}
	if s = statusBetween(&zero, &zero, 0); s.packets != 0 || s.pps != 0 || len(s.dropsOn) != 0 {
		t.Errorf("before the start: %+v", s)
	}
}

// TestRunStatusLog: `tcpsentry run -i lo --log-format json` logs JSON
// lines (time, level, msg, attributes) and, with --status-interval
// 200ms, status lines whose packet count rises with the traffic.
func TestRunStatusLog(t *testing.T) {
	needRoot(t)
	p := startRun(t, "-i", "lo", "--workers", "2", "--log-format", "json", "--status-interval", "200ms", "--filter", "tcp port 7217")
	type rec struct {
		Time        time.Time
		Level, Msg  string
		Packets     *uint64
		PPS         *float64
		Flows       *int
		Capacity    *int     `json:"flows_capacity"`
		EventsPerS  *float64 `json:"events_per_s"`
		KernelDrops *uint64  `json:"kernel_drops"`
	}
	parse := func() (all []rec, status []rec) {
		t.Helper()
		for _, l := range strings.Split(strings.TrimSpace(p.Stderr()), "\n") {
			var r rec
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.Time.IsZero() || r.Level == "" || r.Msg == "" {
				t.Fatalf("not a JSON log line (%v): %s", err, l)
			}
			all = append(all, r)
			if r.Msg == "status" {
				if r.Packets == nil || r.PPS == nil || r.Flows == nil || r.Capacity == nil || r.EventsPerS == nil || r.KernelDrops == nil {
					t.Fatalf("status line lacks attributes: %s", l)
				}
				status = append(status, r)
			}
		}
		return all, status
	}
	waitStatus := func(n int) []rec {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, st := parse(); len(st) >= n {
				return st
			}
		}
		t.Fatalf("fewer than %d status lines in 10 s:\n%s", n, p.Stderr())
		return nil
	}
	before := waitStatus(1)
	for range 3 {
		refuse(t, 7217)
	}
	if !p.waitOutput(`"port":7217`) {
		t.Fatalf("no event about port 7217:\n%s", p.Stderr())
	}
	after := waitStatus(len(before) + 3)
	first, last := *after[0].Packets, *after[len(after)-1].Packets
	for i := 1; i < len(after); i++ {
		if *after[i].Packets < *after[i-1].Packets {
			t.Fatalf("packet count went down: %d then %d", *after[i-1].Packets, *after[i].Packets)
		}
	}
	if last < first+6 || *after[len(after)-1].Capacity != 1_000_000 {
		t.Fatalf("packets %d -> %d over the status lines (3 refused connections are 6); capacity %d:\n%s", first, last, *after[len(after)-1].Capacity, p.Stderr())
	}
	all, _ := parse()
	if all[len(all)-1].Level != "INFO" || !slices.ContainsFunc(all, func(r rec) bool { return r.Msg == "capturing" }) {
		t.Errorf("no capturing line:\n%s", p.Stderr())
	}
	t.Logf("a status line: %s", lastLine(p.Stderr(), `"msg":"status"`))
	stopClean(t, p)
}

// lastLine is the last line of s that contains sub.
func lastLine(s, sub string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = l
		}
	}
	return out
}
