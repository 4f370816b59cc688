package natspub

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
)

// TestAckError: every answer a JetStream server gives a publish is read as
// jetstream's own client reads it.
func TestAckError(t *testing.T) {
	noResponders := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	for _, c := range []struct {
		name string
		m    *nats.Msg
		want error // nil: stored
		code jetstream.ErrorCode
	}{
		{"stored", &nats.Msg{Data: []byte(`{"stream":"TCPSENTRY_EVENTS","seq":17}`)}, nil, 0},
		{"stored, with domain", &nats.Msg{Data: []byte(`{"stream":"TCPSENTRY_EVENTS","domain":"hub","seq":17}`)}, nil, 0},
		{"duplicate", &nats.Msg{Data: []byte(`{"stream":"TCPSENTRY_EVENTS","seq":17,"duplicate":true}`)}, nil, 0},
		{"other key order", &nats.Msg{Data: []byte(`{"seq":17,"stream":"TCPSENTRY_EVENTS"}`)}, nil, 0},
		{"refused", &nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`)}, &jetstream.APIError{}, 10077},
		{"refused, with stream", &nats.Msg{Data: []byte(`{"stream":"TCPSENTRY_EVENTS","error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}`)}, &jetstream.APIError{}, 10054},
		{"no stream", noResponders, jetstream.ErrNoStreamResponse, 0},
		{"empty", &nats.Msg{}, jetstream.ErrInvalidJSAck, 0},
		{"not JSON", &nats.Msg{Data: []byte(`{"stream":"seq"`)}, jetstream.ErrInvalidJSAck, 0},
		{"no stream name", &nats.Msg{Data: []byte(`{"seq":3}`)}, jetstream.ErrInvalidJSAck, 0},
	} {
		got := ackError(c.m)
		var api *jetstream.APIError
		switch {
		case c.want == nil && got != nil:
			t.Errorf("%s: %v, want stored", c.name, got)
		case c.code != 0 && (!errors.As(got, &api) || api.ErrorCode != c.code || api.Description == ""):
			t.Errorf("%s: %v, want the server's error %d", c.name, got, c.code)
		case c.want != nil && c.code == 0 && !errors.Is(got, c.want):
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAcksMatchPublish: an answer counts only for the publish it answers.
// A late answer to an earlier publish of the same slot (sent again after a
// failure, or before the slot was reused) is ignored; a lost connection
// fails what awaits an answer.
func TestAcksMatchPublish(t *testing.T) {
	b, err := broker.Start(broker.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a, err := newAcks(nc, 4)
	if err != nil {
		t.Fatal(err)
	}
	stored := []byte(`{"stream":"S","seq":1}`)
	answer := func(reply string, body []byte) {
		t.Helper()
		if err := nc.Publish(reply, body); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// wait until slot's state is done, or a second has passed.
	wait := func(slot int) (bool, error) {
		deadline := time.Now().Add(time.Second)
		for {
			done, err, _ := a.result(slot)
			if done || time.Now().After(deadline) {
				return done, err
			}
			select {
			case <-a.ready:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	first := a.arm(1, time.Now())
	second := a.arm(1, time.Now()) // sent again
	if first == second {
		t.Fatalf("two publishes of slot 1 share the reply %s", first)
	}
	answer(first, stored)
	if done, err := wait(1); done {
		t.Fatalf("the answer to the first publish was taken for the second's (err %v)", err)
	}
	answer(second, []byte(`{"error":{"code":503,"err_code":10077,"description":"full"}}`))
	if done, err := wait(1); !done || err == nil {
		t.Fatalf("the second publish's refusal: done %v, err %v", done, err)
	}
	answer(second, stored) // a second answer changes nothing
	if _, err, _ := a.result(1); err == nil {
		t.Fatal("a later answer overwrote the first")
	}

	a.disarm(1)
	third := a.arm(1, time.Now()) // the slot reused for the next event
	other := a.arm(2, time.Now())
	answer(second, stored)
	answer(third[:len(third)-1]+"x", stored) // not a token
	if done, _ := wait(1); done {
		t.Fatal("an answer to the slot's previous event was taken for the next")
	}
	answer(third, stored)
	if done, err := wait(1); !done || err != nil {
		t.Fatalf("slot 1 answered as stored: done %v, err %v", done, err)
	}

	a.failAll(nats.ErrDisconnected)
	if done, err, _ := a.result(2); !done || !errors.Is(err, nats.ErrDisconnected) {
		t.Fatalf("after a lost connection slot 2 awaits: done %v, err %v", done, err)
	}
	if _, err, _ := a.result(1); err != nil {
		t.Fatalf("a lost connection changed slot 1's answer, which had come: %v", err)
	}
	answer(other, stored) // too late: the sender sends it again
	if _, err, _ := a.result(2); !errors.Is(err, nats.ErrDisconnected) {
		t.Fatalf("slot 2 after a late answer: %v", err)
	}
}
