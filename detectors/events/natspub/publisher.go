package natspub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// coreBatch is how many events the core-mode sender takes per lock.
const coreBatch = 256

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
	// Logger gets one record per change of the connection's state (nil:
	// none).
	Logger *slog.Logger
	// AckLatency, when set, is called by the sender for every event
	// JetStream acknowledges, with the time from its (last) publish to
	// when the sender took the acknowledgement, which it takes in order.
	// Core mode has no acknowledgements.
	AckLatency func(time.Duration)
}

// Stats counts what became of the events given to Publish. Every event
// ends as exactly one of Published, Dropped, Rejected or (at Close)
// Unsent.
type Stats struct {
	Published uint64 // acknowledged by JetStream (core: written to the connection)
	Dropped   uint64 // the buffer was full: dropped, oldest first
	Rejected  uint64 // refused by the server (a JetStream error for that event)
	Unsent    uint64 // still held when Close gave up
	Resent    uint64 // publishes repeated after a failure or a reconnect
	Failures  uint64 // failed publishes and acknowledgements
	Pending   int    // held now (waiting or unacknowledged)
	// Refusal is the server's reason for the last event it refused
	// (Rejected), "" when none was.
	Refusal string
	// LastFailure says why the last publish or acknowledgement failed
	// (Failures), "" when none did.
	LastFailure string
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
	nc   *nats.Conn
	owns bool // Close closes nc
	js   jetstream.JetStream
	cfg  Config

	subjects map[string]string // action → subject

	mu       sync.Mutex
	room     *sync.Cond // Publish waits here in Wait mode
	wait     []entry    // ring of events not yet sent
	whead    int
	nwait    int
	inflight int  // events in the sender's window: sent, not acknowledged
	healthy  bool // connected, and the last publish did not fail
	streamOK bool
	closing  bool
	gaveUp   bool
	fullLog  bool // the buffer-full line was written for this outage
	notYet   bool // sender-owned: no connection made yet (Options.Wait)
	stats    Stats

	kick chan struct{}
	quit chan struct{} // closed when Close gives up
	done chan struct{}

	// Sender-owned: the window of sent events, oldest first; the first
	// wsent have a live publish (the rest are to be sent again).
	win     []entry
	acks    *acks       // JetStream: the window's acknowledgements
	msg     nats.Msg    // JetStream: reused for every publish
	msgID   []string    // msg's Nats-Msg-Id value
	ackWait *time.Timer // JetStream: the oldest publish's deadline
	wfirst  int
	wn      int
	wsent   int
}

