package natspub_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

func startBroker(t *testing.T, dir, listen string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{Listen: listen, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// streamIDs reads the whole stream and returns the Nats-Msg-Id of every
// message, in stream order.
func streamIDs(t *testing.T, url string) []string {
	t.Helper()
	nc, err := natspub.Connect(natspub.Options{URLs: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, natspub.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	return ids
}

func TestPublishJetStream(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	nc, err := natspub.Connect(natspub.Options{URLs: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var acks, slow atomic.Uint64
	p, err := natspub.New(nc, natspub.Config{Sensor: "s1", Buffer: 1000, AckLatency: func(d time.Duration) {
		acks.Add(1)
		if d <= 0 || d > 30*time.Second {
			slow.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Connected() {
		t.Fatal("not connected")
	}
	const n = 5000
	for i := range n {
		p.Publish("connection_refused", fmt.Appendf(nil, "s1-%06d", i), []byte(`{"x":1}`))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := p.Close(ctx)
	if st.Published+st.Dropped != n || st.Unsent != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Every acknowledged event had its latency taken, and a sane one.
	if acks.Load() != st.Published || slow.Load() != 0 {
		t.Fatalf("%d latencies (%d out of range) for %d published", acks.Load(), slow.Load(), st.Published)
	}
	ids := streamIDs(t, b.ClientURL())
	if uint64(len(ids)) != st.Published {
		t.Fatalf("%d in the stream, %d published", len(ids), st.Published)
	}
	t.Logf("%+v", st)
}

// TestPublishRefused: a stream that refuses events (here: full, with
// DiscardNew; a store out of space refuses them the same way) has each
// refusal counted once with the server's reason, and the publishes after
// a refused one are not sent again: a refusal per event must not cost a
// window of publishes each (it once cost 1.5 million resends and a
// 30-second stall for 8,600 refusals).
func TestPublishRefused(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	nc, err := natspub.Connect(natspub.Options{URLs: b.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const room, n = 100, 5000
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natspub.StreamName, Subjects: []string{natspub.StreamSubject},
		MaxMsgs: room, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	p, err := natspub.New(nc, natspub.Config{Sensor: "s1", Buffer: 1000, Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		p.Publish("connection_refused", fmt.Appendf(nil, "s1-%06d", i), []byte(`{"x":1}`))
	}
	st := p.Close(ctx)
	t.Logf("%+v in %v", st, time.Since(start))
	if st.Published != room || st.Rejected != n-room || st.Dropped != 0 || st.Unsent != 0 || st.Resent != 0 {
		t.Fatalf("stats %+v; want %d published, %d refused, none sent again", st, room, n-room)
	}
	if st.Refusal != "maximum messages exceeded" {
		t.Errorf("refusal %q", st.Refusal)
	}
}
