package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/workload"
)

func TestGenWritesCaptureAndTruth(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "w.pcapng")
	if err := run([]string{"-o", out, "-connections", "200", "-concurrent", "20", "-anomaly-rate", "0.01", "-kinds", "refused,rst_storm"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Errorf("%s is not pcapng", out)
	}
	f, err := os.Open(filepath.Join(dir, "w.truth.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	truth, err := workload.ReadTruth(f)
	if err != nil {
		t.Fatal(err)
	}
	// 2 refused instances (one event each) and 2 storms (one aggregate).
	n := map[string]int{}
	for _, x := range truth {
		n[x.Type]++
	}
	if len(truth) != 4 || n["connection_refused"] != 2 || n["rst_storm"] != 2 {
		t.Errorf("truth %v", n)
	}
}

func TestGenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "-o FILE is required"},
		{[]string{"-o", filepath.Join(dir, "x.pcap"), "-kinds", "refused,bogus"}, `unknown kind "bogus"`},
		{[]string{"-o", filepath.Join(dir, "x.pcap"), "-format", "erf"}, `-format "erf"`},
		{[]string{"-o", filepath.Join(dir, "x.pcap"), "-concurrent", "0"}, "concurrent must be ≥ 1"},
		{[]string{"-o", filepath.Join(dir, "no", "such", "x.pcap")}, "no such file or directory"},
	} {
		err := run(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pcap")); !os.IsNotExist(err) {
		t.Errorf("a failed run left its file: %v", err)
	}
}
