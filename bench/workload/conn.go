package workload

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// phase collects the segments of one connection (or one anomaly's
// connections) with the sequence state of each flow.
type phase struct {
	pkts []pkt
}

// tcb is the sequence state of one connection on its flow.
type tcb struct {
	f          *flow
	cseq, sseq uint32 // next sequence number of each side
}

// c appends a client segment at t: seq is the client's next, ack the
// server's next (when ACK is set); SYN, FIN and payload advance it.
func (ph *phase) c(k *tcb, t int64, flags uint8, n int) *pkt {
	return ph.add(k, t, flags, n, false)
}

// s appends a server segment at t.
func (ph *phase) s(k *tcb, t int64, flags uint8, n int) *pkt {
	return ph.add(k, t, flags, n, true)
}

func (ph *phase) add(k *tcb, t int64, flags uint8, n int, server bool) *pkt {
	p := pkt{t: t, f: k.f, n: uint32(n), flags: flags}
	my, peer := &k.cseq, &k.sseq
	if server {
		p.bits |= fromServer
		my, peer = peer, my
	}
	p.seq = *my
	if flags&fACK != 0 {
		p.ack = *peer
	}
	*my += uint32(n)
	if flags&(fSYN|fFIN) != 0 {
		*my++
	}
	ph.pkts = append(ph.pkts, p)
	return &ph.pkts[len(ph.pkts)-1]
}

// sorted orders the phase's segments by time, keeping the order of
// segments at the same time.
func (ph *phase) sorted() []pkt {
	slices.SortStableFunc(ph.pkts, func(a, b pkt) int { return cmp.Compare(a.t, b.t) })
	return ph.pkts
}

// path is the timing of one connection as the sensor sees it: the sensor
// sits near the server (a SPAN port on its switch), so the server answers
// within srv, and the client within rtt.
type path struct {
	rtt  int64 // client round trip, ns
	srv  int64 // server turnaround, ns
	gap  int64 // between back-to-back segments, ns
	loss float64
}

// transfer appends bytes of data from one side to the other starting at
// t, in slow-start bursts (10 segments, doubling each round trip), with
// the receiver's ACKs (every second segment, at once for a hole or the
// last one). A segment lost after the sensor is seen once and again
// (fast retransmit) a round trip later; the receiver's cumulative ACK
// waits for it. It returns the time of the last segment.
func (ph *phase) transfer(k *tcb, server bool, bytes int, t int64, pt path, rng *rand.Rand) int64 {
	if bytes <= 0 {
		return t
	}
	react := pt.srv // the receiver's answer as the sensor sees it
	if server {
		react = pt.rtt
	}
	type seg struct {
		off, n int
		at     int64 // arrival order: seen (or retransmitted) time
	}
	n := (bytes + mss - 1) / mss
	arrivals := make([]seg, 0, n+4)
	base := k.cseq
	if server {
		base = k.sseq
	}
	cwnd, burst, off := 10, t, 0
	last := t
	for off < bytes {
		for j := 0; j < cwnd && off < bytes; j++ {
			ln := min(mss, bytes-off)
			at := burst + int64(j)*pt.gap
			flags := uint8(fACK)
			if off+ln == bytes {
				flags |= fPSH
			}
			p := ph.add(k, at, flags, ln, server)
			last = max(last, at)
			if pt.loss > 0 && rng.Float64() < pt.loss {
				// Lost after the sensor: the same bytes again once the
				// duplicate ACKs are back; retransmissions get through.
				rt := at + pt.rtt + 3*pt.gap
				r := *p
				r.t = rt
				ph.pkts = append(ph.pkts, r)
				arrivals = append(arrivals, seg{off, ln, rt})
				last = max(last, rt)
			} else {
				arrivals = append(arrivals, seg{off, ln, at})
			}
			off += ln
		}
		burst += max(pt.rtt, int64(cwnd)*pt.gap)
		cwnd = min(2*cwnd, 256)
	}
	slices.SortStableFunc(arrivals, func(a, b seg) int { return cmp.Compare(a.at, b.at) })
	// The receiver's ACKs: its own sequence does not move meanwhile.
	var ackSeq uint32
	if server {
		ackSeq = k.cseq
	} else {
		ackSeq = k.sseq
	}
	got := make(map[int]int, 4) // out-of-order segments held: off → n
	cum, count := 0, 0
	for _, a := range arrivals {
		hole := false
		if a.off != cum {
			got[a.off] = a.n
			hole = true
		} else {
			cum += a.n
			for {
				m, ok := got[cum]
				if !ok {
					break
				}
				delete(got, cum)
				cum += m
				hole = true // a hole filled: ACK at once
			}
		}
		count++
		if !hole && count%2 != 0 && cum != bytes {
			continue
		}
		at := a.at + react
		p := pkt{t: at, f: k.f, seq: ackSeq, ack: base + uint32(cum), flags: fACK}
		if !server {
			p.bits |= fromServer
		}
		ph.pkts = append(ph.pkts, p)
		last = max(last, at)
	}
	return last
}

