package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/ring"
)

func TestHandOver(t *testing.T) {
	// Before run, which pins this goroutine's thread.
	cpus, cerr := ring.CPUs()
	var out bytes.Buffer
	err := run([]string{"-n", "20000", "-samples", "2", "-every", "0"}, &out)
	if cerr != nil || len(cpus) < 2 {
		// One CPU (or no affinity API): a clear error, not a hang.
		if err == nil {
			t.Fatalf("with CPUs %v (%v): no error, output %q", cpus, cerr, out.String())
		}
		t.Logf("one CPU here: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\d\d:\d\d:\d\d CPU \d+ <-> CPU \d+: \d+\.\d ns a hand-over$`)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %q", len(lines), out.String())
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("line %q does not match %v", l, re)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-cpus", "0"}, {"-cpus", "1,1"}, {"-cpus", "a,b"}, {"-n", "1"}, {"-samples", "0"}, {"extra"},
		{"-cpus", "0,100000"}, // not a CPU this process may use
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("%q: no error", args)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error of more than one line: %q", args, err)
		}
	}
}
