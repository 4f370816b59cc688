package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestProfileGuided checks default.pgo, the profile go build uses for
// profile-guided optimization (make pgo writes it): it is a CPU profile of
// the pipeline's hot path, and every main package that runs the pipeline
// links to this one file, so the benchmarks measure the build that ships.
func TestProfileGuided(t *testing.T) {
	f, err := os.Open("default.pgo")
	if err != nil {
		t.Fatalf("%v (make pgo writes it)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("default.pgo: %v; want a gzipped pprof profile", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("default.pgo: %v", err)
	}
	// A profile keeps its function names in its string table.
	for _, s := range []string{"cpu", "nanoseconds",
		mod + "/flowtable.(*Table).Track",
		mod + "/cmd/tcpsentry/sensor.(*Worker).decode",
		mod + "/detectors.(*Set).Segment",
		mod + "/flowtable/decode.Parse",
	} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("default.pgo does not name %s: not a CPU profile of the pipeline", s)
		}
	}
	own, err := os.Stat("default.pgo")
	if err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command("go", "list", "-f", `{{.Name}} {{.ImportPath}} {{.Dir}} {{join .Deps " "}}`, mod+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var runners []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "main" {
			continue
		}
		pkg, dir := strings.TrimPrefix(f[1], mod+"/"), f[2]
		if pkg != "cmd/tcpsentry" && !slices.Contains(f[3:], mod+"/cmd/tcpsentry/sensor") {
			continue
		}
		runners = append(runners, pkg)
		fi, err := os.Stat(filepath.Join(dir, "default.pgo"))
		if err != nil {
			t.Errorf("%s runs the pipeline but has no default.pgo: ln -s %s %s", pkg,
				strings.Repeat("../", strings.Count(pkg, "/")+1)+"cmd/tcpsentry/default.pgo", filepath.Join(pkg, "default.pgo"))
			continue
		}
		if !os.SameFile(fi, own) {
			t.Errorf("%s/default.pgo is not cmd/tcpsentry/default.pgo; make it a symbolic link to it", pkg)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cmd/tcpsentry", "bench/suite", "bench/live"} {
		if !slices.Contains(runners, want) {
			t.Errorf("go list found no main package %s running the pipeline (found %v)", want, runners)
		}
	}
}
