package detectors

import (
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

const sec = int64(time.Second)

func v4(a, b, c, d byte) (x [16]byte) {
	x[0], x[1], x[2], x[3] = a, b, c, d
	return x
}

var (
	cli = v4(192, 0, 2, 7)
	srv = v4(10, 0, 0, 5)
)

func seg(src [16]byte, sport uint16, dst [16]byte, dport uint16, flags uint8, seq, ack uint32, n int) decode.Packet {
	return decode.Packet{Family: 4, Src: src, Dst: dst, SrcPort: sport, DstPort: dport,
		Flags: flags, Seq: seq, Ack: ack, PayloadLen: n, Window: 1000}
}

const (
	S  = decode.FlagSYN
	A  = decode.FlagACK
	RA = decode.FlagRST | decode.FlagACK
	FA = decode.FlagFIN | decode.FlagACK
)

// harness is one worker's table + detectors feeding a Correlator.
type harness struct {
	t   *testing.T
	tb  *flowtable.Table
	set *Set
	out *Out
	cor *Correlator
	got []Event
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t}
	h.cor = NewCorrelator(Config{}, 1, func(e *Event) { h.got = append(h.got, *e) })
	h.out = NewOut(0, func(b *Batch) *Batch {
		if b != nil {
			h.cor.Add(b)
			b.Events, b.Facts = b.Events[:0], b.Facts[:0]
			return b
		}
		return NewBatch()
	})
	h.set = NewSet(Config{}, h.out, 64)
	tb, err := flowtable.New(flowtable.Config{Capacity: 64, Seed: 9}, h.set)
	if err != nil {
		t.Fatal(err)
	}
	h.tb = tb
	return h
}

func (h *harness) send(p decode.Packet, ts int64) {
	c, s := h.tb.Packet(&p, ts)
	h.set.Segment(c, &p, s, ts)
}

func (h *harness) end() []Event {
	h.tb.AdvanceExact(h.tb.Now())
	h.out.Flushing()
	h.tb.Flush()
	h.out.Close()
	h.cor.Finish()
	return h.got
}

func TestConnectionRefused(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 41838, srv, 7211, S, 2154306034, 0, 0), 10*sec)
	h.send(seg(srv, 7211, cli, 41838, RA, 0, 2154306035, 0), 10*sec+120_000)
	evs := h.end()
	if len(evs) != 1 {
		t.Fatalf("%d events: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Type != TypeConnectionRefused || e.Cause != CauseNoListener || e.Severity != SeverityNotice {
		t.Fatalf("event %v/%v/%v", e.Type, e.Cause, e.Severity)
	}
	if e.Client.Addr != cli || e.Client.Port != 41838 || e.Server.Addr != srv || e.Server.Port != 7211 || e.Family != 4 {
		t.Fatalf("endpoints %+v %+v", e.Client, e.Server)
	}
	if e.Start != 10*sec || e.End != 10*sec+120_000 || e.Count != 1 {
		t.Fatalf("times %d %d count %d", e.Start, e.End, e.Count)
	}
	if v, _ := e.Lookup(EvSynRetransmits); v != 0 {
		t.Fatalf("syn_retransmits %d", v)
	}
	if got := string(e.History[:e.HistoryLen]); got != "Sr" {
		t.Fatalf("history %q", got)
	}
}

func TestSynUnansweredByRetransmissions(t *testing.T) {
	h := newHarness(t)
	// Retransmissions every 0.9 s: the third comes before the 3 s timer.
	for i := int64(0); i < 5; i++ {
		h.send(seg(cli, 50000, srv, 9090, S, 42, 0, 0), i*900*int64(time.Millisecond))
	}
	evs := h.end()
	if len(evs) != 1 || evs[0].Type != TypeSynUnanswered || evs[0].Cause != CauseSilentDrop {
		t.Fatalf("events %+v", evs)
	}
	e := evs[0]
	if n, _ := e.Lookup(EvSynRetransmits); n != 3 {
		t.Fatalf("syn_retransmits %d", n)
	}
	if w, _ := e.Lookup(EvWaitMs); w != 2700 || e.End != 2700*int64(time.Millisecond) {
		t.Fatalf("wait_ms %d end %d", w, e.End)
	}
}

