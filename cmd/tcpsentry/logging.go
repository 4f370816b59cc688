package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Values of --log-format.
const (
	logAuto = "auto"
	logText = "text"
	logJSON = "json"
)

// logFlags are --log-format and --log-level.
type logFlags struct {
	format string
	level  slog.Level
}

func (l *logFlags) register(fs *flag.FlagSet) {
	l.format = logAuto
	fs.Var(logFormatFlag{&l.format}, "log-format", "format of the log lines on stderr: auto (text on a terminal, JSON otherwise, as under systemd), text or json")
	fs.Var(logLevelFlag{&l.level}, "log-level", "least level logged: debug, info, warn or error")
}

type logFormatFlag struct{ p *string }

func (f logFormatFlag) String() string {
	if f.p == nil {
		return logAuto
	}
	return *f.p
}
func (f logFormatFlag) Set(v string) error {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case logAuto, logText, logJSON:
		*f.p = v
		return nil
	}
	return fmt.Errorf("not a log format: %q (say auto, text or json)", v)
}

type logLevelFlag struct{ p *slog.Level }

func (f logLevelFlag) String() string {
	if f.p == nil {
		return "info"
	}
	return strings.ToLower(f.p.String())
}
func (f logLevelFlag) Set(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "debug":
		*f.p = slog.LevelDebug
	case "info":
		*f.p = slog.LevelInfo
	case "warn", "warning":
		*f.p = slog.LevelWarn
	case "error":
		*f.p = slog.LevelError
	default:
		return fmt.Errorf("not a log level: %q (say debug, info, warn or error)", v)
	}
	return nil
}

// newLogger returns the logger of the operational messages, writing to w.
// auto is text when w is a terminal: under systemd stderr is the journal,
// and log shippers want JSON.
func newLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	if format == logAuto {
		format = logJSON
		if f, ok := w.(*os.File); ok {
			if _, tty := ttyColumns(f); tty {
				format = logText
			}
		}
	}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(&textHandler{mu: &sync.Mutex{}, w: w, level: level})
}

// textHandler writes "tcpsentry: [warning: ]message key=value ...", one
// line per record, as tcpsentry's messages looked before slog: no time
// (the terminal's user has it, the journal adds its own).
type textHandler struct {
	mu    *sync.Mutex // shared by the handlers made by With*
	w     io.Writer
	level slog.Level
	attrs []byte // formatted by WithAttrs
	group string // prefix of the keys, "a.b." after WithGroup("a"), ("b")
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, 256)
	b = append(b, "tcpsentry: "...)
	switch {
	case r.Level >= slog.LevelError:
		b = append(b, "error: "...)
	case r.Level >= slog.LevelWarn:
		b = append(b, "warning: "...)
	case r.Level < slog.LevelInfo:
		b = append(b, "debug: "...)
	}
	b = append(b, oneLine(r.Message)...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.group, a)
	}
	return &n
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.group = h.group + name + "."
	return &n
}

// appendAttr appends " key=value", groups flattened to "group.key".
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, prefix, g)
		}
		return b
	}
	b = append(b, ' ')
	b = append(b, prefix...)
	b = append(b, a.Key...)
	b = append(b, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindFloat64:
		s = strconv.FormatFloat(a.Value.Float64(), 'f', -1, 64)
	case slog.KindDuration:
		s = shortDuration(a.Value.Duration())
	case slog.KindTime:
		s = a.Value.Time().Format(time.RFC3339Nano)
	default:
		s = a.Value.String()
	}
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuote says whether a value would be misread unquoted: empty, or
// with spaces, quotes, '=' or anything unprintable.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '=' || r == utf8.RuneError || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

// oneLine keeps a message on its line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