// Open connects as o says and returns a Publisher that owns the
// connection (Close closes it).
func Open(o Options, cfg Config) (*Publisher, error) {
	if err := checkToken(cfg.Sensor); err != nil {
		return nil, err
	}
	nc, err := Connect(o)
	if err != nil {
		return nil, err
	}
	p, err := New(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("NATS at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	p.owns = true
	return p, nil
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		p.js = js
		p.win = make([]entry, cfg.InFlight)
		if p.acks, err = newAcks(nc, cfg.InFlight); err != nil {
			return nil, err
		}
		p.msgID = make([]string, 1)
		p.msg.Header = nats.Header{jetstream.MsgIDHeader: p.msgID}
		p.ackWait = time.NewTimer(time.Hour)
		p.ackWait.Stop()
		if nc.IsConnected() {
			if err := p.ensureStream(); err != nil {
				p.acks.sub.Unsubscribe()
				return nil, err
			}
		}
	} else {
		p.win = make([]entry, coreBatch)
	}
	p.healthy = nc.IsConnected()
	nc.SetDisconnectErrHandler(func(_ *nats.Conn, err error) {
		p.mu.Lock()
		p.healthy = false
		p.fullLog = false
		p.room.Broadcast() // a Publish waiting for room drops instead
		held := p.nwait + p.inflight
		p.mu.Unlock()
		args := []any{"held", held, "buffer", p.cfg.Buffer}
		if err != nil {
			args = append(args, "error", err.Error())
		}
		p.cfg.Logger.Warn("NATS: disconnected; events wait in the buffer, capture goes on", args...)
		p.lost()
		p.poke()
	})
	nc.SetReconnectHandler(func(c *nats.Conn) {
		p.lost() // answers to what was sent before cannot come now
		p.connected("reconnected")
	})
	if !p.healthy {
		// Options.Wait let Connect return without a connection; the
		// sender says when the first one is made.
		p.notYet = true
		p.cfg.Logger.Warn("NATS: no server answers yet; capture goes on, events wait in the buffer and go out once one does", "buffer", p.cfg.Buffer)
	}
	go p.run()
	return p, nil
}

// lost fails every publish awaiting its acknowledgement: the connection
// that would have carried the answers is gone. The sender sends them again
// (the server drops the copies of those it stored).
func (p *Publisher) lost() {
	if p.acks != nil {
		p.acks.failAll(nats.ErrDisconnected)
	}
}

// connected marks the connection healthy and says so.
func (p *Publisher) connected(how string) {
	p.mu.Lock()
	held, dropped := p.nwait+p.inflight, p.stats.Dropped
	p.healthy = true
	p.room.Broadcast()
	p.mu.Unlock()
	p.cfg.Logger.Info("NATS: "+how+"; sending the held events", "url", p.nc.ConnectedUrlRedacted(), "held", held, "dropped", dropped)
	p.poke()
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
	if noJetStream(err) {
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
		if p.cfg.Wait && p.healthy && !p.closing && p.nc.IsConnected() {
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
			defer p.cfg.Logger.Warn("NATS: the event buffer is full; dropping the oldest events until the broker takes them again", "buffer", len(p.wait))
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
	// The sender needs a kick only for new work: it sends all that waits
	// whenever it runs, so more events need none (a kick per event would
	// cost it a wakeup per event).
	kick := p.nwait == 1
	p.mu.Unlock()
	if kick {
		p.poke()
	}
}

// Stats returns the counters so far.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Pending = p.nwait + p.inflight
	return s
}

// Connected reports whether the connection to the broker is up now.
func (p *Publisher) Connected() bool { return p.nc.IsConnected() }

// Close waits until every held event is published or ctx ends, then
// stops the sender; what is still held is counted as Unsent. It closes
// the connection only if Open made it.
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
	p.stats.Unsent = uint64(p.nwait + p.inflight)
	s := p.stats
	s.Pending = 0
	p.mu.Unlock()
	// Closing is not an outage: no disconnect line.
	p.nc.SetDisconnectErrHandler(nil)
	p.nc.SetReconnectHandler(nil)
	if p.owns {
		p.nc.Close()
	} else if p.acks != nil {
		p.acks.sub.Unsubscribe()
	}
	return s
}

// run is the sender: it moves events from the waiting ring into its
// window, publishes them, and retires them in order as their
// acknowledgements come. After a failure the whole window is published
// again once connected (go-back-N); the server drops the copies it
// already stored (Nats-Msg-Id). An event that was sent stays in the
// window until it is acknowledged, so it is never dropped: it may be
// stored already, and a drop must mean "not delivered".
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
		if p.notYet && connected {
			p.notYet = false
			p.connected("connected")
		}
		if needStream {
			if err := p.ensureStream(); err != nil {
				lastErr = p.fail(err, lastErr)
				backoff = p.sleep(backoff)
				continue
			}
		}
		sent, err := p.sendSome(connected)
		if err != nil {
			p.wsent = 0
			lastErr = p.fail(err, lastErr)
			backoff = p.sleep(backoff)
			continue
		}
		if p.js == nil {
			if sent == 0 {
				p.idle()
			} else {
				backoff, lastErr = 0, ""
			}
			continue
		}
		progressed, err := p.retire(sent == 0)
		var api *jetstream.APIError
		if errors.As(err, &api) {
			// The server refused this event itself (too large, say):
			// sending it again would fail again.
			p.reject(err)
			continue
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			p.mu.Lock()
			p.streamOK = false // deleted under us? make it again
			p.mu.Unlock()
		}
		if err != nil {
			p.wsent = 0
			lastErr = p.fail(err, lastErr)
			backoff = p.sleep(backoff)
			continue
		}
		if progressed {
			backoff, lastErr = 0, ""
		}
	}
}

// sendSome publishes, while connected, the window's events that have no
// live publish (after a failure), then waiting events while the window
// has room. It returns how many it published.
func (p *Publisher) sendSome(connected bool) (int, error) {
	if p.js == nil {
		if !connected {
			return 0, nil
		}
		return p.sendCore()
	}
	// The window's events from wsent to before were sent once and failed.
	n, before, again := 0, p.wn, 0
	defer func() {
		if again > 0 {
			p.mu.Lock()
			p.stats.Resent += uint64(again)
			p.mu.Unlock()
		}
	}()
	for connected {
		if p.wsent == p.wn && (p.wn == len(p.win) || p.take() == 0) {
			break
		}
		slot := (p.wfirst + p.wsent) % len(p.win)
		e := &p.win[slot]
		p.msg.Subject, p.msg.Data = e.subject, e.body
		p.msgID[0] = string(e.id)
		p.msg.Reply = p.acks.arm(slot, time.Now())
		if err := p.nc.PublishMsg(&p.msg); err != nil {
			p.acks.disarm(slot)
			return n, err
		}
		if p.wsent < before {
			again++
		}
		p.wsent++
		n++
	}
	return n, nil
}