func TestSynUnansweredByTimer(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 50001, srv, 9090, S, 42, 0, 0), 0)
	h.send(seg(cli, 50001, srv, 9090, S, 42, 0, 0), sec)
	// Another flow's packet moves the clock past the deadline.
	h.send(seg(cli, 50002, srv, 80, S, 1, 0, 0), 4*sec)
	h.send(seg(srv, 80, cli, 50002, RA, 0, 2, 0), 4*sec+1)
	evs := h.end()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	e := evs[0]
	if e.Type != TypeSynUnanswered || e.End != 3*sec || e.Client.Port != 50001 {
		t.Fatalf("event %+v", e)
	}
	if w, _ := e.Lookup(EvWaitMs); w != 3000 {
		t.Fatalf("wait_ms %d", w)
	}
	if evs[1].Type != TypeConnectionRefused {
		t.Fatalf("second event %v", evs[1].Type)
	}
}

func TestSynUnansweredAtEndOfCapture(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 50003, srv, 9090, S, 42, 0, 0), 5*sec)
	h.send(seg(cli, 50003, srv, 9090, S, 42, 0, 0), 6*sec)
	evs := h.end() // the capture ends 1 s after the SYN
	if len(evs) != 1 || evs[0].Type != TypeSynUnanswered || evs[0].End != 6*sec {
		t.Fatalf("events %+v", evs)
	}
	if n, _ := evs[0].Lookup(EvSynRetransmits); n != 1 {
		t.Fatalf("syn_retransmits %d", n)
	}
}

func TestCleanConnectionIsSilent(t *testing.T) {
	h := newHarness(t)
	ms := int64(time.Millisecond)
	h.send(seg(cli, 50004, srv, 80, S, 100, 0, 0), 0)
	h.send(seg(srv, 80, cli, 50004, S|A, 900, 101, 0), 1*ms)
	h.send(seg(cli, 50004, srv, 80, A, 101, 901, 0), 2*ms)
	h.send(seg(cli, 50004, srv, 80, A, 101, 901, 10), 3*ms)
	h.send(seg(srv, 80, cli, 50004, A, 901, 111, 50), 4*ms)
	h.send(seg(cli, 50004, srv, 80, FA, 111, 951, 0), 5*ms)
	h.send(seg(srv, 80, cli, 50004, FA, 951, 112, 0), 6*ms)
	h.send(seg(cli, 50004, srv, 80, A, 112, 952, 0), 7*ms)
	// A late SYN/ACK (slow server) within the timeout is no event.
	h.send(seg(cli, 50005, srv, 80, S, 7, 0, 0), 10*ms)
	h.send(seg(srv, 80, cli, 50005, S|A, 70, 8, 0), 2*sec)
	// A RST that ends a finished exchange is normal.
	h.send(seg(cli, 50006, srv, 80, S, 1, 0, 0), 3*sec)
	h.send(seg(srv, 80, cli, 50006, S|A, 9, 2, 0), 3*sec+ms)
	h.send(seg(cli, 50006, srv, 80, A, 2, 10, 5), 3*sec+2*ms)
	h.send(seg(srv, 80, cli, 50006, RA, 10, 7, 0), 3*sec+3*ms)
	if evs := h.end(); len(evs) != 0 {
		t.Fatalf("events on clean traffic: %+v", evs)
	}
}

// TestOneSidedCaptureIsSilent: a SPAN that sees only the client's
// direction shows SYN, then ACKs and data; the SYN was answered.
func TestOneSidedCaptureIsSilent(t *testing.T) {
	h := newHarness(t)
	ms := int64(time.Millisecond)
	h.send(seg(cli, 50010, srv, 80, S, 100, 0, 0), 0)
	h.send(seg(cli, 50010, srv, 80, A, 101, 5001, 0), 1*ms)
	h.send(seg(cli, 50010, srv, 80, A, 101, 5001, 100), 2*ms)
	h.send(seg(cli, 50010, srv, 80, A, 201, 9001, 0), 5*sec)
	if evs := h.end(); len(evs) != 0 {
		t.Fatalf("events on a one-sided capture: %+v", evs)
	}
}

func TestNamesComplete(t *testing.T) {
	for i := Type(1); i < NumTypes; i++ {
		if typeNames[i] == "" {
			t.Errorf("type %d has no name", i)
		}
		if severityNotes[i] == "" {
			t.Errorf("type %s has no severity note", i)
		}
	}
	for i := Cause(1); i < NumCauses; i++ {
		if causeNames[i] == "" {
			t.Errorf("cause %d has no name", i)
		}
	}
	for i := EvidenceKey(0); i < NumEvidenceKeys; i++ {
		if evidenceNames[i] == "" {
			t.Errorf("evidence %d has no name", i)
		}
	}
}

