package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/tcpsentry/tcpsentry"

// importRules keeps the package graph one-way (DESIGN.md section 1,
// STYLE.md section 2): for each package prefix, the module packages and
// outside packages it may not import directly. Checked with `go list`, so
// no linter is needed in CI.
var importRules = []struct {
	pkg    string   // package path relative to the module; "x/..." covers x and below
	forbid []string // import path prefixes
}{
	{"ring/...", []string{mod + "/flowtable", mod + "/detectors", mod + "/cmd", mod + "/bench", "github.com/nats-io/"}},
	{"flowtable/decode", []string{mod + "/"}}, // a leaf: standard library only
	{"flowtable", []string{mod + "/ring", mod + "/detectors", mod + "/cmd", mod + "/bench", "github.com/nats-io/", "golang.org/x/sys/unix"}},
	{"detectors", []string{mod + "/ring", mod + "/detectors/", mod + "/cmd", mod + "/bench", "github.com/nats-io/", "golang.org/x/sys/unix"}},
	{"detectors/events", []string{mod + "/ring", mod + "/flowtable", mod + "/cmd", mod + "/bench", "github.com/nats-io/", "golang.org/x/sys/unix"}},
	{"cmd/tcpsentry/sensor", []string{"golang.org/x/sys/unix", mod + "/bench"}},
	{"cmd/tcpsentry/metrics", []string{"golang.org/x/sys/unix", mod + "/bench", mod + "/ring"}},
}

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg, imports := strings.TrimPrefix(f[0], mod+"/"), f[1:]
		for _, imp := range imports {
			// unsafe is confined to ring/ (STYLE.md: syscalls and unsafe in one place)
			// and the CLI's privilege drop (capset on every thread, DESIGN.md section 1).
			if imp == "unsafe" && !strings.HasPrefix(pkg, "ring") && pkg != "cmd/tcpsentry/privdrop" {
				t.Errorf("%s imports unsafe; only ring/ and cmd/tcpsentry/privdrop may", pkg)
			}
			// One package speaks NATS (DESIGN.md section 1), one embeds
			// the server. The SIEM example is a user's program, and the
			// event benchmark's ceiling a bare nats.go one.
			if strings.HasPrefix(imp, "github.com/nats-io/nats.go") && !slices.Contains([]string{"detectors/events/natspub", "docs/examples/siem-consumer", "bench/events"}, pkg) {
				t.Errorf("%s imports %s; only detectors/events/natspub may", pkg, imp)
			}
			if strings.HasPrefix(imp, "github.com/nats-io/nats-server/") && pkg != "cmd/tcpsentry/broker" {
				t.Errorf("%s imports %s; only cmd/tcpsentry/broker may", pkg, imp)
			}
			// Metrics stay at the edge: the pipeline only keeps counters.
			if strings.HasPrefix(imp, "github.com/prometheus/") && pkg != "cmd/tcpsentry/metrics" {
				t.Errorf("%s imports %s; only cmd/tcpsentry/metrics may", pkg, imp)
			}
		}
		for _, r := range importRules {
			if !matches(pkg, r.pkg) {
				continue
			}
			checked++
			for _, imp := range imports {
				for _, bad := range r.forbid {
					if strings.HasPrefix(imp, bad) || imp == strings.TrimSuffix(bad, "/") {
						t.Errorf("%s imports %s (forbidden by rule for %s)", pkg, imp, r.pkg)
					}
				}
			}
		}
	}
	if checked < len(importRules) {
		t.Fatalf("only %d of %d rules matched a package: a package moved?", checked, len(importRules))
	}
}

func matches(pkg, pattern string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == p || strings.HasPrefix(pkg, p+"/")
	}
	return pkg == pattern
}
