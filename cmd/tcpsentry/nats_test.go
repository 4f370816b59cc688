package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

func startBroker(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	b, err := broker.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// stored is one message of the event stream.
type stored struct {
	Subject string
	ID      string // Nats-Msg-Id
	Data    string
}

// readStream returns every message of the event stream, in stream order.
func readStream(t *testing.T, url string) []stored {
	t.Helper()
	msgs, err := natspub.ReadAll(context.Background(), natspub.Options{URLs: url})
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for _, m := range msgs {
		out = append(out, stored{m.Subject, m.ID, string(m.Data)})
	}
	return out
}

// eventID and action of a JSON event line.
func idAction(t *testing.T, line string) (string, string) {
	t.Helper()
	var e struct {
		Event struct {
			ID     string `json:"id"`
			Action string `json:"action"`
		} `json:"event"`
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return e.Event.ID, e.Event.Action
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestReplayToNATS: a replay published to a real JetStream server leaves
// in the stream exactly the events it printed, in the same order, with
// unique ids in Nats-Msg-Id and the subject of their sensor and action.
func TestReplayToNATS(t *testing.T) {
	for _, mode := range []string{"jetstream", "core"} {
		t.Run(mode, func(t *testing.T) {
			b := startBroker(t, broker.Config{})
			var out, errb bytes.Buffer
			code := run([]string{"replay", "--sensor", "lab-1", "--nats", b.ClientURL(), "--nats-mode", mode, "--events-file", "-",
				"../../testdata/accept_overflow.pcap"}, &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			printed := lines(out.String())
			if len(printed) != 7 {
				t.Fatalf("%d events printed; want accept_overflow.pcap's 7", len(printed))
			}
			if !strings.Contains(errb.String(), fmt.Sprintf("  nats      %d published\n", len(printed))) {
				t.Errorf("summary lacks the published count:\n%s", errb.String())
			}
			if mode == "core" {
				// Core NATS stores nothing: a replay with nobody
				// subscribed still succeeds, and no stream is made.
				if _, err := natspub.ReadAll(context.Background(), natspub.Options{URLs: b.ClientURL()}); err == nil {
					t.Fatal("core mode created a stream")
				}
				return
			}
			got := readStream(t, b.ClientURL())
			if len(got) != len(printed) {
				t.Fatalf("%d events in the stream, %d printed", len(got), len(printed))
			}
			seen := map[string]bool{}
			for i, m := range got {
				id, action := idAction(t, printed[i])
				if m.Data != printed[i] {
					t.Fatalf("message %d:\n%s\nprinted:\n%s", i, m.Data, printed[i])
				}
				if m.ID != id || seen[id] {
					t.Fatalf("message %d: Nats-Msg-Id %q, event.id %q (seen before: %v)", i, m.ID, id, seen[id])
				}
				seen[id] = true
				if want := "tcpsentry.events.lab-1." + action; m.Subject != want {
					t.Fatalf("message %d: subject %s, want %s", i, m.Subject, want)
				}
			}
		})
	}
}

// writeRefused writes a pcap of n refused connections from n distinct
// clients (so that none folds into another): SYN, then the server's
// RST/ACK 100 µs later, a connection every millisecond.
func writeRefused(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	srv := net.IPv4(10, 0, 0, 1).To4()
	frame := func(src, dst net.IP, sp, dp uint16, syn, rst, ack bool, seq, ackn uint32) []byte {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), SYN: syn, RST: rst, ACK: ack, Seq: seq, Ack: ackn, Window: 64240}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for i := range n {
		cli := net.IPv4(10, 1, byte(i/250), byte(i%250+1)).To4()
		ts := start.Add(time.Duration(i) * time.Millisecond)
		for k, d := range [][]byte{
			frame(cli, srv, 40000, 80, true, false, false, 1000, 0),
			frame(srv, cli, 80, 40000, false, true, true, 0, 1001),
		} {
			ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(k) * 100 * time.Microsecond), CaptureLength: len(d), Length: len(d)}
			if err := w.WritePacket(ci, d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// gatedReader hands out data up to mark, then blocks until open is
// closed; reached is closed when it first blocks.
type gatedReader struct {
	data    []byte
	mark    int
	pos     int
	open    chan struct{}
	reached chan struct{}
	once    sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.pos >= len(g.data) {
		return 0, io.EOF
	}
	if g.pos >= g.mark {
		g.once.Do(func() { close(g.reached) })
		<-g.open
		g.mark = len(g.data)
	}
	n := copy(p[:min(len(p), g.mark-g.pos)], g.data[g.pos:])
	g.pos += n
	return n, nil
}

// TestBrokerRestartDuringReplay kills the broker halfway through a replay
// and starts it again on the same store. With room in the buffer every
// event arrives exactly once; with a small buffer, what arrives plus what
// was counted as dropped is what was produced, and nothing arrives twice.
func TestBrokerRestartDuringReplay(t *testing.T) {
	const n = 6000
	pcap := filepath.Join(t.TempDir(), "refused.pcap")
	writeRefused(t, pcap, n)
	data, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		buffer int
	}{{"buffer large enough", 2 * n}, {"small buffer", 500}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", DataDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(b.ClientURL())
			var logMu sync.Mutex
			var logs bytes.Buffer
			pub, err := natspub.Open(natspub.Options{URLs: b.ClientURL(), ReconnectWait: 100 * time.Millisecond},
				natspub.Config{Sensor: "lab", Buffer: c.buffer, Wait: true, Logger: newLogger(logText, slog.LevelInfo, lockedWriter{&logMu, &logs})})
			if err != nil {
				t.Fatal(err)
			}
			g := &gatedReader{data: data, mark: len(data) / 2, open: make(chan struct{}), reached: make(chan struct{})}
			var out bytes.Buffer
			done := make(chan error, 1)
			var sum sensor.Summary
			go func() {
				var err error
				sum, err = sensor.Replay(context.Background(), g, sensor.Config{Workers: 2, Flows: 4 * n, Name: "lab", Sink: pub}, &out)
				done <- err
			}()
			<-g.reached
			// Kill it as soon as the first events were acknowledged, so
			// that publishes are likely in flight: they are sent again,
			// and the server must drop the copies of those it had.
			for pub.Stats().Published == 0 {
				time.Sleep(time.Millisecond)
			}
			b.Shutdown()
			close(g.open)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			b2 := startBroker(t, broker.Config{Listen: u.Host, DataDir: dir})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			st := pub.Close(ctx)
			produced := lines(out.String())
			if uint64(len(produced)) != sum.EventsTotal() || len(produced) < n {
				t.Fatalf("%d lines, %d events in the summary; want >= %d", len(produced), sum.EventsTotal(), n)
			}
			got := readStream(t, b2.ClientURL())
			ids := map[string]int{}
			for _, m := range got {
				ids[m.ID]++
				if ids[m.ID] > 1 {
					t.Fatalf("event %s stored twice", m.ID)
				}
			}
			for _, l := range produced {
				id, _ := idAction(t, l)
				ids[id]--
			}
			for id, v := range ids {
				if v > 0 {
					t.Fatalf("stored event %s was never produced", id)
				}
			}
			t.Logf("produced %d, stored %d, stats %+v", len(produced), len(got), st)
			logMu.Lock()
			t.Logf("log:\n%s", logs.String())
			logMu.Unlock()
			if st.Unsent != 0 || st.Published != uint64(len(got)) || st.Published+st.Dropped != uint64(len(produced)) {
				t.Fatalf("stats %+v; %d stored, %d produced", st, len(got), len(produced))
			}
			if c.buffer > len(produced) && st.Dropped != 0 {
				t.Fatalf("dropped %d with room for every event", st.Dropped)
			}
			if c.buffer < n/2 && st.Dropped == 0 {
				t.Fatal("a buffer smaller than the outage's events dropped nothing: was the broker really away?")
			}
		})
	}
}

// TestNATSAuth: a server that requires a password or a token refuses
// wrong ones with one clear line, and takes the right ones.
// startCoreServer starts a nats-server without JetStream and returns its
// URL.
func startCoreServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s.ClientURL()
}

func TestNATSAuth(t *testing.T) {
	core := startCoreServer(t)
	bp := startBroker(t, broker.Config{User: "sensor", Password: "s3cret"})
	bt := startBroker(t, broker.Config{Token: "t0ken"})
	file := "../../testdata/demo.pcap"
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"--nats", bp.ClientURL(), "--nats-user", "sensor", "--nats-password", "nope"}, 1, "refused the credentials (authorization violation)"},
		{"no password", []string{"--nats", bp.ClientURL()}, 1, "refused the credentials (authorization violation)"},
		{"right password", []string{"--nats", bp.ClientURL(), "--nats-user", "sensor", "--nats-password", "s3cret"}, 0, ""},
		{"wrong token", []string{"--nats", bt.ClientURL(), "--nats-token", "nope"}, 1, "refused the credentials (authorization violation)"},
		{"right token", []string{"--nats", bt.ClientURL(), "--nats-token", "t0ken"}, 0, ""},
		{"two ways", []string{"--nats", bt.ClientURL(), "--nats-token", "t0ken", "--nats-user", "x"}, 1, "give one way to authenticate to NATS"},
		{"unreachable", []string{"--nats", "nats://127.0.0.1:1"}, 1, "is unreachable"},
		{"missing creds file", []string{"--nats", bt.ClientURL(), "--nats-creds", "/nonexistent.creds"}, 1, "--nats-creds /nonexistent.creds: no such file"},
		{"no JetStream", []string{"--nats", core}, 1, "the NATS server has no JetStream (start it with -js, or use --nats-mode core)"},
		{"core mode without JetStream", []string{"--nats", core, "--nats-mode", "core"}, 0, ""},
		{"bad mode", []string{"--nats", bt.ClientURL(), "--nats-mode", "fast"}, 2, `invalid value "fast" for flag -nats-mode: must be jetstream or core, not "fast"` + "\n"},
		{"bad sensor name", []string{"--nats", bt.ClientURL(), "--nats-token", "t0ken", "--sensor", "a.b"}, 2, `invalid value "a.b" for flag -sensor: "a.b" cannot be a NATS subject token`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(append([]string{"replay", "--quiet"}, c.args...), file), &out, &errb)
			if code != c.code || !strings.Contains(errb.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), c.code, c.want)
			}
			// A bad flag value is the flag package's line and the usage.
			if c.code == 1 && strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("want one line, got %q", errb.String())
			}
			if c.code == 0 && out.Len() != 0 {
				t.Fatalf("stdout with --nats: %q", out.String())
			}
		})
	}
	// The right password stored the replay's events.
	nc := readStreamAuth(t, bp.ClientURL(), "sensor", "s3cret")
	if nc != 2 {
		t.Fatalf("%d events stored with the right password; want demo.pcap's 2", nc)
	}
}