// take moves as many waiting events as the window has room for into it,
// under one lock, and returns how many. Slices are swapped, not copied:
// the waiting slot gets the buffers of the event that left the window.
func (p *Publisher) take() int {
	p.mu.Lock()
	n := 0
	for p.wn < len(p.win) && p.nwait > 0 {
		slot := (p.wfirst + p.wn) % len(p.win)
		w := &p.wait[p.whead]
		p.win[slot], *w = *w, entry{id: p.win[slot].id[:0], body: p.win[slot].body[:0]}
		p.whead = (p.whead + 1) % len(p.wait)
		p.nwait--
		p.inflight++
		p.wn++
		n++
	}
	p.mu.Unlock()
	return n
}

// sendCore moves a window's worth of waiting events under one lock and
// publishes them as plain messages (no header: without a stream nothing
// deduplicates). What fails stays in the window, to be sent again.
func (p *Publisher) sendCore() (int, error) {
	p.take()
	n := 0
	var err error
	for p.wn > 0 {
		e := &p.win[p.wfirst]
		if err = p.nc.Publish(e.subject, e.body); err != nil {
			break
		}
		p.wfirst = (p.wfirst + 1) % len(p.win)
		p.wn--
		n++
	}
	p.published(n)
	return n, err
}

// published counts n events out of the window as delivered, and wakes
// the Publish calls waiting for room.
func (p *Publisher) published(n int) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.inflight -= n
	p.stats.Published += uint64(n)
	p.healthy = true
	p.room.Broadcast()
	p.mu.Unlock()
}

// retire waits for the oldest publish in the window (blocking only when
// block is set and there is nothing else to do) and retires every
// acknowledged one at the front.
func (p *Publisher) retire(block bool) (bool, error) {
	n := 0
	defer func() { p.published(n) }() // once for all the events retired
	for p.wsent > 0 {
		done, err, at := p.acks.result(p.wfirst)
		if !done {
			if n > 0 || !block && p.canSend() {
				return n > 0, nil
			}
			left := p.cfg.AckTimeout - time.Since(at)
			if left <= 0 {
				return false, jetstream.ErrAsyncPublishTimeout
			}
			p.ackWait.Reset(left)
			select {
			case <-p.acks.ready:
			case <-p.ackWait.C: // the next look finds it late
			case <-p.kick:
				p.ackWait.Stop()
				return false, nil // new events, a state change or Close
			case <-p.quit:
				p.ackWait.Stop()
				return false, nil
			}
			p.ackWait.Stop()
			continue
		}
		if err != nil {
			return n > 0, err
		}
		p.acks.disarm(p.wfirst)
		if p.cfg.AckLatency != nil {
			p.cfg.AckLatency(time.Since(at))
		}
		p.wfirst = (p.wfirst + 1) % len(p.win)
		p.wn--
		p.wsent--
		n++
	}
	if p.wsent == 0 && n == 0 && block {
		p.idle()
	}
	return n > 0, nil
}

// canSend reports whether the sender could publish more now.
func (p *Publisher) canSend() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return (p.nwait > 0 && p.wn < len(p.win) || p.wsent < p.wn) && p.nc.IsConnected()
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

// reject drops the window's first event, which the server refused. The
// events after it keep their publishes: the server answers each on its
// own, and sending them again would cost a window of publishes per
// refusal (a full store refuses every event).
func (p *Publisher) reject(err error) {
	p.acks.disarm(p.wfirst)
	p.wfirst = (p.wfirst + 1) % len(p.win)
	p.wn--
	p.wsent--
	p.mu.Lock()
	p.inflight--
	p.stats.Rejected++
	p.stats.Refusal = refusal(err)
	first := p.stats.Rejected == 1
	p.room.Signal()
	p.mu.Unlock()
	if first {
		p.cfg.Logger.Warn("NATS: the server refused an event; it is dropped and counted, and so will be any other it refuses", "error", err.Error())
	}
}

// fail counts a failure and logs it when it differs from the last one.
func (p *Publisher) fail(err error, last string) string {
	msg := err.Error()
	p.mu.Lock()
	p.stats.Failures++
	p.stats.LastFailure = msg
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		// A server that cannot write its store (the file system is full)
		// stops answering publishes; nothing else tells the client why.
		p.stats.LastFailure = "the server stopped acknowledging events (" + msg + "); a JetStream server does so when the file system of its store is full: see its log"
	}
	p.healthy = false
	p.room.Broadcast()
	p.mu.Unlock()
	if msg != last && !errors.Is(err, nats.ErrDisconnected) && !errors.Is(err, nats.ErrConnectionReconnecting) &&
		!errors.Is(err, nats.ErrReconnectBufExceeded) && !errors.Is(err, nats.ErrConnectionClosed) {
		// (Those come with a disconnect, which is logged once.)
		p.cfg.Logger.Warn("NATS: publishing failed; retrying", "error", msg)
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

// refusal is the server's description in a JetStream API error.
func refusal(err error) string {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Description != "" {
		return api.Description
	}
	return err.Error()
}
