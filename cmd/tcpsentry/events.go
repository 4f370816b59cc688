package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

const eventsUsage = `usage: tcpsentry events [--type T[,T...]] [--sensor S] [--since 10m|RFC3339] [--follow] [--json] [nats flags]

Prints the events stored in the NATS stream TCPSENTRY_EVENTS, oldest first.

Without --follow it prints what is stored when it starts (all of it, or
since --since) and exits. With --follow it goes on printing new events
until SIGINT/SIGTERM, like tail -f: without --since it starts with the
next event published, with --since it first prints the stored events
since then.

Output is one JSON event per line when stdout is not a terminal (or with
--json), else a table: time (local), sensor, action/reason,
client -> server, count and message, cut to the terminal's width.

flags:
`

// eventsIdle is how long a read waits for a message before it looks at
// the consumer: without --follow, nothing pending means done.
const eventsIdle = 2 * time.Second

// eventsGiveUp is how long a read without --follow may make no progress
// (broker gone, consumer lost) before it fails.
const eventsGiveUp = 30 * time.Second

func eventsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf natsFlags
	nf.register(fs, natspub.DefaultURL, "NATS server `URLs`, comma-separated")
	var types []string
	fs.Func("type", "show only these event types (event.action), comma-separated or repeated (default: all)", func(v string) error {
		types = append(types, v)
		return nil
	})
	sensorName := fs.String("sensor", "", "show only the events of this sensor (observer.name; default: all sensors)")
	since := fs.String("since", "", "start at this time: a duration back from now (10m, 2h, 7d) or an RFC 3339 time (default: everything stored; with --follow: new events only)")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	asJSON := fs.Bool("json", false, "JSON lines even on a terminal")
	fs.Usage = func() {
		fmt.Fprint(stderr, eventsUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "tcpsentry: events takes no arguments (got %q); see tcpsentry events -h\n", pos[0])
		return 2
	}
	actions, err := parseEventTypes(types)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 2
	}
	if *sensorName != "" {
		if err := checkSubjectToken(*sensorName); err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --sensor %q: %v\n", *sensorName, err)
			return 2
		}
	}
	var start *time.Time
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "tcpsentry: --since %q: %v\n", *since, err)
			return 2
		}
		start = &t
	}
	cfg := natspub.TailConfig{Subjects: eventFilters(*sensorName, actions), Follow: *follow}
	if start != nil {
		cfg.Since = *start
	}

	var out eventWriter
	bw := bufio.NewWriterSize(stdout, 64<<10)
	if width, tty := terminalWidth(stdout); tty && !*asJSON {
		out = &tableWriter{w: bw, width: width}
	} else {
		out = jsonWriter{bw}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nf.opts.URLs = nf.urls
	nf.opts.Name = "tcpsentry events"
	tail, err := natspub.OpenTail(ctx, nf.opts, cfg)
	switch {
	case err == nil:
	case errors.Is(err, natspub.ErrNoStream):
		fmt.Fprintf(stderr, "tcpsentry: %v: nothing has published yet (start tcpsentry run, or replay with --nats)\n", err)
		return 1
	case ctx.Err() != nil:
		return 0 // interrupted
	default:
		fmt.Fprintf(stderr, "tcpsentry: %v\n", err)
		return 1
	}
	defer tail.Close()
	r := &eventsReader{tail: tail, out: out, follow: *follow}
	return r.run(ctx, stderr)
}

// parseEventTypes checks the --type values against the detectors' names
// and returns them without duplicates, in the order given.
func parseEventTypes(vals []string) ([]string, error) {
	var valid []string
	for t := detectors.TypeNone + 1; t < detectors.NumTypes; t++ {
		valid = append(valid, t.String())
	}
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if !slices.Contains(valid, s) {
				return nil, fmt.Errorf("--type: unknown event type %q; the types are %s", s, strings.Join(valid, ", "))
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(vals) > 0 && len(out) == 0 {
		return nil, fmt.Errorf("--type: no event type given; the types are %s", strings.Join(valid, ", "))
	}
	return out, nil
}

// checkSubjectToken says whether s can be the <sensor> token of a subject
// (the rule natspub applies to the publishing sensor).
func checkSubjectToken(s string) error {
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return errors.New("not a sensor name: a NATS subject token has no '.', '*', '>' or spaces")
	}
	return nil
}

