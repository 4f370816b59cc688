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

// TestShortSoak runs the soak for 20 s on a small generated capture
// (1,000 connections, so that even a slow -race run has replays to judge)
// and checks its output: a row per sample, the three checks and a
// verdict, the same in the Markdown report. A replay ends with as many
// goroutines as the one before it, whatever the memory does in so short
// a run.
func TestShortSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: soaks for 20 s")
	}
	out := filepath.Join(t.TempDir(), "soak.md")
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flat, err := mainErr(ctx, []string{"-duration", "20s", "-every", "2s", "-connections", "1000", "-out", out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	text := stdout.String()
	t.Logf("flat %v:\n%s", flat, text)
	rows := regexp.MustCompile(`(?m)^ +\d+s +\d+ +\d+ +[\d.]+ +[\d.]+ +\d+ +\d+$`).FindAllString(text, -1)
	if len(rows) < 9 {
		t.Errorf("%d sample rows in 20 s at one per 2 s", len(rows))
	}
	for _, want := range []string{"RSS after the first replay: ", "live heap after each replay", "ok   goroutines after each of "} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^(NOT )?FLAT: \d+ replays, \d+ packets in `).MatchString(text) {
		t.Error("no verdict line")
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| time | replays | packets | RSS MiB |") || strings.Count(string(md), "\n| ") < len(rows)+1 || !strings.Contains(string(md), "FLAT: ") {
		t.Errorf("report:\n%s", md)
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
