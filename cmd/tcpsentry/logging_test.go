package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogText: the text format is "tcpsentry: [level: ]message key=value",
// one line per record, values quoted when they would be misread.
func TestLogText(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(logText, slog.LevelInfo, &b)
	log.Debug("not shown")
	log.Info("status", "packets", 12, "pps", 2.5, "kernel_drops", 0, slog.GroupAttrs("kernel_drops_on", slog.Int("eth1", 3)))
	log.Warn("kernel DROPPING packets", "interface", "eth1", "in", time.Minute, "error", errors.New("a b\nc"), "empty", "")
	log.With("interface", "lo").WithGroup("g").Error("x=y", "k", `"q"`)
	want := "tcpsentry: status packets=12 pps=2.5 kernel_drops=0 kernel_drops_on.eth1=3\n" +
		"tcpsentry: warning: kernel DROPPING packets interface=eth1 in=1m error=\"a b\\nc\" empty=\"\"\n" +
		"tcpsentry: error: x=y interface=lo g.k=\"\\\"q\\\"\"\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	newLogger(logText, slog.LevelDebug, &b).Debug("two\nlines")
	if b.String() != "tcpsentry: debug: two\\nlines\n" {
		t.Errorf("debug: %q", b.String())
	}
}

// TestLogJSON: the JSON format is one object per line with time, level,
// msg and the attributes as fields.
func TestLogJSON(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(logJSON, slog.LevelWarn, &b)
	log.Info("filtered out")
	log.Warn("kernel DROPPING packets", "interface", "eth1", "dropped", 12, slog.GroupAttrs("kernel_drops_on", slog.Int("eth1", 12)))
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	var rec struct {
		Time      time.Time
		Level     string
		Msg       string
		Interface string
		Dropped   int
		On        map[string]int `json:"kernel_drops_on"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if rec.Time.IsZero() || rec.Level != "WARN" || rec.Msg != "kernel DROPPING packets" || rec.Interface != "eth1" || rec.Dropped != 12 || rec.On["eth1"] != 12 {
		t.Fatalf("%+v from %s", rec, lines[0])
	}
}

// TestLogAutoPipe: --log-format auto writes JSON to a pipe (systemd's
// journal, a log shipper), text only to a terminal.
func TestLogAutoPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	newLogger(logAuto, slog.LevelInfo, w).Info("capturing", "workers", 2)
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["level"] != "INFO" || rec["msg"] != "capturing" || rec["workers"] != 2.0 {
		t.Fatalf("not the JSON record: %v %q", err, line)
	}
}

// TestLogFlags: the flags take the documented words and refuse others
// with a reason.
func TestLogFlags(t *testing.T) {
	rf := newRunFlags(&bytes.Buffer{})
	if err := rf.fs.Parse([]string{"--log-format", "JSON", "--log-level", "warn", "--status-interval", "0"}); err != nil {
		t.Fatal(err)
	}
	if rf.log.format != logJSON || rf.log.level != slog.LevelWarn || rf.status != 0 {
		t.Fatalf("format %q level %v status %v", rf.log.format, rf.log.level, rf.status)
	}
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "verbose"}, {"--status-interval", "1ms"}, {"--status-interval", "x"}} {
		var errb bytes.Buffer
		if err := newRunFlags(&errb).fs.Parse(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
