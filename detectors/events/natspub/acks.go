package natspub

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// acks tracks the JetStream acknowledgements of the sender's window. The
// sender publishes each event with a reply subject of its own under one
// wildcard inbox; the server answers there, and onAck (the subscription's
// goroutine) records the answer in the event's window slot.
//
// This replaces jetstream.PublishMsgAsync, which costs per event a future
// with channels, a timer, a map entry and a reflective JSON decode of the
// acknowledgement: at tens of thousands of events a second that CPU is
// taken from the capture on a small machine (bench/events). Here an event
// costs a reply subject, and a whole window shares one timeout.
type acks struct {
	inbox string // "<inbox>.": reply subjects are inbox + token
	sub   *nats.Subscription
	ready chan struct{} // an answer came (capacity 1)

	mu sync.Mutex
	// Per window slot: the token of its live publish (0: none) and, once
	// answered, the result (done; err nil for stored).
	tok  []uint64
	sent []uint64 // publishes of this slot so far: tokens never repeat
	done []bool
	err  []error
	at   []time.Time // when the live publish was sent
}

func newAcks(nc *nats.Conn, slots int) (*acks, error) {
	a := &acks{
		inbox: nc.NewInbox() + ".",
		ready: make(chan struct{}, 1),
		tok:   make([]uint64, slots),
		sent:  make([]uint64, slots),
		done:  make([]bool, slots),
		err:   make([]error, slots),
		at:    make([]time.Time, slots),
	}
	sub, err := nc.Subscribe(a.inbox+"*", a.onAck)
	if err != nil {
		return nil, err
	}
	// Never drop an answer as a slow consumer: at most a window's worth
	// (and stale ones after a resend) can be pending.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	a.sub = sub
	return a, nil
}

// arm gives slot a new publish and returns its reply subject. The token is
// slot + k*slots for the slot's k-th publish: unique, and the slot is the
// token modulo the window, so an answer finds its slot without a map, and
// a late answer to an earlier publish is recognised and ignored.
func (a *acks) arm(slot int, now time.Time) string {
	a.mu.Lock()
	a.sent[slot]++
	t := uint64(slot) + a.sent[slot]*uint64(len(a.tok))
	a.tok[slot], a.done[slot], a.err[slot], a.at[slot] = t, false, nil, now
	a.mu.Unlock()
	return a.inbox + strconv.FormatUint(t, 10)
}

// disarm forgets slot's publish (published failed, or the slot is
// retired).
func (a *acks) disarm(slot int) {
	a.mu.Lock()
	a.tok[slot], a.done[slot], a.err[slot] = 0, false, nil
	a.mu.Unlock()
}

// result reports whether slot's publish was answered, and how.
func (a *acks) result(slot int) (done bool, err error, at time.Time) {
	a.mu.Lock()
	done, err, at = a.done[slot], a.err[slot], a.at[slot]
	a.mu.Unlock()
	return done, err, at
}

// failAll answers every live publish with err: after a disconnect their
// answers will not come.
func (a *acks) failAll(err error) {
	a.mu.Lock()
	for i, t := range a.tok {
		if t != 0 && !a.done[i] {
			a.done[i], a.err[i] = true, err
		}
	}
	a.mu.Unlock()
	a.signal()
}

func (a *acks) signal() {
	select {
	case a.ready <- struct{}{}:
	default:
	}
}

func (a *acks) onAck(m *nats.Msg) {
	t, err := strconv.ParseUint(m.Subject[min(len(a.inbox), len(m.Subject)):], 10, 64)
	if err != nil || t == 0 {
		return
	}
	res := ackError(m)
	slot := int(t % uint64(len(a.tok)))
	a.mu.Lock()
	if a.tok[slot] != t || a.done[slot] {
		a.mu.Unlock()
		return // an answer to an earlier publish of the slot
	}
	a.done[slot], a.err[slot] = true, res
	a.mu.Unlock()
	a.signal()
}

var (
	ackErrorKey = []byte(`"error"`)
	ackSeqKey   = []byte(`"seq":`)
)

// ackError is nil when m says the event is stored (or was already: a
// duplicate), else the error it says, as jetstream's PublishMsgAsync
// would give it.
func ackError(m *nats.Msg) error {
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return jetstream.ErrNoStreamResponse
	}
	// The server writes {"stream":"...","seq":N[,"duplicate":true]}; a
	// full decode is needed only for anything else.
	d := m.Data
	if bytes.HasPrefix(d, []byte(`{"stream":"`)) && bytes.HasSuffix(d, []byte("}")) &&
		bytes.Contains(d, ackSeqKey) && !bytes.Contains(d, ackErrorKey) {
		return nil
	}
	var r struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return r.Error
	}
	if r.Stream == "" {
		return jetstream.ErrInvalidJSAck
	}
	return nil
}
