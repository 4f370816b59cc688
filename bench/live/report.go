//go:build linux

package main

import (
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/report"
	"github.com/tcpsentry/tcpsentry/ring"
)

// machine describes where the benchmark ran.
type machine struct {
	report.Host
	Tcpreplay  string
	Tcpdump    string
	SenderCPU  int
	ReaderCPUs []int
	Date       time.Time
}

func readMachine() machine {
	m := machine{Host: report.Describe(), Date: time.Now()}
	m.Tcpreplay = firstLine("tcpreplay", "--version")
	m.Tcpdump = strings.ReplaceAll(firstLines("tcpdump", "--version", 2), "\n", ", ")
	return m
}

func firstLine(cmd ...string) string { return firstLines(cmd[0], cmd[1], 1) }

func firstLines(cmd, arg string, n int) string {
	out, _ := exec.Command(cmd, arg).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// Reader keys: the columns of the table.
const (
	keyTcpdump  = "c"
	keyAfpacket = "b"
)

// report writes the results as Markdown.
func (res *results) report(w io.Writer) {
	cfg, m := res.Config, res.Machine
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Live capture benchmark, %s\n\n", m.Date.Format("2006-01-02"))
	p("Machine: %s, %d CPUs, kernel %s, %s. Sender: %s, pinned to CPU %d; readers start at CPU %d (a second worker shares the sender's CPU). %s.\n\n",
		m.CPU, m.Cores, m.Kernel, m.Go, m.Tcpreplay, m.SenderCPU, m.ReaderCPUs[0], m.Tcpdump)
	t := cfg.Traffic
	p("Traffic: bench/traffic, %d connections (%d concurrent, %.0f%% IPv6, %.0f%% VLAN), %d packets, replayed in a loop from RAM (`tcpreplay --preload-pcap --loop --limit`) onto a veth pair in a private network namespace; readers capture on its other end. Each point sends for about %v (top speed: the %d packets the sender alone sent in that time, %.0f pps), is run %d time(s), and the run with the median received packets/s is shown.\n\n",
		t.Connections, t.Concurrent, 100*t.IPv6Share, 100*t.VLANShare, res.Packets, cfg.Duration, res.TopCount, res.Baseline.PPS(), cfg.Repeat)
	g := cfg.Geometry
	snap := "its default snap length, " + strconv.Itoa(ring.DefaultSnaplen) + " bytes"
	if g.Snaplen > 0 {
		snap = "snap length " + strconv.Itoa(g.Snaplen) + " bytes"
	}
	p("Ring memory of every reader: %d MiB. tcpsentry: %d KiB blocks, %d blocks split over its workers, %s; the others capture whole frames; gopacket/afpacket: one TPACKET_V3 socket, %d × %d KiB blocks, ZeroCopyReadPacketData; tcpdump: `-B %d` (libpcap: 256 KiB blocks), `-w /dev/null`, without `--immediate-mode` (with it libpcap leaves TPACKET_V3 for V2, a slot per frame).\n\n",
		g.bytes()>>20, g.BlockSize>>10, g.Blocks, snap, g.Blocks, g.BlockSize>>10, g.bytes()>>10)

	p("Readers:\n\n")
	for _, s := range res.Readers {
		p("- (%s) %s\n", s.Key, s.Name)
	}
	p("\n## Received packets/s and kernel drops\n\n")
	p("| offered | sent pps |")
	for _, s := range res.Readers {
		p(" (%s) rx pps | (%s) drops |", s.Key, s.Key)
	}
	p("\n|---|---:|")
	for range res.Readers {
		p("---:|---:|")
	}
	p("\n")
	for _, rate := range cfg.Rates {
		p("| %s | %s |", rateLabel(rate), report.Rate(res.sentPPS(rate)))
		for _, s := range res.Readers {
			pt := res.Points[s.Key][rate]
			if pt == nil || len(pt.Runs) == 0 {
				p(" – | – |")
				continue
			}
			r := pt.Median()
			p(" %s | %s |", report.Rate(r.RxPPS()), dropCell(r.Got.Drops, r.Sent.Packets))
		}
		p("\n")
	}
	p("\nrx pps: packets the reader got ÷ the sender's sending time. drops: the kernel's ring drops for that reader (PACKET_STATISTICS; tcpdump's own \"dropped by kernel\"), %% of sent.\n")

	p("\n## Accounting and CPU per packet\n\n")
	p("Loss = sent − received; unaccounted = loss not explained by ring drops, tcpdump's interface drops or the veth's drops (0 means every packet is accounted for). CPU = the reader's user+system time while the point ran ÷ packets received (in-process readers: the whole benchmark process; tcpdump: its /proc/PID/stat, 10 ms ticks). The kernel's copy into the ring runs on the sender's CPU and is in none of them.\n\n")
	p("| reader | offered | sent | received | ring drops | unaccounted | veth drops | CPU ns/pkt | drained in |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range res.Readers {
		for _, rate := range cfg.Rates {
			pt := res.Points[s.Key][rate]
			if pt == nil || len(pt.Runs) == 0 {
				continue
			}
			r := pt.Median()
			p("| (%s) | %s | %d | %d | %d | %d | %d | %.0f | %v |\n", s.Key, rateLabel(rate), r.Sent.Packets, r.Got.Received,
				r.Got.Drops, r.Unaccounted(), r.VethDrops, float64(r.CPU.Nanoseconds())/max(1, float64(r.Got.Received)), r.Drain.Round(10*time.Millisecond))
		}
	}
	if len(res.Capacity) > 0 {
		p("\n## Emptying a full ring\n\n")
		p("The reader's socket is open but not read while the sender puts about half its ring's worth of frames in it; then the reader starts and is timed from its first frames until it has every frame (%d runs, median).", max(cfg.Repeat, cfg.CapacityRepeat))
		p(" This is the packets/s a reader can take, free of the sender's limit. The count-only readers note the times themselves; the pipeline is polled from outside (frames handed to its workers; – when a run could not be timed).\n\n")
		for _, s := range res.Readers {
			if s.NoCapacity != "" {
				p("Not in it: (%s), %s.\n\n", s.Key, s.NoCapacity)
			}
		}
		p("| reader | frames | median pps | runs (pps) | vs (b) |\n|---|---:|---:|---|---:|\n")
		base := median(res.Capacity[keyAfpacket])
		for _, s := range res.Readers {
			cs := res.Capacity[s.Key]
			if len(cs) == 0 {
				continue
			}
			var all []string
			for _, c := range cs {
				if c.Elapsed > 0 {
					all = append(all, report.Rate(c.PPS()))
				} else {
					all = append(all, "–")
				}
			}
			md := median(cs)
			mds, ratio := "–", "–"
			if md > 0 {
				mds = report.Rate(md)
			}
			if base > 0 && md > 0 {
				ratio = fmt.Sprintf("%.2f×", md/base)
			}
			p("| (%s) %s | %d | %s | %s | %s |\n", s.Key, s.Name, cs[0].Frames, mds, strings.Join(all, ", "), ratio)
		}
	}
	p("\n## Goals\n\n")
	for _, line := range res.goals() {
		p("- %s\n", line)
	}
}

// sentPPS is the median sending rate over every reader's runs at rate.
func (res *results) sentPPS(rate int) float64 {
	var v []float64
	for _, s := range res.Readers {
		if pt := res.Points[s.Key][rate]; pt != nil {
			for _, r := range pt.Runs {
				v = append(v, r.Sent.PPS())
			}
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// median is the median rate of the runs that were timed (0 if none).
func median(cs []capacityRun) float64 {
	var v []float64
	for _, c := range cs {
		if c.Elapsed > 0 {
			v = append(v, c.PPS())
		}
	}
	return report.Median(v)
}

func dropCell(drops, sent uint64) string {
	if sent == 0 {
		return fmt.Sprint(drops)
	}
	return fmt.Sprintf("%d (%.2f%%)", drops, 100*float64(drops)/float64(sent))
}

// lossFrac is the share of sent packets a run did not receive.
func lossFrac(r run) float64 {
	if r.Sent.Packets == 0 {
		return 0
	}
	return float64(r.Lost()) / float64(r.Sent.Packets)
}

// goals says whether the goals hold, with the numbers.
func (res *results) goals() []string {
	var out []string
	var pipes, counts []readerSpec
	for _, s := range res.Readers {
		switch {
		case strings.HasPrefix(s.Key, "a'"):
			counts = append(counts, s)
		case strings.HasPrefix(s.Key, "a"):
			pipes = append(pipes, s)
		}
	}
	get := func(key string, rate int) (run, bool) {
		pt := res.Points[key][rate]
		if pt == nil || len(pt.Runs) == 0 {
			return run{}, false
		}
		return pt.Median(), true
	}
	for _, a := range pipes {
		var bad []string
		checked := 0
		for _, rate := range res.Config.Rates {
			ra, ok := get(a.Key, rate)
			if !ok {
				continue
			}
			for _, peer := range []string{keyAfpacket, keyTcpdump} {
				rp, ok := get(peer, rate)
				if !ok {
					continue
				}
				checked++
				if lossFrac(ra) > lossFrac(rp) {
					bad = append(bad, fmt.Sprintf("%s: (%s) lost %.3f%%, (%s) %.3f%%", rateLabel(rate), a.Key, 100*lossFrac(ra), peer, 100*lossFrac(rp)))
				}
			}
		}
		// The median hides a bad run: name every run that lost packets
		// while no run of a peer did.
		var worst []string
		for _, rate := range res.Config.Rates {
			pa := res.Points[a.Key][rate]
			if pa == nil {
				continue
			}
			peersLost := false
			for _, peer := range []string{keyAfpacket, keyTcpdump} {
				if pp := res.Points[peer][rate]; pp != nil {
					for _, r := range pp.Runs {
						peersLost = peersLost || r.Lost() > 0
					}
				}
			}
			for i, r := range pa.Runs {
				if r.Lost() > 0 && !peersLost {
					worst = append(worst, fmt.Sprintf("run %d at %s lost %d (%.2f%%)", i+1, rateLabel(rate), r.Lost(), 100*lossFrac(r)))
				}
			}
		}
		switch {
		case checked == 0:
			out = append(out, fmt.Sprintf("(%s) loses no more than (b) and (c): not measured (no peer reader in this run).", a.Key))
		case len(bad) == 0:
			out = append(out, fmt.Sprintf("(%s) loses no more than (b) and (c) at every rate: **holds** (%d comparisons).", a.Key, checked))
		default:
			out = append(out, fmt.Sprintf("(%s) loses no more than (b) and (c) at every rate: **does not hold**: %s.", a.Key, strings.Join(bad, "; ")))
		}
		if len(worst) > 0 {
			out = append(out, fmt.Sprintf("(%s), single runs: %s, where no run of (b) or (c) lost any.", a.Key, strings.Join(worst, "; ")))
		}
	}
	rb, okb := get(keyAfpacket, 0)
	for _, c := range counts {
		rc, okc := get(c.Key, 0)
		if !okb || !okc {
			continue
		}
		ratio := rc.RxPPS() / max(1, rb.RxPPS())
		verdict := "**holds**"
		if ratio < 1.5 {
			verdict = "**does not hold**"
			if rb.Lost() == 0 && rc.Lost() == 0 {
				verdict = "**not shown by this sender**: both got every packet the sender managed to send, so the ratio is the sender's"
			}
		}
		line := fmt.Sprintf("(%s)/(b) received packets/s at top speed: %s / %s = %.2f× (goal ≥ 1.5×): %s.", c.Key, report.Rate(rc.RxPPS()), report.Rate(rb.RxPPS()), ratio, verdict)
		if cb, cc := median(res.Capacity[keyAfpacket]), median(res.Capacity[c.Key]); cb > 0 && cc > 0 {
			v := "**holds**"
			if cc/cb < 1.5 {
				v = "**does not hold**"
			}
			line += fmt.Sprintf(" Emptying a full ring: %s / %s = %.2f×: %s.", report.Rate(cc), report.Rate(cb), cc/cb, v)
		}
		out = append(out, line)
	}
	return out
}