func readStreamAuth(t *testing.T, url, user, pass string) int {
	t.Helper()
	msgs, err := natspub.ReadAll(context.Background(), natspub.Options{URLs: url, User: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

// TestRunEventsFollow is the README's first step with the default event
// path: `tcpsentry run -i lo` publishes to its embedded broker and
// `tcpsentry events --follow`, started beside it, prints a refused
// loopback connection as it happens; the stream keeps exactly that event.
func TestRunEventsFollow(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p := startRun(t, "-i", "lo", "--workers", "1", "--nats", "embedded", "--broker-listen", "127.0.0.1:0", "--data-dir", dir)
	var url string
	if m := regexp.MustCompile(`(?m)^tcpsentry: events to NATS url=(\S+) mode=jetstream stream=TCPSENTRY_EVENTS broker=embedded data_dir=`).FindStringSubmatch(p.Stderr()); m != nil {
		url = m[1]
	}
	if url == "" {
		t.Fatalf("run does not say where its broker listens:\n%s", p.Stderr())
	}
	ev := evStart(t, "--follow", "--json", "--nats", url)
	// The reader is ready once its consumer exists on the server; a refused
	// connection made before would not be "new" to it.
	evWaitConsumer(t, url, ev)

	const port = 7212
	sent := time.Now()
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d accepted a connection: something listens there", port)
	}
	line := ev.next(t, 10*time.Second)
	t.Logf("refused connection to events --follow output: %v", time.Since(sent))
	got := parseEvents(t, []byte(line))
	if len(got) != 1 || !strings.HasPrefix(got[0], "connection_refused/no_listener 127.0.0.1:") || !strings.Contains(got[0], fmt.Sprintf(" -> 127.0.0.1:%d ", port)) {
		t.Fatalf("events --follow printed %q", got)
	}
	if rest := ev.stop(t); len(rest) != 0 {
		t.Fatalf("events --follow printed more: %q", rest)
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("run: exit %d after SIGINT:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "  nats      1 published") {
		t.Errorf("run's summary does not count the one event published:\n%s", p.Stderr())
	}
	// The stream, read again from the store the run left, holds that event
	// and nothing else.
	b := startBroker(t, broker.Config{DataDir: dir})
	msgs, err := natspub.ReadAll(context.Background(), natspub.Options{URLs: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Data) != line {
		t.Fatalf("stream holds %d events; want the one printed:\n%s", len(msgs), line)
	}
}

// TestRunNATSWait: with --nats-wait, run captures although no broker
// answers at start, holds the events, and delivers them once a broker
// comes up at the URL; without it, an unreachable broker is one line and
// exit 1.
func TestRunNATSWait(t *testing.T) {
	needRoot(t)
	natsURL := evClosedPort(t)
	var out, errb bytes.Buffer
	if code := run([]string{"run", "-i", "lo", "--metrics-addr", "off", "--nats", natsURL}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "is unreachable") || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("without --nats-wait: exit %d, stderr %q; want exit 1 and one line saying unreachable", code, errb.String())
	}

	p := startRun(t, "-i", "lo", "--workers", "1", "--nats", natsURL, "--nats-wait")
	const port = 7216
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("port %d accepted a connection: something listens there", port)
	}
	// The event waits in the buffer; then a broker comes up at the URL.
	time.Sleep(500 * time.Millisecond)
	u, err := url.Parse(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, broker.Config{Listen: u.Host})
	var msgs []natspub.Message
	for deadline := time.Now().Add(15 * time.Second); len(msgs) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		msgs, _ = natspub.ReadAll(context.Background(), natspub.Options{URLs: b.ClientURL()})
	}
	// The sensor also sees its own client refused at the broker's port
	// while nothing listened there: events of their own.
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(m.Data))
	}
	var mine, self []string
	for _, e := range parseEvents(t, []byte(strings.Join(bodies, "\n"))) {
		switch {
		case strings.Contains(e, fmt.Sprintf(" -> 127.0.0.1:%d ", port)):
			mine = append(mine, e)
		case strings.Contains(e, " -> "+u.Host+" "):
			self = append(self, e)
		default:
			t.Errorf("unexpected event %q", e)
		}
	}
	if len(mine) != 1 || !strings.HasPrefix(mine[0], "connection_refused/no_listener 127.0.0.1:") {
		t.Fatalf("events about port %d after the broker came up: %q\nrun's stderr:\n%s", port, mine, p.Stderr())
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("run: exit %d after SIGINT:\n%s", code, p.Stderr())
	}
	errs := p.Stderr()
	for _, want := range []string{
		"tcpsentry: warning: NATS: no server answers yet; capture goes on, events wait in the buffer and go out once one does buffer=100000\n",
		"tcpsentry: NATS: connected; sending the held events url=" + b.ClientURL() + " held=",
		fmt.Sprintf("  nats      %d published", len(msgs)),
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("run's stderr lacks %q:\n%s", want, errs)
		}
	}
}

// lockedWriter lets a test read what a logger writes from another
// goroutine.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
