//go:build abtest

package sensor

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestABAlternates: with TCPSENTRY_AB set, a replay alternates the two
// ways batch by batch, reports both, and finds what a replay without the
// harness finds.
func TestABAlternates(t *testing.T) {
	replay := func() Summary { return replayTestdata(t, "clean_many.pcap.gz", Config{Workers: 1}) }
	var out bytes.Buffer
	abOut = &out
	defer func() { abOut = os.Stderr }()
	t.Setenv("TCPSENTRY_AB", "")
	want := replay()
	if out.Len() != 0 {
		t.Fatalf("without TCPSENTRY_AB: %q", out.String())
	}
	t.Setenv("TCPSENTRY_AB", "noindex")
	got := replay()
	if got.Events != want.Events || got.Packets != want.Packets {
		t.Errorf("with the harness: %d packets, events %v; without: %d, %v", got.Packets, got.Events, want.Packets, want.Events)
	}
	for _, re := range []string{`ab: A \(group by group\): [1-9][0-9]* batches, median`, `ab: B \(noindex\): [1-9][0-9]* batches, median`, `ab: B ÷ A, medians: `} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("report lacks %q:\n%s", re, out.String())
		}
	}
	out.Reset()
	t.Setenv("TCPSENTRY_AB", "nonesuch")
	if replay(); !bytes.Contains(out.Bytes(), []byte(`TCPSENTRY_AB="nonesuch": not a variant`)) {
		t.Errorf("an unknown variant: %q", out.String())
	}
}
