package natspub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Message is one stored event.
type Message struct {
	Seq     uint64
	Time    time.Time // when the server stored it
	Subject string
	ID      string // Nats-Msg-Id, the event's id
	Data    []byte // the JSON event
}

// ErrNoStream says the event stream does not exist (nothing published yet).
var ErrNoStream = errors.New("no event stream " + StreamName)

// ReadAll returns every message stored in the event stream, oldest first.
func ReadAll(ctx context.Context, o Options) ([]Message, error) {
	nc, err := Connect(o)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStream
	}
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var out []Message
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return out, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return out, err
			}
			out = append(out, Message{Seq: md.Sequence.Stream, Time: md.Timestamp, Subject: m.Subject(),
				ID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
			if md.Sequence.Stream >= info.State.LastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil {
			return out, err
		}
		if got == 0 {
			return out, fmt.Errorf("stream %s: %d of %d messages read, then nothing came", StreamName, len(out), info.State.Msgs)
		}
	}
	return out, nil
}
