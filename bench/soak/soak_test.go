//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestShortSoak runs the soak for 15 s in each mode on a small generated
// capture (1,000 connections, so that even a slow -race run has passes to
// judge) and checks its output: a row per sample, the mode's three checks
// and a verdict, the same in the Markdown report. The goroutine count
// must hold whatever the memory does in so short a run.
func TestShortSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: soaks for 30 s")
	}
	for _, tc := range []struct {
		mode   string
		checks []string
	}{
		{"", []string{"RSS after the first pass: ", "heap in use after the first pass: ", "ok   goroutines after the first pass: "}},
		{"-fresh", []string{"RSS at the end of each replay, freed memory returned: ", "live heap after each replay", "ok   goroutines after each of "}},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "soak.md")
			var stdout bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := []string{"-duration", "15s", "-every", "1s", "-connections", "1000", "-out", out}
			if tc.mode != "" {
				args = append(args, tc.mode)
			}
			flat, err := mainErr(ctx, args, &stdout)
			if err != nil {
				t.Fatal(err)
			}
			text := stdout.String()
			t.Logf("flat %v:\n%s", flat, text)
			rows := regexp.MustCompile(`(?m)^ +\d+s +\d+ +\d+ +[\d.]+ +[\d.]+ +\d+ +\d+$`).FindAllString(text, -1)
			if len(rows) < 12 {
				t.Errorf("%d sample rows in 15 s at one per second", len(rows))
			}
			for _, want := range tc.checks {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			m := regexp.MustCompile(`(?m)^(NOT )?FLAT: (\d+) passes, (\d+) packets in `).FindStringSubmatch(text)
			if m == nil || m[2] == "0" || m[2] == "1" || m[3] == "0" {
				t.Errorf("no verdict line, or fewer than 2 passes: %q", m)
			}
			md, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(md), "| time | passes | packets | RSS MiB |") || strings.Count(string(md), "\n| ") < len(rows)+1 || !strings.Contains(string(md), "FLAT: ") {
				t.Errorf("report:\n%s", md)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{{"-duration", "0"}, {"-every", "-1s"}, {"-workers", "0"}, {"-connections", "1"}, {"extra"}} {
		if _, err := parse(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	c, err := parse(nil, &bytes.Buffer{})
	if err != nil || c.duration != 10*time.Minute || c.every != 10*time.Second || c.workers != 2 {
		t.Errorf("defaults %+v, %v", c, err)
	}
}
