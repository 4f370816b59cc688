package natspub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names (DESIGN.md section 3).
const (
	StreamName    = "TCPSENTRY_EVENTS"
	SubjectPrefix = "tcpsentry.events."
	StreamSubject = SubjectPrefix + ">"
)

// Mode is how events are published.
type Mode int

const (
	// JetStream publishes into the TCPSENTRY_EVENTS stream and waits for
	// the server's acknowledgement; Nats-Msg-Id (the event id) lets the
	// server drop a copy sent again after a reconnect.
	JetStream Mode = iota
	// Core publishes plain NATS messages: no stream, no acknowledgement,
	// nothing kept for subscribers that are not listening.
	Core
)

// Defaults.
const (
	DefaultBuffer   = 100_000
	DefaultInFlight = 4096
	DefaultMaxAge   = 7 * 24 * time.Hour
)

// Config configures a Publisher.
type Config struct {
	// Sensor is the <sensor> token of the subjects; it must be a valid
	// subject token (no '.', '*', '>' or white space).
	Sensor string
	Mode   Mode
	// Buffer bounds the events held for the broker: waiting to be sent
	// and sent but not yet acknowledged (default DefaultBuffer). Beyond
	// it the oldest waiting event is dropped and counted.
	Buffer int
	// InFlight bounds the JetStream publishes awaiting their
	// acknowledgement (default DefaultInFlight, at most Buffer/2).
	InFlight int
	// AckTimeout is how long an acknowledgement may take before the
	// publish counts as failed and is sent again (default 5 s).
	AckTimeout time.Duration
	// MaxAge and MaxBytes are the retention of the stream when the
	// Publisher creates it (defaults 7 days and unlimited). A stream that
	// exists is left as it is.
	MaxAge   time.Duration
	MaxBytes int64
	// Wait makes Publish wait for room while the broker is connected and
	// taking events (a recording can wait; a live capture must not). When
	// the broker is away the oldest events are dropped either way.
	Wait bool
	// Log receives one line per change of the connection's state.
	Log func(msg string)
}

// Stats counts what became of the events given to Publish. Every event
// ends as exactly one of Published, Dropped or (at Close) Unsent.
type Stats struct {
	Published uint64 // acknowledged by JetStream (core: written to the connection)
	Dropped   uint64 // the buffer was full: dropped, oldest first
	Unsent    uint64 // still held when Close gave up
	Resent    uint64 // publishes repeated after a failure or a reconnect
	Failures  uint64 // failed publishes and acknowledgements
	Pending   int    // held now (waiting or unacknowledged)
}

// entry is one event held for the broker. The slices are reused from
// event to event, so that a steady stream allocates no buffers.
type entry struct {
	subject string
	id      []byte
	body    []byte
}

// Publisher sends events to NATS from a bounded buffer. Publish is called
// by one goroutine (the sensor's event writer); a goroutine of its own
// sends, waits for acknowledgements and sends again after failures, in
// order.
type Publisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config

	subjects map[string]string // action → subject

	mu       sync.Mutex
	room     *sync.Cond // Publish waits here in Wait mode
	wait     []entry    // ring of events not yet sent
	whead    int
	nwait    int
	inflight int  // sent, not acknowledged (owned by the sender's window)
	healthy  bool // connected, and the last publish did not fail
	streamOK bool
	closing  bool
	gaveUp   bool
	fullLog  bool // the buffer-full line was written for this outage
	stats    Stats

	kick chan struct{}
	quit chan struct{} // closed when Close gives up
	done chan struct{}

	// Sender-owned.
	win    []entry
	futs   []jetstream.PubAckFuture
	wfirst int
	wn     int
}

// New returns a Publisher on nc. In JetStream mode it makes sure the
// stream exists when nc is connected; otherwise it does so once connected.
func New(nc *nats.Conn, cfg Config) (*Publisher, error) {
	if err := checkToken(cfg.Sensor); err != nil {
		return nil, err
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	cfg.InFlight = max(1, min(cfg.InFlight, cfg.Buffer/2))
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	p := &Publisher{
		nc:       nc,
		cfg:      cfg,
		subjects: map[string]string{},
		wait:     make([]entry, cfg.Buffer),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.room = sync.NewCond(&p.mu)
	if cfg.Mode == JetStream {
		js, err := jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(cfg.InFlight+1),
			jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
		if err != nil {
			return nil, err
		}
		p.js = js
		p.win = make([]entry, cfg.InFlight)
		p.futs = make([]jetstream.PubAckFuture, cfg.InFlight)
		if nc.IsConnected() {
			if err := p.ensureStream(); err != nil {
				return nil, err
			}
		}
	} else {
		p.win = make([]entry, 1)
	}
	p.healthy = nc.IsConnected()
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		p.mu.Lock()
		p.healthy = false
		p.fullLog = false
		held := p.nwait + p.inflight
		p.mu.Unlock()
		why := ""
		if err != nil {
			why = " (" + err.Error() + ")"
		}
		p.cfg.Log(fmt.Sprintf("NATS: disconnected%s; events wait in the buffer (%d held, room for %d), capture goes on", why, held, p.cfg.Buffer))
		p.poke()
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		p.mu.Lock()
		held, dropped := p.nwait+p.inflight, p.stats.Dropped
		p.healthy = true
		p.room.Broadcast()
		p.mu.Unlock()
		p.cfg.Log(fmt.Sprintf("NATS: reconnected to %s; sending %d held events (%d dropped so far)", c.ConnectedUrlRedacted(), held, dropped))
		p.poke()
	})
	go p.run()
	return p, nil
}

