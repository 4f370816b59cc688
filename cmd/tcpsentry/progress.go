package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// progressEvery is how often the replay's progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// countingReader counts the bytes read from a file for the progress line.
// The replay reads through a large buffer, so this is one atomic add per
// buffer fill, not per packet.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progressTerminal is the terminal to draw the progress line on, with its
// width: stderr when it is one, unless the events go to the same
// terminal (stdout), where the line would be torn by them.
func progressTerminal(stderr, events io.Writer) (*os.File, int, bool) {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil, 0, false
	}
	cols, tty := ttyColumns(f)
	if !tty {
		return nil, 0, false
	}
	if o, ok := events.(*os.File); ok {
		if _, tty := ttyColumns(o); tty {
			return nil, 0, false
		}
	}
	return f, cols, true
}

// showProgress redraws the progress line on w every progressEvery until
// done is closed, then clears it; it returns when the line is gone.
func showProgress(w io.Writer, cols int, read *atomic.Int64, total int64, obs *sensor.Observer, done <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	start := time.Now()
	drawn := false
	for {
		select {
		case <-done:
			if drawn {
				fmt.Fprint(w, "\r\x1b[K")
			}
			return
		case <-tick.C:
		}
		var packets uint64
		for _, ws := range obs.Snapshot().Workers {
			packets += ws.Packets
		}
		fmt.Fprintf(w, "\r%s\x1b[K", renderProgress(read.Load(), total, packets, time.Since(start), cols))
		drawn = true
	}
}

// renderProgress is the progress line: a bar, the share and bytes read
// of total (0: unknown, as for a pipe), packets/s and the time left at
// the average rate so far, cut to cols (0: no limit) so it never wraps.
func renderProgress(read, total int64, packets uint64, elapsed time.Duration, cols int) string {
	var b strings.Builder
	secs := elapsed.Seconds()
	pps := 0.0
	if secs > 0 {
		pps = float64(packets) / secs
	}
	if total > 0 {
		const width = 20
		frac := min(1, max(0, float64(read)/float64(total)))
		full := int(frac * width)
		b.WriteByte('[')
		b.WriteString(strings.Repeat("=", full))
		if full < width {
			b.WriteByte('>')
			b.WriteString(strings.Repeat(" ", width-full-1))
		}
		fmt.Fprintf(&b, "] %3.0f%%  %s / %s  %.0f packets/s", 100*frac, bytesHuman(uint64(read)), bytesHuman(uint64(total)), pps)
		if read > 0 && secs > 0 {
			left := time.Duration(float64(total-read) / (float64(read) / secs) * float64(time.Second))
			fmt.Fprintf(&b, "  ETA %s", clock(max(0, left)))
		} else {
			b.WriteString("  ETA --:--")
		}
	} else {
		fmt.Fprintf(&b, "%s read  %.0f packets/s", bytesHuman(uint64(read)), pps)
	}
	s := b.String()
	if cols > 1 && len(s) > cols-1 {
		s = s[:cols-1] // ASCII only; the last column would wrap on some terminals
	}
	return s
}

// clock writes d as m:ss, or h:mm:ss from an hour.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
