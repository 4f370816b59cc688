//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLiveBenchSmoke runs the quick mode end to end: every reader, one
// second at 5,000 packets/s, where nothing should drop. It checks the
// structure of the results and exact accounting (received == sent ==
// the kernel's count, no drops), never speed.
func TestLiveBenchSmoke(t *testing.T) {
	if err := checkTools(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the live benchmark's smoke test: %v", err)
		}
		t.Skipf("skipping the live benchmark: %v", err)
	}
	cfg := quickConfig(defaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	want := []string{"a1", "a2", "a'1", "a'2", keyAfpacket, keyTcpdump}
	readers := defaultReaders(cfg)
	res, err := runBench(ctx, cfg, readers)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err != nil {
		t.Fatal(err)
	} else if strings.Contains(string(out), res.Netns) {
		t.Errorf("namespace %s is still there", res.Netns)
	}

	if len(res.Readers) != len(want) {
		t.Fatalf("%d readers, want %d (%v)", len(res.Readers), len(want), want)
	}
	const rate, sentWant = 5000, 5000
	for i, s := range res.Readers {
		if s.Key != want[i] {
			t.Errorf("reader %d is (%s), want (%s)", i, s.Key, want[i])
		}
		pt := res.Points[s.Key][rate]
		if pt == nil || len(pt.Runs) != 1 {
			t.Errorf("(%s): point %+v, want one run at %d pps", s.Key, pt, rate)
			continue
		}
		r := pt.Runs[0]
		if r.Sent.Packets != sentWant || r.Sent.Failed != 0 {
			t.Errorf("(%s): tcpreplay sent %d (%d failed), want %d", s.Key, r.Sent.Packets, r.Sent.Failed, sentWant)
		}
		if r.Got.Received != r.Sent.Packets || r.Got.Kernel != r.Sent.Packets || r.Got.Drops != 0 || r.Got.IfDrops != 0 || r.VethDrops != 0 {
			t.Errorf("(%s): sent %d, got %+v, veth drops %d; want everything received, nothing dropped", s.Key, r.Sent.Packets, r.Got, r.VethDrops)
		}
		if r.Unaccounted() != 0 {
			t.Errorf("(%s): %d packets unaccounted for", s.Key, r.Unaccounted())
		}
	}

	var sb strings.Builder
	res.report(&sb)
	md := sb.String()
	must := []string{"| offered | sent pps |", "| 5000 pps |", res.Machine.Kernel, "## Goals"}
	if !raceEnabled {
		must = append(must, "(a1) loses no more than (b) and (c) at every rate: **holds**")
	}
	for _, s := range must {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q:\n%s", s, md)
		}
	}
	for _, s := range res.Readers {
		if !strings.Contains(md, "("+s.Key+") rx pps") {
			t.Errorf("report lacks the column of (%s)", s.Key)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

func TestParseRates(t *testing.T) {
	got, err := parseRates("50k, 200000,1.5m,top")
	if err != nil {
		t.Fatal(err)
	}
	want := []int{50000, 200000, 1500000, 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", "fast", "-5k", "0"} {
		if _, err := parseRates(bad); err == nil {
			t.Errorf("parseRates(%q) is not an error", bad)
		}
	}
}

func TestParseTcpreplay(t *testing.T) {
	out := `Actual: 300000 packets (33000000 bytes) sent in 2.99 seconds
Rated: 11036789.2 Bps, 88.29 Mbps, 100334.44 pps
Statistics for network device: inj0
	Successful packets:        299990
	Failed packets:            10
	Truncated packets:         0
	Retried packets (ENOBUFS): 3
	Retried packets (EAGAIN):  4
`
	got, err := parseTcpreplay(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Packets != 299990 || got.Failed != 10 || got.Retried != 7 || got.Elapsed != 2990*time.Millisecond {
		t.Fatalf("got %+v", got)
	}
	if _, err := parseTcpreplay("tcpreplay: error"); err == nil {
		t.Fatal("no error for output without statistics")
	}
}

// TestGoals checks the verdicts on made-up results: the median run
// decides, a single bad run is still named, and a ratio the sender
// capped is not passed off as the ring's.
func TestGoals(t *testing.T) {
	mk := func(sent uint64, secs float64, got ...uint64) *point {
		p := &point{}
		for _, g := range got {
			p.Runs = append(p.Runs, run{Sent: sentIn(sent, secs), Got: counts{Received: g, Kernel: sent, Drops: sent - g}})
		}
		return p
	}
	res := &results{
		Config:  config{Rates: []int{100000, 0}},
		Readers: []readerSpec{{Key: "a2"}, {Key: "a'1"}, {Key: keyAfpacket}, {Key: keyTcpdump}},
		Points: map[string]map[int]*point{
			"a2":        {100000: mk(300000, 3, 300000, 300000, 300000), 0: mk(2000000, 3, 2000000, 1990000, 2000000)},
			"a'1":       {100000: mk(300000, 3, 300000, 300000, 300000), 0: mk(2000000, 3, 2000000, 2000000, 2000000)},
			keyAfpacket: {100000: mk(300000, 3, 300000, 300000, 300000), 0: mk(2000000, 3, 2000000, 2000000, 2000000)},
			keyTcpdump:  {100000: mk(300000, 3, 300000, 300000, 300000), 0: mk(2000000, 3, 2000000, 2000000, 2000000)},
		},
		Capacity: map[string][]capacityRun{
			"a'1":       {{Frames: 1000, Elapsed: 50 * time.Microsecond}, {Frames: 1000, Elapsed: 40 * time.Microsecond}, {Frames: 1000}},
			keyAfpacket: {{Frames: 1000, Elapsed: 100 * time.Microsecond}},
		},
	}
	got := strings.Join(res.goals(), "\n")
	for _, want := range []string{
		"(a2) loses no more than (b) and (c) at every rate: **holds** (4 comparisons)",
		"(a2), single runs: run 2 at top speed lost 10000 (0.50%)",
		"(a'1)/(b) received packets/s at top speed: 666.7k / 666.7k = 1.00× (goal ≥ 1.5×): **not shown by this sender**",
		"Emptying a full ring: 25.00M / 10.00M = 2.50×: **holds**",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("goals lack %q:\n%s", want, got)
		}
	}
}

func sentIn(n uint64, secs float64) sent {
	return sent{Packets: n, Elapsed: time.Duration(secs * float64(time.Second))}
}