// checkToken says whether s can be one token of a subject.
func checkToken(s string) error {
	if s == "" || strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("sensor name %q cannot be a NATS subject token: use letters, digits, '-' or '_' (no '.', '*', '>' or spaces)", s)
	}
	return nil
}

// ensureStream creates the stream if it does not exist.
func (p *Publisher) ensureStream() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.js.Stream(ctx, StreamName)
	if err == nil {
		p.mu.Lock()
		p.streamOK = true
		p.mu.Unlock()
		return nil
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return errors.New("the NATS server has no JetStream (start it with -js, or use --nats-mode core)")
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("looking up stream %s: %w", StreamName, err)
	}
	sc := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "tcpsentry events (schema v1)",
		Subjects:    []string{StreamSubject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      p.cfg.MaxAge,
		MaxBytes:    -1,
	}
	if p.cfg.MaxBytes > 0 {
		sc.MaxBytes = p.cfg.MaxBytes
	}
	if _, err := p.js.CreateStream(ctx, sc); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("creating stream %s: %w", StreamName, err)
	}
	p.mu.Lock()
	p.streamOK = true
	p.mu.Unlock()
	return nil
}

func (p *Publisher) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// subject is the subject of an event of this action, built once.
func (p *Publisher) subject(action string) string {
	s, ok := p.subjects[action]
	if !ok {
		s = SubjectPrefix + p.cfg.Sensor + "." + action
		p.subjects[action] = s
	}
	return s
}

// Publish copies an event (its action, id and JSON body) into the buffer.
// It does not block, except in Wait mode while the broker takes events.
// When the buffer is full the oldest waiting event is dropped.
func (p *Publisher) Publish(action string, id, body []byte) {
	subj := p.subject(action)
	p.mu.Lock()
	for p.nwait+p.inflight >= len(p.wait) {
		if p.cfg.Wait && p.healthy && !p.closing {
			p.room.Wait()
			continue
		}
		if p.nwait == 0 {
			// Everything held is in flight (Buffer ≤ InFlight cannot
			// happen: InFlight ≤ Buffer/2); drop the new one.
			p.stats.Dropped++
			p.mu.Unlock()
			return
		}
		if !p.fullLog {
			p.fullLog = true // once per outage
			defer p.cfg.Log(fmt.Sprintf("NATS: the event buffer is full (%d events); dropping the oldest until the broker takes them again", len(p.wait)))
		}
		p.whead = (p.whead + 1) % len(p.wait)
		p.nwait--
		p.stats.Dropped++
	}
	e := &p.wait[(p.whead+p.nwait)%len(p.wait)]
	e.subject = subj
	e.id = append(e.id[:0], id...)
	e.body = append(e.body[:0], body...)
	p.nwait++
	p.mu.Unlock()
	p.poke()
}

// Stats returns the counters so far.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Pending = p.nwait + p.inflight
	return s
}

