package main

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// versionString is the version of this binary, as --version prints it
// and events carry it (observer.version).
var versionString = sync.OnceValue(func() string {
	bi, _ := debug.ReadBuildInfo()
	return buildVersion(version, bi)
})

// buildVersion is the -ldflags version, else the module version (go
// install pkg@version, or the one go build derives from the checkout),
// else devVersion; with the commit and a dirty mark appended as semver
// build metadata when the version does not say them already.
func buildVersion(ldflags string, bi *debug.BuildInfo) string {
	v := ldflags
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = devVersion
	}
	rev, _, modified := vcsInfo(bi)
	var meta []string
	if len(rev) >= 12 && !strings.Contains(v, rev[:12]) {
		meta = append(meta, rev[:12])
	}
	if modified && !strings.Contains(v, "dirty") {
		meta = append(meta, "dirty")
	}
	if len(meta) > 0 {
		sep := "+"
		if strings.Contains(v, "+") {
			sep = "."
		}
		v += sep + strings.Join(meta, ".")
	}
	return v
}

// vcsInfo is what go build stamped about the checkout, if anything.
func vcsInfo(bi *debug.BuildInfo) (rev, time string, modified bool) {
	if bi == nil {
		return "", "", false
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			time = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, time, modified
}

// writeVersion prints the version, then the commit and the toolchain:
// Go, platform, cgo, and the profile of a profile-guided build (which
// sets how fast the hot path runs, so figures quoted from a binary can
// be traced to it).
func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "tcpsentry %s\n", versionString())
	bi, ok := debug.ReadBuildInfo()
	if rev, at, modified := vcsInfo(bi); rev != "" {
		line := "  commit " + rev
		if modified {
			line += ", modified (built with uncommitted changes)"
		}
		if at != "" {
			line += ", " + at
		}
		fmt.Fprintln(w, line)
	}
	cgo, pgo := "", ""
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "CGO_ENABLED":
				cgo = ", CGO_ENABLED=" + s.Value
			case "-pgo":
				pgo = ", PGO=" + filepath.Base(s.Value)
			}
		}
	}
	fmt.Fprintf(w, "  %s %s/%s%s%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, cgo, pgo)
}
