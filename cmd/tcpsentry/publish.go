package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

// eventFlags are where run and replay send their events.
type eventFlags struct {
	nats     natsFlags
	file     string
	buffer   int
	maxAge   time.Duration
	maxBytes sizeFlag
	// run only
	wait    bool
	dataDir string
	listen  string
	// ackLatency gets each JetStream publish's latency (metrics).
	ackLatency func(time.Duration)
}

// Values of --nats for run.
const (
	natsEmbedded = "embedded"
	natsOff      = "off"
)

// autoFile is --events-file's default: stdout when no NATS is used.
const autoFile = "auto"

func (e *eventFlags) register(fs *flag.FlagSet, live bool) {
	if live {
		e.nats.register(fs, natsEmbedded, "where events go: 'embedded' (a NATS server with JetStream in this process, on --broker-listen), 'off' (no NATS), or server `URLs`, comma-separated", natsEmbedded, natsOff)
		fs.BoolVar(&e.wait, "nats-wait", false, "when NATS is unreachable at start, capture anyway and keep trying (events wait in the buffer)")
		fs.StringVar(&e.dataDir, "data-dir", broker.DefaultDataDir(), "where the embedded broker stores the event stream")
		e.listen = broker.DefaultListen
		fs.Var(strFlag{&e.listen, listenCheck(broker.DefaultListen, "")}, "broker-listen", "`address` of the embedded broker (host:port)")
		fs.StringVar(&e.file, "events-file", autoFile, "also write events as JSON lines to this file ('-' = stdout, 'none'); default: stdout with --nats off, else none")
	} else {
		e.nats.register(fs, "", "publish events to these NATS servers (comma-separated `URLs`) instead of writing them on stdout", natsOff)
		fs.StringVar(&e.file, "events-file", autoFile, "write events as JSON lines to this file ('-' = stdout, 'none'); default: stdout unless --nats is given")
	}
	e.nats.registerMode(fs)
	e.buffer = natspub.DefaultBuffer
	fs.Var(intFlag{&e.buffer, 2, 100_000_000}, "events-buffer", "`events` held for NATS while it is slow or away; beyond it the oldest are dropped and counted")
	fs.DurationVar(&e.maxAge, "events-max-age", natspub.DefaultMaxAge, "retention of the event stream when tcpsentry creates it")
	fs.Var(&e.maxBytes, "events-max-bytes", "size limit of the event stream when tcpsentry creates it (K, M, G suffixes; default unlimited)")
}

// eventOut is the open event outputs of a run or replay.
type eventOut struct {
	w      io.Writer // JSON lines, nil for none
	file   *os.File  // when w is a file tcpsentry opened
	pub    *natspub.Publisher
	broker *broker.Broker
	where  []any // the start line's attributes for NATS; nil without
	// live is set for run: events the server refuses are counted and
	// logged, as those dropped, but do not fail the run at its end.
	live bool
}

// open opens the outputs. sensorName is the subject token; live says
// whether this is run (embedded broker, no waiting for room).
func (e *eventFlags) open(sensorName string, live bool, stdout io.Writer, log *slog.Logger) (*eventOut, error) {
	out, err := e.openFile(stdout)
	if err != nil {
		return nil, err
	}
	out.live = live
	if err := e.connect(out, sensorName, live, log); err != nil {
		return nil, err
	}
	return out, nil
}

// useNATS says whether events go to NATS; embedded, to the embedded
// broker.
func (e *eventFlags) useNATS() (use, embedded bool) {
	urls := strings.TrimSpace(e.nats.urls)
	return urls != "" && urls != natsOff, urls == natsEmbedded
}

// openFile checks the flags and opens the JSON-lines output: run opens it
// before it gives up root, as it does its sockets.
func (e *eventFlags) openFile(stdout io.Writer) (*eventOut, error) {
	// --nats-mode and --events-buffer were checked by their flags.
	out := &eventOut{}
	useNATS, _ := e.useNATS()
	switch f := e.file; {
	case f == autoFile && !useNATS, f == "-":
		out.w = stdout
	case f == autoFile, f == "none", f == "":
	default:
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("--events-file %s: %s", f, describeOpenError(err))
		}
		out.file, out.w = fh, fh
	}
	return out, nil
}

