package netlab

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// GenerateScenario makes sc's capture into path with a fresh lab: the
// server namespace's Listen, Drop and Setup, then tcpdump, then sc.Run (or
// MustConnect(sc.Dials...)), then the capture is stopped and checked with
// sc.CheckFile. A path ending in ".gz" is written gzip-compressed. It
// needs root, like New (it skips, or fails under CI=true, where a lab
// cannot run), and ethtool: captures must carry full checksums. Call it
// from the test goroutine; the lab is removed at the end of t.
func GenerateScenario(t testing.TB, sc ShippedCapture, path string) {
	t.Helper()
	raw := path
	if strings.HasSuffix(path, ".gz") {
		raw = filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(path), ".gz"))
	}
	RunScenario(t, sc, func(lab *Lab) func() {
		if !lab.Checksums {
			t.Fatal("netlab: install ethtool: generated captures must carry full checksums")
		}
		cp := lab.Capture(sc.Side, sc.Iface, raw, sc.Filter)
		return func() { t.Logf("%s: tcpdump %+v", sc.File, cp.Stop()) }
	})
	if raw != path {
		if err := gzipFile(raw, path); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.CheckFile(path); err != nil {
		t.Fatal(err)
	}
}

// RunScenario plays sc's story in a fresh lab while a capture runs:
// Listen, Drop and Setup, then start(lab) starts the capture (on sc.Side,
// sc.Iface) and returns its stop, then sc.Run (or the dials), then stop.
// The lab is removed at the end of t.
func RunScenario(t testing.TB, sc ShippedCapture, start func(lab *Lab) (stop func())) {
	t.Helper()
	lab := New(t)
	for _, p := range sc.Listen {
		lab.Listen(p, ListenConfig{})
	}
	for _, p := range sc.Drop {
		lab.Drop(p)
	}
	if sc.Setup != nil {
		sc.Setup(lab)
	}
	stop := start(lab)
	if sc.Run != nil {
		if err := sc.Run(lab); err != nil {
			stop()
			t.Fatalf("netlab: %s: %v", sc.File, err)
		}
	} else {
		for i, r := range lab.MustConnect(sc.Dials...) {
			t.Logf("%s: dial %d: %+v", sc.File, i, r)
		}
	}
	stop()
}

// CaptureCommand is the tcpdump command line that makes sc's capture (the
// namespace name shown as tsn-XXXXXXXX-c or -s).
func (sc ShippedCapture) CaptureCommand() string {
	file := strings.TrimSuffix(sc.File, ".gz")
	cmd := fmt.Sprintf("ip netns exec %s tcpdump -i %s -w %s --immediate-mode -U -n -Z root",
		"tsn-XXXXXXXX-"+sc.Side.String()[:1], sc.Iface, file)
	if sc.Iface == "any" {
		cmd += " -y LINUX_SLL2"
	}
	if sc.Filter != "" {
		cmd += " " + sc.Filter
	}
	if file != sc.File {
		cmd += "; gzip -9 " + file
	}
	return cmd
}

// gzipFile writes from, compressed, to to (through a temporary file).
func gzipFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to + ".tmp")
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestCompression)
	if err != nil {
		out.Close()
		return err
	}
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to + ".tmp")
		return err
	}
	return os.Rename(to+".tmp", to)
}