// logUniform draws from [lo, hi] with a uniform logarithm.
func logUniform(rng *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
}

// maxResponse is the largest response of the mix.
const maxResponse = 1_000_000

// responseSize draws an HTTP-like response size: mostly small objects,
// a quarter mid-sized, one in twenty large (up to 1 MB).
func responseSize(rng *rand.Rand) int {
	switch x := rng.Float64(); {
	case x < 0.70:
		return int(logUniform(rng, 200, 2000))
	case x < 0.95:
		return int(logUniform(rng, 2000, 64000))
	}
	return int(logUniform(rng, 64000, maxResponse))
}

// requestSize draws a request size: one segment mostly, an upload now
// and then.
func requestSize(rng *rand.Rand) int {
	if rng.Float64() < 0.97 {
		return 100 + rng.IntN(900)
	}
	return int(logUniform(rng, 2000, 200_000))
}

// newPath draws a connection's timing.
func newPath(rng *rand.Rand, loss float64) path {
	return path{
		rtt:  int64(logUniform(rng, 200e3, 80e6)),
		srv:  int64(20e3 + rng.IntN(80e3)),
		gap:  int64(1e3 + rng.IntN(11e3)),
		loss: loss,
	}
}

// Close orders of an ordinary connection.
const (
	closeClient = iota // the client's FIN first
	closeServer        // the server's FIN first
	closeReset         // the client resets after the last response
)

// baseConn is an ordinary connection, generated an exchange at a time
// so that a million open connections do not hold all their segments.
type baseConn struct {
	k         tcb
	pt        path
	exchanges int // left
	close     int
	stage     int   // 0: not opened, 1: open, 2: closed
	at        int64 // when the next phase starts
	maxResp   int   // Options.MaxResponse
	think     int64 // Options.ThinkMax, ns
}

// next returns the connection's next phase, or nil when it is done.
func (bc *baseConn) next(rng *rand.Rand) []pkt {
	var ph phase
	k, pt, t := &bc.k, bc.pt, bc.at
	switch {
	case bc.stage == 0:
		bc.stage = 1
		ph.c(k, t, fSYN, 0)
		t += pt.srv
		ph.s(k, t, fSYN|fACK, 0)
		t += pt.rtt
		ph.c(k, t, fACK, 0)
		t += 5e3 + int64(rng.IntN(50e3))
		bc.at = bc.exchange(&ph, t, rng)
	case bc.exchanges > 0:
		bc.at = bc.exchange(&ph, t, rng)
	case bc.stage == 1:
		bc.stage = 2
		switch bc.close {
		case closeClient:
			ph.c(k, t, fFIN|fACK, 0)
			t += pt.srv
			ph.s(k, t, fFIN|fACK, 0)
			ph.c(k, t+pt.rtt, fACK, 0)
		case closeServer:
			ph.s(k, t, fFIN|fACK, 0)
			t += pt.rtt
			ph.c(k, t, fFIN|fACK, 0)
			ph.s(k, t+pt.srv, fACK, 0)
		default:
			ph.c(k, t, fRST|fACK, 0)
		}
	default:
		return nil
	}
	return ph.sorted()
}

// exchange appends one request and its response from t; the request
// may be lost once after the sensor (the client sends it again after
// its retransmission timeout).
func (bc *baseConn) exchange(ph *phase, t int64, rng *rand.Rand) int64 {
	bc.exchanges--
	k, pt := &bc.k, bc.pt
	req := requestSize(rng)
	if req <= mss && pt.loss > 0 && rng.Float64() < pt.loss {
		p := ph.c(k, t, fACK|fPSH, req)
		r := *p
		t += max(200e6, 2*pt.rtt) // RTO
		r.t = t
		ph.pkts = append(ph.pkts, r)
	} else {
		t = ph.transfer(k, false, req, t, pt, rng)
	}
	t += pt.srv + int64(logUniform(rng, 50e3, 20e6)) // the server's work
	t = ph.transfer(k, true, min(responseSize(rng), bc.maxResp), t, pt, rng)
	// The client's next move comes after the last ACK of the response
	// and some thinking: the next request, or the close.
	return t + pt.rtt + int64(logUniform(rng, 1e6, float64(bc.think)))
}
