package natspub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

// The publish benchmarks send b.N records of about 600 bytes, each with a
// unique id, to a fresh embedded broker over TCP on loopback, and report
// msgs/s from the first publish until the last is acknowledged (JetStream)
// or flushed (core). Raw* are minimal nats.go programs, the ceilings;
// Publisher* is tcpsentry's publisher on the same records. Run them side
// by side:
//
//	go test -run NONE -bench . -benchtime 200000x -count 5 ./detectors/events/natspub

func records(n int) (ids, bodies [][]byte) {
	pad := make([]byte, 520)
	for i := range pad {
		pad[i] = 'x'
	}
	for i := range n {
		id := fmt.Appendf(nil, "bench-7f3c-%012d", i)
		ids = append(ids, id)
		bodies = append(bodies, fmt.Appendf(nil, `{"event":{"id":%q,"action":"connection_refused"},"pad":%q}`, id, pad))
	}
	return ids, bodies
}

func report(b *testing.B, d time.Duration) {
	b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/s")
}

func BenchmarkRawJetStreamAsync(b *testing.B) {
	url := startBrokerB(b)
	ids, bodies := records(b.N)
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(natspub.DefaultInFlight))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natspub.StreamName, Subjects: []string{natspub.StreamSubject}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := js.PublishAsync("tcpsentry.events.bench.connection_refused", bodies[i], jetstream.WithMsgID(string(ids[i]))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	report(b, time.Since(start))
}

func BenchmarkPublisherJetStream(b *testing.B) {
	benchPublisher(b, natspub.JetStream)
}

func BenchmarkRawCore(b *testing.B) {
	url := startBrokerB(b)
	_, bodies := records(b.N)
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := nc.Publish("tcpsentry.events.bench.connection_refused", bodies[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	report(b, time.Since(start))
}

func BenchmarkPublisherCore(b *testing.B) {
	benchPublisher(b, natspub.Core)
}

func benchPublisher(b *testing.B, mode natspub.Mode) {
	url := startBrokerB(b)
	ids, bodies := records(b.N)
	p, err := natspub.Open(natspub.Options{URLs: url}, natspub.Config{Sensor: "bench", Mode: mode, Wait: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		p.Publish("connection_refused", ids[i], bodies[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st := p.Close(ctx) // core: closing the connection flushes it
	report(b, time.Since(start))
	if st.Published != uint64(b.N) {
		b.Fatalf("%+v", st)
	}
}
