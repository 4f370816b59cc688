// Command siem-consumer is an example of how a SIEM (or the shipper in
// front of one) reads tcpsentry's events from NATS JetStream: a durable
// pull consumer on the TCPSENTRY_EVENTS stream, with explicit
// acknowledgements, so that nothing is lost while the consumer is down
// and nothing is acknowledged before it has been handed on.
//
// It writes each event on stdout as one JSON line (the stored bytes,
// unchanged), where a log shipper can pick it up; replace forward with
// the SIEM's own ingestion.
//
//	go run ./docs/examples/siem-consumer --nats nats://127.0.0.1:4222 --durable siem
//
// Delivery is at least once: after a crash between forward and Ack the
// event comes again. Deduplicate on event.id if that matters.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server URL(s), comma-separated")
	creds := flag.String("creds", "", "NATS credentials file")
	durable := flag.String("durable", "siem", "name of the durable consumer (one per consuming application)")
	filter := flag.String("filter", "tcpsentry.events.>", "subjects to read, e.g. tcpsentry.events.span-a.> for one sensor")
	flag.Parse()

	opts := []nats.Option{nats.Name("siem-consumer"), nats.MaxReconnects(-1)}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		log.Fatalf("connecting to %s: %v", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Created once, then found again by name: the server remembers what
	// was acknowledged, so a restart resumes where it stopped.
	cons, err := js.CreateOrUpdateConsumer(ctx, "TCPSENTRY_EVENTS", jetstream.ConsumerConfig{
		Durable:       *durable,
		Description:   "SIEM ingestion of tcpsentry events",
		FilterSubject: *filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second, // redelivered if not acknowledged by then
		MaxAckPending: 1000,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		log.Fatalf("no stream TCPSENTRY_EVENTS at %s: no sensor has published yet", *url)
	}
	if err != nil {
		log.Fatal(err)
	}

	out := bufio.NewWriter(os.Stdout)
	// The handler is called for one message at a time, in stream order
	// (redeliveries aside).
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev event
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.Event.ID == "" {
			// Not an event: never deliver it again.
			log.Printf("%s: dropping a message that is not a tcpsentry event (%v)", m.Subject(), err)
			_ = m.Term()
			return
		}
		if ev.Tcpsentry.Schema != 1 {
			log.Printf("event %s has schema %d; this consumer knows 1", ev.Event.ID, ev.Tcpsentry.Schema)
		}
		if err := forward(out, m.Data()); err != nil {
			// The SIEM is not taking events now: try this one again later.
			log.Printf("forwarding event %s: %v", ev.Event.ID, err)
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		_ = m.Ack()
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Printf("consuming: %v", err)
	}))
	if err != nil {
		log.Fatal(err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	cc.Drain() // finish the messages already received, then stop
	<-cc.Closed()
}

// event is the part of a tcpsentry event (schema v1) this example looks
// at; the SIEM gets the whole document.
type event struct {
	Timestamp time.Time `json:"@timestamp"`
	Event     struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		Reason   string `json:"reason"`
		Severity int    `json:"severity"`
	} `json:"event"`
	Tcpsentry struct {
		Schema int `json:"schema"`
	} `json:"tcpsentry"`
}

// forward hands one event to the SIEM: here, one line on stdout, flushed
// before the event is acknowledged.
func forward(w *bufio.Writer, body []byte) error {
	w.Write(body)
	w.WriteByte('\n')
	return w.Flush()
}
