//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/tcpsentry/tcpsentry/bench/report"
)

// Goals of the issue, as ratios measured in the same run.
const (
	goalJetStream = 0.8 // publisher ≥ 0.8 × raw JetStream async publish
	goalCore      = 0.5 // publisher ≥ 0.5 × raw core publish
	goalReplay    = 0.9 // replay with events to NATS within 10% of without
)

// report writes the results as Markdown.
func (res *results) report(w io.Writer) {
	cfg, h := res.Config, res.Host
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Event path benchmark, %s\n\n", res.Date.Format("2006-01-02"))
	p("Machine: %s, %d CPUs, Linux %s, %s. Broker: nats-server embedded in the benchmark process (JetStream, file storage, fresh directory per run); the publish runs reach it over TCP on loopback.\n\n", h.CPU, h.Cores, h.Kernel, h.Go)
	p("Reproduce: `go run ./bench/events -n %d -repeat %d -connections %d -refused %s -out bench/results` (median of %d runs; min–max beside it; a ratio to the events-discarded replay is the median of the ratios within each round, whose runs follow each other).\n\n",
		cfg.Messages, cfg.Repeat, cfg.Traffic.Connections, shares(cfg.Refused), cfg.Repeat)

	p("## Publishing to NATS\n\n")
	p("%d events of %d bytes, each with a unique id (`Nats-Msg-Id`), to a fresh broker; msgs/s from the first publish until the last is acknowledged (JetStream) or flushed (core). The raw rows are minimal nats.go programs, the ceilings; JetStream runs check that the stream holds every event.\n\n", cfg.Messages, res.RecordSize)
	p("| path | msgs/s | min – max | vs ceiling |\n|---|---:|---:|---:|\n")
	for k := range numPublish {
		ratio := "ceiling"
		switch k {
		case ourJetStream:
			ratio = fmt.Sprintf("%.2f×", report.Median(res.Publish[k])/report.Median(res.Publish[rawJetStream]))
		case ourCore:
			ratio = fmt.Sprintf("%.2f×", report.Median(res.Publish[k])/report.Median(res.Publish[rawCore]))
		}
		p("| %s | %s | %s | %s |\n", publishNames[k], report.Rate(report.Median(res.Publish[k])), spread(res.Publish[k]), ratio)
	}

	p("\n## Replay with and without a heavy event load\n\n")
	p("Traffic from bench/traffic, read from memory: %d connections (%d open at once, 10%% IPv6, 10%% VLAN-tagged), each a handshake, a request, a response of 200 B to 20 kB and a FIN close; %d packets and no events. In the loads below a share of the connections is refused instead, each on a port of its own: one connection_refused event each. %d worker; packets/s until every event was written (to NATS: acknowledged or flushed), with exact packet and event counts checked (and, for JetStream, the events stored). NATS rows without \"in another process\" reach a broker embedded in this process without a socket, as `tcpsentry run` reaches its embedded broker; the \"in another process\" rows reach a broker the benchmark starts as a second process (itself, re-executed), over TCP on loopback, as `tcpsentry replay --nats` reaches a running sensor's broker on the same machine. CPU is this process's per packet (the broker's included: its goroutines, or its process); the last column is the CPU each event costs beyond the events-discarded run.\n\n",
		cfg.Traffic.Connections, cfg.Traffic.Concurrent, res.CleanPackets, cfg.Workers)
	p("| traffic | events | replay | packets/s | min – max | events/s | vs events discarded | min – max | CPU ns/packet | CPU µs/event beyond discarded |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	p("| no refusals | 0 | %s | %s | %s | 0 | — | | | |\n", replayNames[replayClean], report.Rate(report.Median(res.Clean)), spread(res.Clean))
	for _, l := range res.Loads {
		for k := replayDiscard; k < numReplay; k++ {
			pps, cpu := report.Median(l.Replay[k]), report.Median(l.CPU[k])
			extra := "—"
			if k != replayDiscard && l.Events > 0 {
				extra = fmt.Sprintf("%.1f", (cpu-report.Median(l.CPU[replayDiscard]))*float64(l.Packets)/float64(l.Events)/1000)
			}
			ratio, lo, hi := l.paired(k)
			ratioSpread := "—"
			if k != replayDiscard {
				ratioSpread = fmt.Sprintf("%.2f – %.2f", lo, hi)
			}
			p("| %g%% refused, %d packets | %d (1 per %d packets) | %s | %s | %s | %s | %.2f× | %s | %.0f | %s |\n", 100*l.Share, l.Packets, l.Events, l.Packets/max(l.Events, 1),
				replayNames[k], report.Rate(pps), spread(l.Replay[k]), report.Rate(pps*float64(l.Events)/float64(l.Packets)), ratio, ratioSpread, cpu, extra)
		}
	}

	p("\n## Goals\n\n")
	check := func(name string, got, goal float64) {
		verdict := "met"
		if got < goal {
			verdict = "**not met**"
		}
		p("- %s: %.2f× (goal ≥ %.2f×): %s\n", name, got, goal, verdict)
	}
	check("publisher vs raw JetStream async publish", report.Median(res.Publish[ourJetStream])/report.Median(res.Publish[rawJetStream]), goalJetStream)
	check("publisher vs raw core publish", report.Median(res.Publish[ourCore])/report.Median(res.Publish[rawCore]), goalCore)
	for _, l := range res.Loads {
		for k := replayJetStream; k < numReplay; k++ {
			ratio, _, _ := l.paired(k)
			check(fmt.Sprintf("replay packets/s with %g%% refused, %s vs discarded", 100*l.Share, replayNames[k][len("refusals, "):]),
				ratio, goalReplay)
		}
	}
}

// paired returns the median and range over the rounds of case k's
// packets/s divided by the events-discarded run of the same round. The two
// runs of a round follow each other, so the ratio is less at the mercy of
// this VM's drift in speed than a ratio of medians taken minutes apart.
func (l *load) paired(k int) (median, lo, hi float64) {
	var r []float64
	for i, v := range l.Replay[k] {
		if i < len(l.Replay[replayDiscard]) {
			r = append(r, v/l.Replay[replayDiscard][i])
		}
	}
	if len(r) == 0 {
		return 0, 0, 0
	}
	return report.Median(r), slices.Min(r), slices.Max(r)
}

func spread(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	return report.Rate(slices.Min(v)) + " – " + report.Rate(slices.Max(v))
}

func shares(v []float64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatFloat(x, 'g', -1, 64)
	}
	return s
}