func withTS(p decode.Packet, tsval uint32) decode.Packet {
	p.Opts |= decode.OptTimestamp
	p.TSval = tsval
	return p
}

// TestPortReuseRejectedAfterEviction: the old connection left the table
// 10 s after it closed; a SYN 20 s later with an older timestamp meets the
// server's TIME_WAIT (a bare ACK): port_reuse_rejected / time_wait_paws,
// and no syn_unanswered, since the SYN was answered.
func TestPortReuseRejectedAfterEviction(t *testing.T) {
	h := newHarness(t)
	h.send(withTS(seg(cli, 40000, srv, 80, S, 100, 0, 0), 500000), 0)
	h.send(withTS(seg(srv, 80, cli, 40000, S|A, 7000, 101, 0), 9), 1e6)
	h.send(withTS(seg(cli, 40000, srv, 80, A, 101, 7001, 0), 500001), 2e6)
	h.send(withTS(seg(srv, 80, cli, 40000, FA, 7001, 101, 0), 10), 3e6)
	h.send(withTS(seg(cli, 40000, srv, 80, FA, 101, 7002, 0), 500003), 4e6)
	h.send(withTS(seg(srv, 80, cli, 40000, A, 7002, 102, 0), 11), 5e6)
	// 20 s later, another host behind the same address, its clock behind.
	h.send(withTS(seg(cli, 40000, srv, 80, S, 90000, 0, 0), 1000), 20*sec)
	h.send(withTS(seg(srv, 80, cli, 40000, A, 7002, 102, 0), 12), 20*sec+1e5)
	evs := h.end()
	if len(evs) != 1 || evs[0].Type != TypePortReuseRejected || evs[0].Cause != CauseTimeWaitPAWS {
		t.Fatalf("events %+v", evs)
	}
	if v, _ := evs[0].Lookup(EvSincePreviousMs); v < 19990 || v > 20000 {
		t.Errorf("since_previous_ms %d", v)
	}
}

// TestPortReuseRejectedUnremembered: the sensor never saw the old
// connection (the capture began in its TIME_WAIT, or the table's memory of
// ended connections lost it). The bare ACK answering the SYN is the
// evidence, and its TSecr, the old connection's last TSval as the server
// echoes it, decides the cause; how long ago the old one ended is unknown.
func TestPortReuseRejectedUnremembered(t *testing.T) {
	for _, c := range []struct {
		name       string
		ts         bool   // the SYN and the ACK carry timestamps
		tsecr      uint32 // the ACK's
		cause      Cause
		previousTS int64
	}{
		{"paws", true, 500003, CauseTimeWaitPAWS, 500003},
		{"seq", true, 900, CauseTimeWaitSeq, 900},
		{"no timestamps", false, 0, CauseTimeWaitSeq, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			syn := seg(cli, 40002, srv, 80, S, 90000, 0, 0)
			ack := seg(srv, 80, cli, 40002, A, 7002, 102, 0)
			if c.ts {
				syn = withTS(syn, 1000)
				ack = withTS(ack, 12)
				ack.TSecr = c.tsecr
			}
			h.send(syn, 0)
			h.send(ack, 1e5)
			evs := h.end()
			if len(evs) != 1 || evs[0].Type != TypePortReuseRejected || evs[0].Cause != c.cause {
				t.Fatalf("events %+v", evs)
			}
			e := &evs[0]
			if v, ok := e.Lookup(EvSincePreviousMs); ok {
				t.Errorf("since_previous_ms %d; the old connection is unknown", v)
			}
			if v, ok := e.Lookup(EvPreviousTSval); ok != c.ts || ok && v != c.previousTS {
				t.Errorf("previous_tsval %d, %v; want %d", v, ok, c.previousTS)
			}
			if v, _ := e.Lookup(EvAck); v != 102 {
				t.Errorf("ack %d", v)
			}
			msg := string(AppendMessage(nil, e))
			if !strings.Contains(msg, "bare ACK for an earlier connection") || strings.Contains(msg, " 0 ms") {
				t.Errorf("message %q", msg)
			}
		})
	}
}