// eventFilters returns the consumer's filter subjects: one per type, for
// one sensor or all of them.
func eventFilters(sensor string, actions []string) []string {
	if sensor == "" {
		sensor = "*"
	}
	if len(actions) == 0 {
		if sensor == "*" {
			return []string{natspub.StreamSubject}
		}
		return []string{natspub.SubjectPrefix + sensor + ".>"}
	}
	f := make([]string, len(actions))
	for i, a := range actions {
		f[i] = natspub.SubjectPrefix + sensor + "." + a
	}
	return f
}

// parseSince reads --since: a duration back from now ("10m", "2h", and
// whole days as "7d") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a duration back from now cannot be negative")
		}
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 && days <= 100*365 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want a duration back from now (10m, 2h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z)")
}

// eventsReader prints the events of a Tail.
type eventsReader struct {
	tail   *natspub.Tail
	out    eventWriter
	follow bool
	n      int // events printed
}

type nextResult struct {
	msg natspub.TailMessage
	err error
}

func (r *eventsReader) run(ctx context.Context, stderr io.Writer) int {
	if !r.follow && r.tail.Empty() {
		// Nothing matches (empty stream, the filter, --since): do not wait.
		return r.finish(stderr)
	}
	url := r.tail.URL()
	// Next blocks; a goroutine of its own calls it so that a signal is
	// answered at once, even while the client retries a lost broker.
	msgs := make(chan nextResult)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			m, err := r.tail.Next()
			select {
			case msgs <- nextResult{m, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	idle := time.NewTimer(eventsIdle)
	defer idle.Stop()
	lastProgress := time.Now()
	unflushed := false
	for {
		wait := eventsIdle
		if unflushed {
			wait = 50 * time.Millisecond // flush soon when nothing follows
		}
		idle.Reset(wait)
		select {
		case <-ctx.Done():
			return r.finish(stderr)
		case res := <-msgs:
			if res.err != nil {
				if ctx.Err() != nil {
					return r.finish(stderr)
				}
				r.out.flush()
				fmt.Fprintf(stderr, "tcpsentry: reading stream %s at %s: %v\n", natspub.StreamName, url, res.err)
				return 1
			}
			lastProgress = time.Now()
			seq, last := res.msg.Seq, r.tail.Last()
			if !r.follow && seq > last {
				return r.finish(stderr) // published after the start
			}
			if err := r.out.write(res.msg.Data); err != nil {
				fmt.Fprintf(stderr, "tcpsentry: writing events: %v\n", err)
				return 1
			}
			r.n++
			if !r.follow && (seq >= last || res.msg.Pending == 0) {
				return r.finish(stderr)
			}
			unflushed = res.msg.Pending > 0
			if !unflushed {
				// Caught up: show what came.
				if err := r.out.flush(); err != nil {
					fmt.Fprintf(stderr, "tcpsentry: writing events: %v\n", err)
					return 1
				}
			}
		case <-idle.C:
			unflushed = false
			if err := r.out.flush(); err != nil {
				fmt.Fprintf(stderr, "tcpsentry: writing events: %v\n", err)
				return 1
			}
			if r.follow || wait != eventsIdle {
				continue
			}
			// Nothing came for a while: done if nothing is pending
			// (events expired or were deleted since the start).
			ictx, cancel := context.WithTimeout(ctx, eventsIdle)
			pending, err := r.tail.Pending(ictx)
			cancel()
			if err == nil && pending == 0 {
				return r.finish(stderr)
			}
			if time.Since(lastProgress) > eventsGiveUp {
				why := "no progress"
				if err != nil {
					why = err.Error()
				}
				fmt.Fprintf(stderr, "tcpsentry: reading stream %s at %s: nothing received for %s (%s)\n", natspub.StreamName, url, eventsGiveUp, why)
				return 1
			}
		}
	}
}

// finish flushes the output and ends well.
func (r *eventsReader) finish(stderr io.Writer) int {
	if err := r.out.flush(); err != nil {
		fmt.Fprintf(stderr, "tcpsentry: writing events: %v\n", err)
		return 1
	}
	if !r.follow && r.n == 0 {
		r.out.none(stderr)
	}
	return 0
}

// eventWriter writes events, each given as its JSON body.
type eventWriter interface {
	write(body []byte) error
	// flush writes out what write holds.
	flush() error
	// none is called when a read without --follow found nothing.
	none(stderr io.Writer)
}

// jsonWriter writes the body as it is stored, one line each.
type jsonWriter struct{ w *bufio.Writer }

func (j jsonWriter) write(body []byte) error {
	j.w.Write(body)
	return j.w.WriteByte('\n')
}

func (j jsonWriter) flush() error { return j.w.Flush() }

func (j jsonWriter) none(io.Writer) {}

// tableWriter writes one line per event for people, cut to the
// terminal's width. It holds the rows until flush (the reader has caught
// up) or tableHold of them, so that the columns fit the rows shown
// together; they widen as longer values come, never narrow.
type tableWriter struct {
	w      *bufio.Writer
	width  int
	cols   [3]int // sensor, action/reason, client -> server
	rows   []tableRow
	header bool
}

// tableHold is how many rows the table holds before it writes them.
const tableHold = 1000

type tableRow struct {
	raw   string // not an event: shown as it is
	time  string
	cells [3]string
	count uint64
	msg   string
}

// eventView is what the table shows of an event.
type eventView struct {
	Timestamp time.Time `json:"@timestamp"`
	Message   string    `json:"message"`
	Event     struct {
		Action string `json:"action"`
		Reason string `json:"reason"`
	} `json:"event"`
	Observer struct {
		Name string `json:"name"`
	} `json:"observer"`
	Source      endpointView `json:"source"`
	Destination endpointView `json:"destination"`
	Tcpsentry   struct {
		Count uint64 `json:"count"`
	} `json:"tcpsentry"`
}

type endpointView struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

func (e endpointView) String() string {
	if e.Port == 0 {
		return e.IP
	}
	return net.JoinHostPort(e.IP, strconv.Itoa(e.Port))
}

func (t *tableWriter) write(body []byte) error {
	var ev eventView
	if err := json.Unmarshal(body, &ev); err != nil {
		// Not an event of ours: show it as it is.
		t.rows = append(t.rows, tableRow{raw: strings.ReplaceAll(string(body), "\n", " ")})
	} else {
		what := ev.Event.Action
		if ev.Event.Reason != "" && ev.Event.Reason != ev.Event.Action {
			what += "/" + ev.Event.Reason
		}
		row := tableRow{
			time:  "-",
			cells: [3]string{ev.Observer.Name, what, ev.Source.String() + " -> " + ev.Destination.String()},
			count: ev.Tcpsentry.Count,
			msg:   ev.Message,
		}
		if !ev.Timestamp.IsZero() {
			row.time = ev.Timestamp.Local().Format("2006-01-02 15:04:05.000")
		}
		t.rows = append(t.rows, row)
	}
	if len(t.rows) >= tableHold {
		return t.flush()
	}
	return nil
}

func (t *tableWriter) flush() error {
	if len(t.rows) > 0 {
		first := !t.header
		if first {
			t.header = true
			for i, h := range []string{"SENSOR", "EVENT", "CLIENT -> SERVER"} {
				t.cols[i] = max(t.cols[i], len(h))
			}
		}
		for _, r := range t.rows {
			for i, c := range r.cells {
				t.cols[i] = max(t.cols[i], utf8.RuneCountInString(c))
			}
		}
		if first {
			t.line(fmt.Sprintf("%-23s  %-*s  %-*s  %-*s  %5s  %s", "TIME",
				t.cols[0], "SENSOR", t.cols[1], "EVENT", t.cols[2], "CLIENT -> SERVER", "COUNT", "MESSAGE"))
		}
		for _, r := range t.rows {
			if r.raw != "" {
				t.line(r.raw)
				continue
			}
			t.line(fmt.Sprintf("%-23s  %-*s  %-*s  %-*s  %5d  %s", r.time,
				t.cols[0], r.cells[0], t.cols[1], r.cells[1], t.cols[2], r.cells[2], r.count, r.msg))
		}
		clear(t.rows)
		t.rows = t.rows[:0]
	}
	return t.w.Flush()
}

// line writes s cut to the terminal's width, marking the cut with "…".
func (t *tableWriter) line(s string) {
	if t.width > 1 && utf8.RuneCountInString(s) > t.width {
		n := 0
		for i := range s {
			if n == t.width-1 {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	t.w.WriteString(s)
	t.w.WriteByte('\n')
}

func (t *tableWriter) none(stderr io.Writer) {
	fmt.Fprintf(stderr, "tcpsentry: no matching events in %s\n", natspub.StreamName)
}

// terminalWidth reports whether w is a terminal and, if so, its width in
// columns (80 when it cannot be asked).
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, false
	}
	cols, tty := ttyColumns(f)
	if !tty {
		return 0, false
	}
	if cols <= 0 {
		if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 0 {
			cols = c
		} else {
			cols = 80
		}
	}
	return cols, true
}