// connect starts the embedded broker (live only) and the publisher, if
// events go to NATS; on error it closes out. log gets the changes of the
// connection's state.
func (e *eventFlags) connect(out *eventOut, sensorName string, live bool, log *slog.Logger) error {
	useNATS, _ := e.useNATS()
	if !useNATS {
		return nil
	}
	mode, _ := e.nats.publishMode() // checked by the flag
	urls := strings.TrimSpace(e.nats.urls)
	o := e.nats.opts
	o.URLs, o.Name = urls, "tcpsentry "+sensorName
	if live && urls == natsEmbedded {
		if o.Creds != "" || o.NKey != "" || o.User != "" || o.Token != "" || o.TLSCA != "" || o.TLSCert != "" {
			out.close()
			return errors.New("the --nats-* credentials and TLS flags are for an external server (--nats URL); the embedded broker listens on loopback without them")
		}
		b, err := broker.Start(broker.Config{Listen: e.listen, DataDir: e.dataDir})
		if err != nil {
			out.close()
			return err
		}
		out.broker = b
		o.URLs, o.InProcess = b.ClientURL(), b
	}
	o.Wait = live && e.wait
	pub, err := natspub.Open(o, natspub.Config{
		Sensor: sensorName, Mode: mode, Buffer: e.buffer,
		MaxAge: e.maxAge, MaxBytes: int64(e.maxBytes),
		Wait: !live, Logger: log, AckLatency: e.ackLatency,
	})
	if err != nil {
		out.close()
		return err
	}
	out.pub = pub
	out.where = []any{"url", o.URLs, "mode", "jetstream", "stream", natspub.StreamName}
	if mode == natspub.Core {
		out.where = []any{"url", o.URLs, "mode", "core"}
	}
	if out.broker != nil {
		out.where = append(out.where, "broker", "embedded", "data_dir", e.dataDir, "follow_with", "tcpsentry events --follow")
	}
	return nil
}

// sink is the sensor's Sink, nil without NATS (a nil *Publisher in an
// interface would not be nil).
func (o *eventOut) sink() interface {
	Publish(action string, id, body []byte)
} {
	if o.pub == nil {
		return nil
	}
	return o.pub
}

// writer is the JSON-lines writer, nil for none.
func (o *eventOut) writer() io.Writer { return o.w }

// finish delivers what NATS still holds (for at most wait), closes
// everything and says on stderr what became of the events.
func (o *eventOut) finish(wait time.Duration, stderr io.Writer, quiet bool) error {
	var err error
	if o.pub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		st := o.pub.Close(ctx)
		cancel()
		if !quiet || st.Dropped > 0 || st.Rejected > 0 || st.Unsent > 0 {
			line := fmt.Sprintf("  nats      %d published", st.Published)
			if st.Resent > 0 {
				line += fmt.Sprintf(", %d sent again after failures (duplicates dropped by the server)", st.Resent)
			}
			if st.Dropped > 0 {
				line += fmt.Sprintf(", %d DROPPED (buffer full while the broker was slow or away)", st.Dropped)
			}
			if st.Rejected > 0 {
				line += fmt.Sprintf(", %d REFUSED by the server (%s)", st.Rejected, st.Refusal)
			}
			if st.Unsent > 0 {
				line += fmt.Sprintf(", %d NOT DELIVERED (the broker did not take them within %s)", st.Unsent, wait)
			}
			fmt.Fprintln(stderr, line)
		}
		switch {
		case st.Unsent > 0 && st.LastFailure != "":
			err = fmt.Errorf("%d events were not delivered to NATS; the last failure: %s", st.Unsent, st.LastFailure)
		case st.Unsent > 0:
			err = fmt.Errorf("%d events were not delivered to NATS", st.Unsent)
		case st.Rejected > 0 && !o.live:
			err = fmt.Errorf("the NATS server refused %d events (%s)%s", st.Rejected, st.Refusal, refusalHint(st.Refusal))
		}
	}
	o.close()
	return err
}

// close stops the embedded broker and closes the events file; connect
// calls it on failure, so that a publisher that could not start leaves
// no broker listening behind it.
func (o *eventOut) close() {
	if o.broker != nil {
		o.broker.Shutdown()
		o.broker = nil
	}
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}

// refusalHint says what to do about a refusal the operator can fix.
func refusalHint(reason string) string {
	if strings.Contains(reason, "insufficient resources") {
		return ": its JetStream store is full; free space in its store directory, or give the stream a size limit well below the free space (--events-max-bytes, when tcpsentry creates it) so that the oldest events make room"
	}
	return ""
}
