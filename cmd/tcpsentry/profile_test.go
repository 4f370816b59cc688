package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
)

// TestReplayProfiles: --cpuprofile and --memprofile write profiles that
// go tool pprof reads, and the replay's output is unchanged.
func TestReplayProfiles(t *testing.T) {
	// go test -cpuprofile holds the one CPU profiler of the process.
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		t.Skipf("the CPU profiler is taken (go test -cpuprofile?): %v", err)
	}
	pprof.StopCPUProfile()

	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	code, evs, stderr := replay(t, "--cpuprofile", cpu, "--memprofile", mem, "../../testdata/demo.pcap")
	if code != 0 || len(evs) != 2 {
		t.Fatalf("exit %d, %d events: %s", code, len(evs), stderr)
	}
	for _, c := range []struct{ path, periodType string }{
		{cpu, "PeriodType: cpu nanoseconds"},
		{mem, "PeriodType: space bytes"},
	} {
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		// A profile is a gzipped protocol buffer.
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("%s: %d bytes, not gzip", c.path, len(b))
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || len(raw) == 0 {
			t.Fatalf("%s: %d bytes after gunzip, %v", c.path, len(raw), err)
		}
		// github.com/google/pprof is not a dependency of the module: the
		// toolchain's pprof parses the file instead.
		gotool, err := exec.LookPath("go")
		if err != nil {
			continue
		}
		out, err := exec.Command(gotool, "tool", "pprof", "-raw", c.path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.periodType) {
			t.Fatalf("go tool pprof -raw %s: %v, want %q in:\n%s", c.path, err, c.periodType, out)
		}
	}
}

// TestReplayProfileBadPath: a profile file that cannot be created is one
// line naming the flag, the path and the reason, and exit 1 before the
// replay starts.
func TestReplayProfileBadPath(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, flag, path, reason string
	}{
		{"missing directory", "--cpuprofile", filepath.Join(dir, "nope", "cpu.prof"), "no such directory"},
		{"directory", "--cpuprofile", dir, "is a directory"},
		{"memprofile", "--memprofile", filepath.Join(dir, "nope", "mem.prof"), "no such directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"replay", c.flag, c.path, "../../testdata/demo.pcap"}, &out, &errb)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
			}
			want := "tcpsentry: " + c.flag + ": " + c.path + ": " + c.reason + "\n"
			if errb.String() != want {
				t.Fatalf("stderr:\n%q\nwant:\n%q", errb.String(), want)
			}
			if out.Len() != 0 {
				t.Fatalf("the replay ran: stdout:\n%s", out.String())
			}
		})
	}

	// The other profile, already created, does not stay behind empty.
	cpu := filepath.Join(dir, "cpu.prof")
	var out, errb bytes.Buffer
	code := run([]string{"replay", "--cpuprofile", cpu, "--memprofile", dir, "../../testdata/demo.pcap"}, &out, &errb)
	if code != 1 || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	if _, err := os.Stat(cpu); !os.IsNotExist(err) {
		t.Fatalf("%s left behind: %v", cpu, err)
	}

	// Both flags naming one file is a usage error.
	errb.Reset()
	if code := run([]string{"replay", "--cpuprofile", cpu, "--memprofile", cpu, "../../testdata/demo.pcap"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "same file") {
		t.Fatalf("same file: exit %d, stderr:\n%s", code, errb.String())
	}
}
