//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sent is what tcpreplay reports for one run.
type sent struct {
	Packets uint64        // "Successful packets"
	Failed  uint64        // "Failed packets"
	Retried uint64        // ENOBUFS/EAGAIN retries (the frame was sent again)
	Elapsed time.Duration // "sent in X seconds"
}

// PPS is the rate tcpreplay achieved.
func (s sent) PPS() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Packets) / s.Elapsed.Seconds()
}

// sender replays the lab's pcap onto inj0 with tcpreplay, pinned to one
// CPU, from RAM (--preload-pcap), looping the file as often as needed.
type sender struct {
	lab *lab
	cpu int
}

// send sends count packets at pps packets/s (0: --topspeed), or, when
// count is 0, for duration d at top speed (the calibration).
func (s *sender) send(ctx context.Context, pps int, count int64, d time.Duration) (sent, error) {
	args := []string{"ip", "netns", "exec", s.lab.ns, "taskset", "-c", strconv.Itoa(s.cpu),
		"tcpreplay", "-i", injIface, "--preload-pcap", "--no-flow-stats"}
	if pps > 0 {
		args = append(args, "--pps="+strconv.Itoa(pps))
	} else {
		args = append(args, "--topspeed")
	}
	if count > 0 {
		loops := (count + int64(s.lab.pkts) - 1) / int64(s.lab.pkts)
		args = append(args, "--loop="+strconv.FormatInt(loops, 10), "--limit="+strconv.FormatInt(count, 10))
	} else {
		secs := max(1, int(d.Round(time.Second)/time.Second))
		args = append(args, "--loop=0", "--duration="+strconv.Itoa(secs))
	}
	args = append(args, s.lab.pcap)
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return sent{}, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r, err := parseTcpreplay(string(out))
	if err != nil {
		return sent{}, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return r, nil
}

var (
	reActual     = regexp.MustCompile(`Actual: (\d+) packets \(\d+ bytes\) sent in ([0-9.]+) seconds`)
	reSuccessful = regexp.MustCompile(`Successful packets:\s+(\d+)`)
	reFailed     = regexp.MustCompile(`Failed packets:\s+(\d+)`)
	reRetried    = regexp.MustCompile(`Retried packets \([A-Z]+\):\s+(\d+)`)
)

// parseTcpreplay reads tcpreplay's closing statistics.
func parseTcpreplay(out string) (sent, error) {
	var r sent
	m := reActual.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no %q line in tcpreplay's output", "Actual:")
	}
	secs, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return r, err
	}
	r.Elapsed = time.Duration(secs * float64(time.Second))
	m = reSuccessful.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no %q line in tcpreplay's output", "Successful packets:")
	}
	r.Packets, _ = strconv.ParseUint(m[1], 10, 64)
	if m = reFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseUint(m[1], 10, 64)
	}
	for _, m := range reRetried.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		r.Retried += n
	}
	return r, nil
}
