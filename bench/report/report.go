//go:build linux

// Package report holds what the benchmarks' reports share: the machine
// they ran on, medians and rates.
package report

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Host is what a report says about the machine.
type Host struct {
	CPU    string // model name from /proc/cpuinfo
	Cores  int    // CPUs this process may use
	Kernel string // uname -r
	Go     string
	// PGO is the profile this binary was built with (go build -pgo;
	// default.pgo when its main package has one), "" for none: it moves
	// the hot path's speed by several percent, so a figure must say which
	// build.
	PGO string `json:",omitempty"`
}

// Describe reads the machine's description.
func Describe() Host {
	h := Host{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-pgo" && s.Value != "" {
				h.PGO = filepath.Base(s.Value)
			}
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return h
}

// Median is the middle of v (the upper one of an even count); v is left
// as it is.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Rate formats a rate per second: 1.23M, 45.6k, 789.
func Rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