// TestWindowProbesSilent: a sender probing a zero window again and again,
// never acknowledged, is not an unanswered request.
func TestWindowProbesSilent(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 40001, srv, 80, S, 100, 0, 0), 0)
	h.send(seg(srv, 80, cli, 40001, S|A, 7000, 101, 0), 1e6)
	h.send(seg(cli, 40001, srv, 80, A, 101, 7001, 0), 2e6)
	h.send(seg(cli, 40001, srv, 80, A, 101, 7001, 1000), 3e6)
	zero := seg(srv, 80, cli, 40001, A, 7001, 1101, 0)
	zero.Window = 0
	h.send(zero, 4e6)
	for i := int64(0); i < 6; i++ {
		h.send(seg(cli, 40001, srv, 80, A, 1101, 7001, 1), 5e6+i*sec) // the probe: one byte
		h.send(zero, 5e6+i*sec+1e5)                                   // still zero, not acked
	}
	h.send(seg(cli, 40001, srv, 80, FA, 1101, 7001, 0), 10*sec)
	if evs := h.end(); len(evs) != 0 {
		t.Fatalf("events on window probes: %+v", evs)
	}
}

// TestMidstreamNoInvalidAck: picked up midstream, the ISNs are unknown and
// no ACK can be called invalid.
func TestMidstreamNoInvalidAck(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 40002, srv, 80, A, 5000, 123456789, 100), 0)
	h.send(seg(srv, 80, cli, 40002, A, 999999, 5100, 100), 1e6)
	h.send(seg(cli, 40002, srv, 80, A, 5100, 1, 0), 2e6) // ack far from anything seen
	if evs := h.end(); len(evs) != 0 {
		t.Fatalf("events on a midstream flow: %+v", evs)
	}
}

// TestInvalidAckSmallDistance: an ACK just past what the server sent
// (a segment the capture missed) is ack_of_unseen_segment, marked as a
// possible capture artefact.
func TestInvalidAckSmallDistance(t *testing.T) {
	h := newHarness(t)
	h.send(seg(cli, 40003, srv, 80, S, 100, 0, 0), 0)
	h.send(seg(srv, 80, cli, 40003, S|A, 7000, 101, 0), 1e6)
	h.send(seg(cli, 40003, srv, 80, A, 101, 7001, 0), 2e6)
	h.send(seg(cli, 40003, srv, 80, A, 101, 8449, 0), 3e6) // 1448 bytes never seen
	evs := h.end()
	if len(evs) != 1 || evs[0].Type != TypeInvalidAck || evs[0].Cause != CauseAckOfUnseenSegment ||
		evs[0].Capture&CaptureLossSuspected == 0 {
		t.Fatalf("events %+v", evs)
	}
	if d, _ := evs[0].Lookup(EvAckDistance); d != 1448 {
		t.Errorf("distance %d", d)
	}
}

// TestFoldReportOnQuietLink: a fold window's report goes out when the
// workers' watermarks pass its end, without waiting for another event
// (a quiet live link), and nothing more at Finish.
func TestFoldReportOnQuietLink(t *testing.T) {
	var got []Event
	c := NewCorrelator(Config{}, 1, func(e *Event) { got = append(got, *e) })
	e := Event{Type: TypeConnectionRefused, Cause: CauseNoListener, Family: 4, Count: 1, FlowID: 1, At: 10 * sec}
	e.Client.Addr, e.Server.Addr, e.Server.Port = cli, srv, 7211
	b := &Batch{Worker: 0, Watermark: 10*sec + 1}
	for i := int64(0); i < 3; i++ {
		e.FlowID, e.At, e.Start, e.End = uint64(i+1), (10+i)*sec, (10+i)*sec, (10+i)*sec
		b.Events = append(b.Events, e)
	}
	b.Watermark = 13 * sec
	c.Add(b)
	if len(got) != 1 {
		t.Fatalf("%d events before the window closed", len(got))
	}
	c.Add(&Batch{Worker: 0, Watermark: 70*sec + 1}) // only the clock moved
	if len(got) != 2 || got[1].Count != 2 || got[1].FlowID != 2 {
		t.Fatalf("after the window: %+v", got)
	}
	c.Add(&Batch{Worker: 0, Final: true, Watermark: 1<<63 - 1})
	c.Finish()
	if len(got) != 2 {
		t.Fatalf("Finish added %d events", len(got)-2)
	}
}
