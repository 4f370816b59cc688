package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRenderProgress: the replay's progress line for fixed figures.
func TestRenderProgress(t *testing.T) {
	for _, c := range []struct {
		read, total int64
		packets     uint64
		elapsed     time.Duration
		cols        int
		want        string
	}{
		{25 << 20, 100 << 20, 3_000_000, 2 * time.Second, 0,
			"[=====>              ]  25%  25.0 MiB / 100.0 MiB  1500000 packets/s  ETA 0:06"},
		{100 << 20, 100 << 20, 9_000_000, 6 * time.Second, 0,
			"[====================] 100%  100.0 MiB / 100.0 MiB  1500000 packets/s  ETA 0:00"},
		{1 << 30, 600 << 30, 1000, 20 * time.Second, 0,
			"[>                   ]   0%  1.0 GiB / 600.0 GiB  50 packets/s  ETA 3:19:40"},
		{0, 4096, 0, 0, 0,
			"[>                   ]   0%  0 B / 4.0 KiB  0 packets/s  ETA --:--"},
		{3 << 20, 0, 500, time.Second / 2, 0, // a pipe: size unknown
			"3.0 MiB read  1000 packets/s"},
		{25 << 20, 100 << 20, 3_000_000, 2 * time.Second, 41, // cut to the terminal
			"[=====>              ]  25%  25.0 MiB / "},
	} {
		if got := renderProgress(c.read, c.total, c.packets, c.elapsed, c.cols); got != c.want {
			t.Errorf("renderProgress(%d, %d, %d, %v, %d)\n got %q\nwant %q", c.read, c.total, c.packets, c.elapsed, c.cols, got, c.want)
		}
	}
}

// TestReplayNoProgressOnPipe: with stderr a pipe, as in scripts and CI, a
// replay draws no progress line: stderr holds the summary and no '\r'.
func TestReplayNoProgressOnPipe(t *testing.T) {
	cmd := exec.Command(os.Args[0], "replay", "--workers", "2", "../../testdata/refused_rate.pcap")
	cmd.Env = append(os.Environ(), asCommand+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if strings.ContainsAny(stderr.String(), "\r\x1b") || !strings.HasPrefix(stderr.String(), "tcpsentry replay ../../testdata/refused_rate.pcap\n") {
		t.Fatalf("stderr:\n%q", stderr.String())
	}
	if stdout.Len() == 0 {
		t.Fatal("no events on stdout")
	}
}
