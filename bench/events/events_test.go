//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/traffic"
)

// TestMain lets the test binary be the broker process of the "in another
// process" cases, as the command is.
func TestMain(m *testing.M) {
	if os.Getenv(brokerChildEnv) != "" {
		if err := brokerChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSmall runs the whole benchmark on small inputs: every path
// delivers every event (run checks the counts and the stream), and the
// report has its tables and goals.
func TestRunSmall(t *testing.T) {
	cfg := defaultConfig()
	cfg.Messages, cfg.Repeat = 3000, 1
	cfg.Traffic = traffic.Options{Connections: 3000, Concurrent: 300, IPv6Share: 0.1, VLANShare: 0.1, Seed: 3}
	cfg.Refused = []float64{0.2}
	res, err := run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := res.Loads[0]
	if l.Events < 500 || l.Events > 700 {
		t.Fatalf("%d of 3000 connections refused at a share of 0.2", l.Events)
	}
	var buf bytes.Buffer
	res.report(&buf)
	for _, want := range []string{
		"| tcpsentry publisher, JetStream | ",
		"| tcpsentry publisher, core NATS | ",
		"| 20% refused, ",
		"refusals, events to JetStream",
		"refusals, events to JetStream in another process",
		"## Goals",
		"-refused 0.2 ",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestRefusedTraffic: each refused connection is one connection_refused
// event, and other traffic is unchanged by the option's presence.
func TestRefusedTraffic(t *testing.T) {
	o := traffic.Options{Connections: 2000, Concurrent: 100, Seed: 9}
	var a, b bytes.Buffer
	sa, err := traffic.Write(&a, o)
	if err != nil {
		t.Fatal(err)
	}
	o.RefusedShare = 0.5
	sb, err := traffic.Write(&b, o)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Refused != 0 || sb.Refused < 900 || sb.Refused > 1100 || sb.Packets >= sa.Packets {
		t.Fatalf("without refusals %+v, with half refused %+v", sa, sb)
	}
	for _, k := range []int{replayDiscard, replayJetStream, replayJetStreamExt} {
		if _, _, err := replayRun(context.Background(), k, b.Bytes(), 1, sb.Packets, sb.Refused); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := replayRun(context.Background(), replayDiscard, a.Bytes(), 1, sa.Packets, 0); err != nil {
		t.Fatal(err)
	}
}
