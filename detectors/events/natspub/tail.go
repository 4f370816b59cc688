package natspub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoJetStream says the server (or the account) has no JetStream, so it
// stores no events.
var ErrNoJetStream = errors.New("no JetStream")

// TailConfig says what a Tail reads.
type TailConfig struct {
	// Subjects filters the stream; empty means all of it (StreamSubject).
	Subjects []string
	// Since starts at the first event stored at or after it. Zero starts
	// with the oldest stored event, or with the next one published when
	// Follow is set.
	Since time.Time
	// Follow reads on past the end. Without it a consumer lost for good
	// (broker gone) ends the read with an error rather than retrying.
	Follow bool
}

// Tail reads the event stream in order with an ordered consumer: the
// client recreates the consumer from the last sequence seen when the
// server loses it, so nothing is skipped or repeated.
type Tail struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
	it   jetstream.MessagesContext
	url  string
	last uint64
}

// TailMessage is a Message with what the consumer still holds after it.
type TailMessage struct {
	Message
	Pending uint64
}

// OpenTail connects and opens a read of the event stream. Errors are one
// line; ErrNoStream and ErrNoJetStream can be told apart with errors.Is.
func OpenTail(ctx context.Context, o Options, cfg TailConfig) (*Tail, error) {
	nc, err := Connect(o)
	if err != nil {
		return nil, err
	}
	t := &Tail{nc: nc, url: nc.ConnectedUrlRedacted()}
	if err := t.open(ctx, cfg); err != nil {
		nc.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tail) open(ctx context.Context, cfg TailConfig) error {
	js, err := jetstream.New(t.nc)
	if err != nil {
		return fmt.Errorf("NATS at %s: %w", t.url, err)
	}
	t.js = js
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	st, err := js.Stream(lctx, StreamName)
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w at %s", ErrNoStream, t.url)
	case noJetStream(err):
		return fmt.Errorf("the NATS server at %s has %w, so it stores no events (start it with -js)", t.url, ErrNoJetStream)
	case err != nil:
		return fmt.Errorf("looking up stream %s at %s: %w", StreamName, t.url, err)
	}
	t.last = st.CachedInfo().State.LastSeq

	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects: cfg.Subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if len(cc.FilterSubjects) == 0 {
		cc.FilterSubjects = []string{StreamSubject}
	}
	switch {
	case !cfg.Since.IsZero():
		since := cfg.Since
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cc.OptStartTime = &since
	case cfg.Follow:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if !cfg.Follow {
		cc.MaxResetAttempts = 4
	}
	if !cfg.Follow && t.last == 0 {
		return nil // empty stream: nothing to read, no consumer needed
	}
	cons, err := js.OrderedConsumer(ctx, StreamName, cc)
	if err != nil {
		return fmt.Errorf("reading stream %s at %s: %w", StreamName, t.url, err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.cons = cons
		t.dropConsumer()
		return fmt.Errorf("reading stream %s at %s: %w", StreamName, t.url, err)
	}
	t.cons, t.it = cons, it
	return nil
}

// URL is the server connected to, without credentials.
func (t *Tail) URL() string { return t.url }

// Last is the stream's last sequence when the Tail opened.
func (t *Tail) Last() uint64 { return t.last }

// Empty says that at the start nothing matched: the stream was empty, or
// no stored event passes the filter and Since.
func (t *Tail) Empty() bool {
	if t.cons == nil {
		return true
	}
	ci := t.cons.CachedInfo()
	return ci != nil && ci.NumPending == 0
}

// Pending asks the server how many matching events the read has not had.
func (t *Tail) Pending(ctx context.Context) (uint64, error) {
	if t.cons == nil {
		return 0, nil
	}
	ci, err := t.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return ci.NumPending, nil
}

// Next blocks until the next event, or an error (Close ends it with one).
func (t *Tail) Next() (TailMessage, error) {
	if t.it == nil {
		return TailMessage{}, errors.New("nothing to read")
	}
	for {
		m, err := t.it.Next()
		if err != nil {
			return TailMessage{}, err
		}
		md, err := m.Metadata()
		if err != nil {
			continue // not a stream message
		}
		return TailMessage{
			Message: Message{Seq: md.Sequence.Stream, Time: md.Timestamp, Subject: m.Subject(),
				ID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()},
			Pending: md.NumPending,
		}, nil
	}
}

// Close ends the read, deletes the consumer (the server would only drop
// it after a while of inactivity) and closes the connection.
func (t *Tail) Close() {
	if t.it != nil {
		t.it.Stop()
	}
	t.dropConsumer()
	t.nc.Close()
}

func (t *Tail) dropConsumer() {
	if t.cons == nil || !t.nc.IsConnected() {
		return
	}
	if ci := t.cons.CachedInfo(); ci != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = t.js.DeleteConsumer(ctx, StreamName, ci.Name)
		cancel()
	}
}

// noJetStream says whether a JetStream API call failed because the server
// or account has no JetStream; a server without it has nothing listening
// on the API subjects, so the request gets no responders.
func noJetStream(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders)
}
