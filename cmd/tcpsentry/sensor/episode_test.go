package sensor

import (
	"strings"
	"testing"
	"time"
)

// TestEpisode: drops every second for three minutes, then quiet, make a
// line when they start, a reminder a minute, and one when they stopped
// episodeQuiet ago: not one line a second.
func TestEpisode(t *testing.T) {
	var e episode
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []string
	for s := 1; s <= 200; s++ {
		n := uint64(0)
		if s >= 5 && s < 185 {
			n = 2
		}
		switch e.update(t0.Add(time.Duration(s)*time.Second), n, 100) {
		case episodeStarted:
			got = append(got, "start")
		case episodeGoesOn:
			dn, pk, in := e.said()
			if dn != 120 || pk != 6000 || in != time.Minute {
				t.Errorf("second %d: reminder of %d drops of %d packets in %v", s, dn, pk, in)
			}
			got = append(got, "on")
		case episodeEnded:
			if s != 194 || e.n != 360 || e.lasted() != 180*time.Second {
				t.Errorf("ended at second %d with %d drops, lasted %v", s, e.n, e.lasted())
			}
			got = append(got, "end")
		}
	}
	if want := "start on on end"; strings.Join(got, " ") != want {
		t.Fatalf("lines %q; want %q", got, want)
	}
	// A new run of drops is a new episode.
	if c := e.update(t0.Add(300*time.Second), 1, 10); c != episodeStarted || e.n != 1 || e.pk != 10 {
		t.Fatalf("second episode: %v %+v", c, e)
	}
}