// Close waits until every held event is published or ctx ends, then
// stops the sender; what is still held is counted as Unsent. It does not
// close the connection.
func (p *Publisher) Close(ctx context.Context) Stats {
	p.mu.Lock()
	p.closing = true
	p.room.Broadcast()
	p.mu.Unlock()
	p.poke()
	select {
	case <-p.done:
	case <-ctx.Done():
		p.mu.Lock()
		p.gaveUp = true
		p.mu.Unlock()
		close(p.quit)
		<-p.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Unsent = uint64(p.nwait + p.inflight)
	s := p.stats
	s.Pending = 0
	return s
}

// run is the sender: it moves events from the waiting ring into its
// window, publishes them, and retires them in order as their
// acknowledgements come. A failure sends the whole window again, after
// the reconnect if there was one; the server drops the copies it already
// has (Nats-Msg-Id).
func (p *Publisher) run() {
	defer close(p.done)
	backoff := time.Duration(0)
	var lastErr string
	for {
		p.mu.Lock()
		if p.gaveUp || (p.closing && p.nwait == 0 && p.inflight == 0) {
			p.mu.Unlock()
			return
		}
		connected := p.nc.IsConnected()
		needStream := p.js != nil && !p.streamOK && connected
		p.mu.Unlock()
		if needStream {
			if err := p.ensureStream(); err != nil {
				lastErr = p.fail(err, lastErr)
				backoff = p.sleep(backoff)
				continue
			}
		}
		sent, err := p.sendSome(connected)
		if err != nil {
			p.rewind()
			lastErr = p.fail(err, lastErr)
			backoff = p.sleep(backoff)
			continue
		}
		if p.js == nil {
			if sent == 0 {
				p.idle()
			}
			continue
		}
		// Retire what has been acknowledged, in order.
		progressed, err := p.retire(sent == 0)
		if err != nil {
			p.rewind()
			lastErr = p.fail(err, lastErr)
			backoff = p.sleep(backoff)
			continue
		}
		if progressed {
			backoff, lastErr = 0, ""
		}
	}
}

// sendSome publishes waiting events while connected and the window has
// room. It returns how many it sent.
func (p *Publisher) sendSome(connected bool) (int, error) {
	n := 0
	for connected && p.wn < len(p.win) {
		p.mu.Lock()
		if p.nwait == 0 {
			p.mu.Unlock()
			break
		}
		// Move the entry into the window by swapping slices: no copy.
		slot := (p.wfirst + p.wn) % len(p.win)
		w := &p.wait[p.whead]
		p.win[slot], *w = *w, entry{id: p.win[slot].id[:0], body: p.win[slot].body[:0]}
		p.whead = (p.whead + 1) % len(p.wait)
		p.nwait--
		p.inflight++
		if p.js == nil {
			p.inflight-- // core: sent is done
		}
		p.mu.Unlock()
		p.wn++
		e := &p.win[slot]
		msg := &nats.Msg{Subject: e.subject, Data: e.body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, string(e.id))
		if p.js == nil {
			if err := p.nc.PublishMsg(msg); err != nil {
				return n, err
			}
			p.wn = 0
			p.mu.Lock()
			p.stats.Published++
			p.healthy = true
			p.mu.Unlock()
			n++
			continue
		}
		// No retries inside the client: it would send the message again
		// from a buffer this sender may have reused by then.
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
		if err != nil {
			return n, err
		}
		p.futs[slot] = f
		n++
	}
	return n, nil
}

// retire waits for the oldest publish in the window (blocking only when
// block is set and there is nothing else to do) and retires every
// acknowledged one at the front.
func (p *Publisher) retire(block bool) (bool, error) {
	progressed := false
	for p.wn > 0 {
		f := p.futs[p.wfirst]
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return progressed, err
		default:
			if progressed || !block && p.canSend() {
				return progressed, nil
			}
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return progressed, err
			case <-p.kick:
				return progressed, nil // new events, a state change or Close
			case <-p.quit:
				return progressed, nil
			}
		}
		p.futs[p.wfirst] = nil
		p.wfirst = (p.wfirst + 1) % len(p.win)
		p.wn--
		p.mu.Lock()
		p.inflight--
		p.stats.Published++
		p.healthy = true
		p.room.Signal()
		p.mu.Unlock()
		progressed = true
	}
	if p.wn == 0 && !progressed && block {
		p.idle()
	}
	return progressed, nil
}

// canSend reports whether the sender could publish more now.
func (p *Publisher) canSend() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nwait > 0 && p.wn < len(p.win) && p.nc.IsConnected()
}

// idle waits for a kick (new events, a state change, Close); a periodic
// look at the connection covers a change whose handler ran before the
// sender waited.
func (p *Publisher) idle() {
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-p.kick:
	case <-t.C:
	case <-p.quit:
	}
}

// rewind puts the whole window back in front of the waiting events, in
// order, to be sent again.
func (p *Publisher) rewind() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := p.wn - 1; i >= 0; i-- {
		slot := (p.wfirst + i) % len(p.win)
		p.whead = (p.whead - 1 + len(p.wait)) % len(p.wait)
		w := &p.wait[p.whead]
		*w, p.win[slot] = p.win[slot], entry{id: w.id[:0], body: w.body[:0]}
		p.futs[slot] = nil
		p.nwait++
		if p.js != nil {
			p.inflight--
		}
		p.stats.Resent++
	}
	p.wfirst, p.wn = 0, 0
	p.healthy = false
	p.room.Broadcast()
}

// fail counts a failure and logs it when it differs from the last one.
func (p *Publisher) fail(err error, last string) string {
	p.mu.Lock()
	p.stats.Failures++
	p.healthy = false
	p.room.Broadcast()
	p.mu.Unlock()
	msg := err.Error()
	if msg != last && !errors.Is(err, nats.ErrDisconnected) && !errors.Is(err, nats.ErrConnectionReconnecting) {
		p.cfg.Log("NATS: publishing failed: " + msg + "; retrying")
	}
	return msg
}

// sleep pauses after a failure, longer each time up to 2 s, waking early
// on Close.
func (p *Publisher) sleep(d time.Duration) time.Duration {
	d = min(max(2*d, 50*time.Millisecond), 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.quit:
	}
	return d
}
