package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

// evBroker starts an embedded JetStream broker on a free loopback port.
func evBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// evLine is one event line with the fields the tests look at.
type evLine struct {
	line, id, action, sensor string
}

func evParse(t *testing.T, line string) evLine {
	t.Helper()
	var e struct {
		Event struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"event"`
		Observer struct {
			Name string `json:"name"`
		} `json:"observer"`
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("not a JSON event: %v: %q", err, line)
	}
	if e.Event.ID == "" || e.Event.Action == "" {
		t.Fatalf("event without id or action: %s", line)
	}
	return evLine{line, e.Event.ID, e.Event.Action, e.Observer.Name}
}

// evReplay runs `tcpsentry replay` in-process over a shipped capture and
// returns its events, in the order printed.
func evReplay(t *testing.T, sensorName, capture string) []evLine {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--quiet", "--sensor", sensorName, "../../testdata/" + capture}, &out, &errb); code != 0 {
		t.Fatalf("replay %s: exit %d: %s", capture, code, errb.String())
	}
	var evs []evLine
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if l != "" {
			evs = append(evs, evParse(t, l))
		}
	}
	return evs
}

// evPublish publishes events as sensor sensorName does: subject per
// action, Nats-Msg-Id = event.id, body = the line.
func evPublish(t *testing.T, url, sensorName string, evs []evLine) {
	t.Helper()
	nc, err := natspub.Connect(natspub.Options{URLs: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p, err := natspub.New(nc, natspub.Config{Sensor: sensorName, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		p.Publish(e.action, []byte(e.id), []byte(e.line))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := p.Close(ctx)
	if st.Published != uint64(len(evs)) || st.Dropped != 0 || st.Unsent != 0 {
		t.Fatalf("published %d of %d events: %+v", st.Published, len(evs), st)
	}
}

// evRun runs `tcpsentry events args...` in-process.
func evRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"events"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// evJoin is the exact output expected for evs: each line and "\n".
func evJoin(evs []evLine) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.line)
		b.WriteByte('\n')
	}
	return b.String()
}

func evFilter(evs []evLine, keep func(evLine) bool) []evLine {
	var out []evLine
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func evIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" {
			ids = append(ids, evParse(t, l).id)
		}
	}
	slices.Sort(ids)
	return ids
}

func evClosedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}

// TestEventsReadsStream fills a real JetStream stream with real events (two
// replays, two sensors, published a second apart) and checks that each
// filter of `tcpsentry events` returns exactly the events it should, in
// stream order, byte for byte, and then exits.
func TestEventsReadsStream(t *testing.T) {
	b := evBroker(t)
	url := b.ClientURL()

	first := evReplay(t, "span-a", "refused_any.pcap")   // connection_refused, syn_unanswered
	second := evReplay(t, "span-b", "refused_rate.pcap") // connection_refused, failed_connection_rate
	countAction := func(evs []evLine, a string) int {
		return len(evFilter(evs, func(e evLine) bool { return e.action == a }))
	}
	if len(first) != 4 || countAction(first, "connection_refused") != 2 || countAction(first, "syn_unanswered") != 2 {
		t.Fatalf("refused_any.pcap gave %d events; want 2 connection_refused and 2 syn_unanswered", len(first))
	}
	if len(second) != 3 || countAction(second, "connection_refused") != 2 || countAction(second, "failed_connection_rate") != 1 {
		t.Fatalf("refused_rate.pcap gave %d events; want 2 connection_refused and 1 failed_connection_rate", len(second))
	}

	evPublish(t, url, "span-a", first)
	// The stream's time is when the server stored a message: a whole
	// second between the batches, with that second between them.
	mid := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(mid) + 100*time.Millisecond)
	evPublish(t, url, "span-b", second)
	all := append(slices.Clone(first), second...)

	type tc struct {
		name string
		args []string
		want []evLine
	}
	byAction := func(a string) func(evLine) bool { return func(e evLine) bool { return e.action == a } }
	cases := []tc{
		{"all", nil, all},
		{"type connection_refused", []string{"--type", "connection_refused"}, evFilter(all, byAction("connection_refused"))},
		{"two types", []string{"--type", "syn_unanswered,failed_connection_rate"},
			evFilter(all, func(e evLine) bool { return e.action == "syn_unanswered" || e.action == "failed_connection_rate" })},
		{"type repeated", []string{"--type", "syn_unanswered", "--type", "failed_connection_rate", "--type", "syn_unanswered"},
			evFilter(all, func(e evLine) bool { return e.action == "syn_unanswered" || e.action == "failed_connection_rate" })},
		{"sensor span-b", []string{"--sensor", "span-b"}, second},
		{"sensor span-a type connection_refused", []string{"--sensor", "span-a", "--type", "connection_refused"}, evFilter(first, byAction("connection_refused"))},
		{"since between the batches", []string{"--since", mid.UTC().Format(time.RFC3339)}, second},
		{"since between the batches, local zone", []string{"--since", mid.Local().Format(time.RFC3339)}, second},
		{"since 1h", []string{"--since", "1h"}, all},
		{"json flag", []string{"--json"}, all},
		// Filters that match nothing must end at once, not wait.
		{"type never published", []string{"--type", "rst_storm"}, nil},
		{"unknown sensor", []string{"--sensor", "nobody"}, nil},
		{"since in the future", []string{"--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := evRun(t, append([]string{"--nats", url}, c.args...)...)
			took := time.Since(start)
			if code != 0 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			if want := evJoin(c.want); out != want {
				t.Errorf("got %d events, want %d:\n got: %v\nwant: %v", len(evIDs(t, out)), len(c.want), evIDs(t, out), evIDs(t, want))
			}
			// The same set of ids and count, said differently when the
			// bytes differ.
			var wantIDs []string
			for _, e := range c.want {
				wantIDs = append(wantIDs, e.id)
			}
			slices.Sort(wantIDs)
			if got := evIDs(t, out); !slices.Equal(got, wantIDs) {
				t.Errorf("event ids %v, want %v", got, wantIDs)
			}
			// Done without waiting for messages that do not come: the
			// first idle look is eventsIdle away.
			if took >= eventsIdle {
				t.Errorf("took %v: it waited instead of seeing the end of the stream", took)
			}
		})
	}

	// Each read removed its consumer.
	if n := evConsumers(t, url); n != 0 {
		t.Errorf("%d consumers left on the stream", n)
	}

	// A later read sees what was published since, after the rest.
	t.Run("later batch", func(t *testing.T) {
		extra := evReplay(t, "span-c", "demo.pcap")
		evPublish(t, url, "span-c", extra)
		code, out, errs := evRun(t, "--nats", url)
		if code != 0 || out != evJoin(append(slices.Clone(all), extra...)) {
			t.Fatalf("exit %d (%s); %d events, want %d", code, errs, len(evIDs(t, out)), len(all)+len(extra))
		}
	})
}

// TestEventsUsageErrors: a bad flag value is one line on stderr and exit
// 2, before any connection is tried.
func TestEventsUsageErrors(t *testing.T) {
	closed := evClosedPort(t)
	var valid []string
	for ty := detectors.TypeNone + 1; ty < detectors.NumTypes; ty++ {
		valid = append(valid, ty.String())
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown type", []string{"--type", "bogus"}, append([]string{`unknown event type "bogus"`}, valid...)},
		{"unknown type in a list", []string{"--type", "connection_refused,syn_unanswerd"}, []string{`unknown event type "syn_unanswerd"`, "rst_storm"}},
		{"type none", []string{"--type", "none"}, []string{`unknown event type "none"`}},
		{"sensor with a dot", []string{"--sensor", "a.b"}, []string{`--sensor "a.b"`}},
		{"sensor wildcard", []string{"--sensor", ">"}, []string{`--sensor ">"`}},
		{"bad since", []string{"--since", "yesterday"}, []string{`--since "yesterday"`, "RFC 3339"}},
		{"negative since", []string{"--since", "-5m"}, []string{`--since "-5m"`}},
		{"argument", []string{"extra"}, []string{"takes no arguments"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := evRun(t, append([]string{"--nats", closed}, c.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errs)
			}
			if out != "" || !strings.HasPrefix(errs, "tcpsentry: ") || strings.Count(errs, "\n") != 1 {
				t.Fatalf("want one line on stderr starting with \"tcpsentry: \", got %q (stdout %q)", errs, out)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q lacks %q", errs, w)
				}
			}
		})
	}
	if code, _, _ := evRun(t, "-h"); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
}

// TestEventsNoStream: a broker where nothing has published says so.
func TestEventsNoStream(t *testing.T) {
	b := evBroker(t)
	for _, args := range [][]string{nil, {"--follow"}} {
		code, out, errs := evRun(t, append([]string{"--nats", b.ClientURL()}, args...)...)
		want := "tcpsentry: no event stream TCPSENTRY_EVENTS at " + b.ClientURL() + ": nothing has published yet (start tcpsentry run, or replay with --nats)\n"
		if code != 1 || out != "" || errs != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and %q", args, code, out, errs, want)
		}
	}
}

// TestEventsNoJetStream: a server without JetStream stores nothing; the
// read says so in one line instead of waiting.
func TestEventsNoJetStream(t *testing.T) {
	url := startCoreServer(t)
	code, out, errs := evRun(t, "--nats", url)
	want := "tcpsentry: the NATS server at " + url + " has no JetStream, so it stores no events (start it with -js)\n"
	if code != 1 || out != "" || errs != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errs, want)
	}
}

// TestEventsUnreachable: no server at the URL is one line and exit 1, at
// once.
func TestEventsUnreachable(t *testing.T) {
	url := evClosedPort(t)
	start := time.Now()
	code, out, errs := evRun(t, "--nats", url)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	if code != 1 || out != "" || !strings.HasPrefix(errs, "tcpsentry: NATS at "+url+" is unreachable") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// evProc is `tcpsentry events` running as a child process.
type evProc struct {
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

func (p *evProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *evProc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func evStart(t *testing.T, args ...string) *evProc {
	t.Helper()
	p := &evProc{
		cmd:   exec.Command(os.Args[0], append([]string{"events"}, args...)...),
		lines: make(chan string, 100),
		done:  make(chan error, 1),
	}
	p.cmd.Env = append(os.Environ(), asCommand+"=1")
	p.cmd.Stderr = p
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		for range p.lines {
		}
	})
	return p
}

// next returns the next line the process printed, failing after d.
func (p *evProc) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("the command ended early: %s", p.stderrText())
		}
		return l
	case <-time.After(d):
		t.Fatalf("no event printed within %v; stderr: %q", d, p.stderrText())
	}
	return ""
}

// stop sends SIGINT and returns what else the process printed; it must
// exit 0 within a few seconds.
func (p *evProc) stop(t *testing.T) []string {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var rest []string
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				if err := <-p.done; err != nil {
					t.Fatalf("after SIGINT: %v; stderr %q", err, p.stderrText())
				}
				return rest
			}
			rest = append(rest, l)
		case <-deadline:
			t.Fatal("still running 5 s after SIGINT")
		}
	}
}

// evConsumers is how many consumers the event stream has.
func evConsumers(t *testing.T, url string) int {
	t.Helper()
	nc, err := natspub.Connect(natspub.Options{URLs: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), natspub.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Consumers
}

// evWaitConsumer waits until the stream has a consumer: the command has
// subscribed, so that what is published afterwards reaches it.
func evWaitConsumer(t *testing.T, url string, p *evProc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if evConsumers(t, url) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the command made no consumer within 10 s: %s", p.stderrText())
}

// TestEventsFollow runs `tcpsentry events --follow` as its own process:
// without --since it prints only what is published after it started;
// with --since it prints the stored events first; SIGINT ends it with
// exit 0.
func TestEventsFollow(t *testing.T) {
	b := evBroker(t)
	url := b.ClientURL()
	stored := evReplay(t, "span-a", "refused_any.pcap")
	evPublish(t, url, "span-a", stored)
	later := evReplay(t, "span-b", "refused_rate.pcap")

	t.Run("new only", func(t *testing.T) {
		p := evStart(t, "--follow", "--nats", url)
		evWaitConsumer(t, url, p)
		evPublish(t, url, "span-b", later[:1])
		if got := p.next(t, 10*time.Second); got != later[0].line {
			t.Fatalf("printed %q\nwant the event published after the start %q", got, later[0].line)
		}
		if rest := p.stop(t); len(rest) != 0 {
			t.Fatalf("printed %d more lines: %q", len(rest), rest)
		}
		if n := evConsumers(t, url); n != 0 {
			t.Errorf("%d consumers left after SIGINT", n)
		}
	})

	t.Run("since and type", func(t *testing.T) {
		p := evStart(t, "--follow", "--since", "1h", "--type", "connection_refused", "--nats", url)
		var want []evLine
		for _, e := range append(slices.Clone(stored), later[0]) {
			if e.action == "connection_refused" {
				want = append(want, e)
			}
		}
		for i, w := range want {
			if got := p.next(t, 10*time.Second); got != w.line {
				t.Fatalf("line %d: %q\nwant %q", i, got, w.line)
			}
		}
		// A failed_connection_rate event (filtered out), then a
		// connection_refused one: only the second is printed.
		evPublish(t, url, "span-b", later[1:])
		if later[1].action != "failed_connection_rate" || later[2].action != "connection_refused" {
			t.Fatalf("refused_rate.pcap's events changed order: %s, %s", later[1].action, later[2].action)
		}
		if got := p.next(t, 10*time.Second); got != later[2].line {
			t.Fatalf("printed %q\nwant %q", got, later[2].line)
		}
		if rest := p.stop(t); len(rest) != 0 {
			t.Fatalf("printed %d more lines: %q", len(rest), rest)
		}
	})
}

// TestEventsTable checks the table for people on real events: a header,
// one line per event cut to the width, the columns aligned and filled.
func TestEventsTable(t *testing.T) {
	evs := evReplay(t, "span-a", "refused_rate.pcap")
	var buf bytes.Buffer
	tw := &tableWriter{w: bufio.NewWriter(&buf), width: 150}
	for _, e := range evs {
		if err := tw.write([]byte(e.line)); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("rows written before flush: %q", buf.String())
	}
	if err := tw.flush(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != len(evs)+1 || !strings.HasPrefix(got[0], "TIME ") {
		t.Fatalf("want a header and %d lines:\n%s", len(evs), buf.String())
	}
	msgCol := len([]rune(got[0][:strings.Index(got[0], "MESSAGE")]))
	for i, l := range got {
		if n := len([]rune(l)); n > 150 {
			t.Errorf("line %d is %d wide, more than the terminal's 150: %q", i, n, l)
		}
		if i == 0 {
			continue
		}
		var ev struct {
			Timestamp time.Time `json:"@timestamp"`
			Message   string    `json:"message"`
		}
		if err := json.Unmarshal([]byte(evs[i-1].line), &ev); err != nil {
			t.Fatal(err)
		}
		if at := strings.Index(l, ev.Message[:20]); at < 0 || len([]rune(l[:at])) != msgCol {
			t.Errorf("line %d: the message is not under MESSAGE (column %d):\n%s\n%s", i, msgCol, got[0], l)
		}
		if !strings.HasPrefix(l, ev.Timestamp.Local().Format("2006-01-02 15:04:05.000")+"  span-a  ") {
			t.Errorf("line %d does not start with the local time and the sensor: %q", i, l)
		}
		if !strings.HasSuffix(l, "…") {
			t.Errorf("line %d: the long message was not cut: %q", i, l)
		}
	}
	for _, w := range []string{"connection_refused/no_listener", "10.213.0.1:47101 -> 10.213.0.2:7211", "server 10.213.0.2:7211 refused"} {
		if !strings.Contains(got[1], w) {
			t.Errorf("line %q lacks %q", got[1], w)
		}
	}
	if !strings.Contains(got[2], "failed_connection_rate/no_listener  10.213.0.1 -> 10.213.0.2:7211 ") {
		t.Errorf("aggregate event line: %q", got[2])
	}
	if !strings.Contains(got[3], "   19  server") {
		t.Errorf("folded event's count: %q", got[3])
	}
}
