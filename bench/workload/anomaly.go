package workload

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
)

// Kind is an anomaly the generator injects, each the way the real kernel
// scenarios of bench/netlab show it, between dedicated clients and
// servers so that instances never meet each other or the ordinary
// traffic (no folding, no aggregate by accident).
type Kind int

const (
	KindRefused          Kind = iota // connection_refused / no_listener
	KindSilentDrop                   // syn_unanswered / silent_drop
	KindListenOverflow               // syn_unanswered / listen_queue_overflow
	KindTSRegression                 // ts_regression / nat_timestamps (answered)
	KindPAWS                         // ts_regression + syn_unanswered / paws_nat_timestamps
	KindTimeWaitPAWS                 // port_reuse_rejected / time_wait_paws
	KindTimeWaitSeq                  // port_reuse_rejected / time_wait_seq
	KindDeferAccept                  // synack_retransmit_after_ack / tcp_defer_accept
	KindAcceptOverflow               // synack_retransmit_after_ack / accept_queue_overflow
	KindAckLost                      // synack_retransmit_after_ack / ack_lost_before_server
	KindSeqTranslation               // invalid_ack + rst_after_invalid_ack / seq_translation_middlebox
	KindUnseenSegment                // invalid_ack / ack_of_unseen_segment
	KindRSTInWindow                  // rst_ignored / rst_in_window
	KindRSTOutOfWindow               // rst_ignored / rst_out_of_window
	KindServerDiscarding             // request_unanswered / server_discarding
	KindBlackhole                    // request_unanswered / path_blackhole
	KindFailedRate                   // 12 connection_refused + failed_connection_rate / no_listener
	KindRSTStorm                     // rst_storm
	NumKinds
)

var kindNames = [NumKinds]string{
	"refused", "silent_drop", "listen_overflow", "ts_regression", "paws", "time_wait_paws",
	"time_wait_seq", "defer_accept", "accept_overflow", "ack_lost", "seq_translation",
	"unseen_segment", "rst_in_window", "rst_out_of_window", "server_discarding", "blackhole",
	"failed_rate", "rst_storm",
}

func (k Kind) String() string {
	if k >= 0 && k < NumKinds {
		return kindNames[k]
	}
	return "kind?"
}

// ParseKind is the inverse of String.
func ParseKind(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// Instance sizes of the aggregate kinds.
const (
	failedRateClients = 12  // refused attempts (the threshold is 10 in 10 s)
	rstStormConns     = 110 // server resets (the threshold is 100 in 10 s)
)

// inst builds one anomaly instance: its segments and its ground truth.
type inst struct {
	g     *gen
	rng   *rand.Rand
	ph    phase
	truth []Truth
	v6    bool
	vlan  uint16
	srv   [16]byte
	sport uint16
	pt    path
	port  uint16 // the next client port
}

func (g *gen) newInst() *inst {
	in := &inst{g: g, rng: g.rng, sport: uint16(1024 + g.rng.IntN(60000)), port: uint16(32768 + g.rng.IntN(28000))}
	in.v6 = g.rng.Float64() < g.o.IPv6Share
	if g.rng.Float64() < g.o.VLANShare {
		in.vlan = uint16(1 + g.rng.IntN(4094))
	}
	g.anomServers++
	in.srv = anomAddr(in.v6, 1, g.anomServers)
	in.pt = path{rtt: int64(200e3 + g.rng.IntN(5e6)), srv: int64(30e3 + g.rng.IntN(50e3)), gap: 5e3}
	return in
}

// anomAddr is the n-th dedicated address of pool (0: clients
// 10.128.0.0/9, 1: servers 10.192.0.0/10; in IPv6 fd00:0:0:a::/64 and
// fd00:0:0:b::/64). Ordinary traffic uses 10.0.0.0/9 and 10.255.0.0/16.
func anomAddr(v6 bool, pool int, n int) (a [16]byte) {
	if v6 {
		a = [16]byte{0xfd, 0, 0, 0, 0, 0, 0, byte(0xa + pool)}
		binary.BigEndian.PutUint64(a[8:], uint64(n))
		return a
	}
	base := uint32(10<<24 | 128<<16)
	if pool == 1 {
		base = 10<<24 | 192<<16
	}
	binary.BigEndian.PutUint32(a[:4], base+uint32(n))
	return a
}

// conn opens a flow from a new dedicated client (or cli, when set) to the
// instance's server.
func (in *inst) conn(cli *[16]byte) *tcb {
	g := in.g
	f := &flow{v6: in.v6, vlan: in.vlan, srv: in.srv, sport: in.sport, cwin: 502, swin: 509}
	if cli != nil {
		f.cli = *cli
	} else {
		g.anomClients++
		f.cli = anomAddr(in.v6, 0, g.anomClients)
	}
	g.st.Flows++
	f.cport = in.port // distinct for every connection of the instance
	in.port++
	f.ctsOff, f.stsOff = in.rng.Uint32(), in.rng.Uint32()
	return &tcb{f: f, cseq: in.rng.Uint32(), sseq: in.rng.Uint32()}
}

// want records an expected per-connection event about k.
func (in *inst) want(typ, cause string, k *tcb) {
	in.truth = append(in.truth, Truth{Type: typ, Cause: cause, Client: endpoint(k.f, false), Server: endpoint(k.f, true)})
}

// wantAgg records an expected aggregate about the instance's server.
func (in *inst) wantAgg(typ, cause string) {
	f := flow{v6: in.v6, srv: in.srv, sport: in.sport}
	in.truth = append(in.truth, Truth{Type: typ, Cause: cause, Server: endpoint(&f, true)})
}

func endpoint(f *flow, server bool) string {
	a, port := f.cli, f.cport
	if server {
		a, port = f.srv, f.sport
	}
	var ip netip.Addr
	if f.v6 {
		ip = netip.AddrFrom16(a)
	} else {
		ip = netip.AddrFrom4([4]byte(a[:4]))
	}
	return netip.AddrPortFrom(ip, port).String()
}

// again appends a copy of p at t (a retransmission: the same sequence
// numbers, the sender's clock at t).
func (in *inst) again(p pkt, t int64) {
	p.t = t
	in.ph.pkts = append(in.ph.pkts, p)
}

// open appends a handshake from t and returns when the client's ACK was
// seen.
func (in *inst) open(k *tcb, t int64) int64 {
	in.ph.c(k, t, fSYN, 0)
	t += in.pt.srv
	in.ph.s(k, t, fSYN|fACK, 0)
	t += in.pt.rtt
	in.ph.c(k, t, fACK, 0)
	return t
}

// exchange appends a request of req bytes and a response of resp bytes
// from t, each acknowledged, and returns the time of the last segment.
func (in *inst) exchange(k *tcb, t int64, req, resp int) int64 {
	t = in.ph.transfer(k, false, req, t, in.pt, in.rng)
	t += in.pt.srv
	return in.ph.transfer(k, true, resp, t, in.pt, in.rng)
}

// closeClient appends the client's FIN first.
func (in *inst) closeClient(k *tcb, t int64) int64 {
	in.ph.c(k, t, fFIN|fACK, 0)
	t += in.pt.srv
	in.ph.s(k, t, fFIN|fACK, 0)
	t += in.pt.rtt
	in.ph.c(k, t, fACK, 0)
	return t
}

// closeServer appends the server's FIN first.
func (in *inst) closeServer(k *tcb, t int64) int64 {
	in.ph.s(k, t, fFIN|fACK, 0)
	t += in.pt.rtt
	in.ph.c(k, t, fFIN|fACK, 0)
	t += in.pt.srv
	in.ph.s(k, t, fACK, 0)
	return t
}

// normal appends a whole small connection from t.
func (in *inst) normal(k *tcb, t int64) int64 {
	t = in.open(k, t)
	t = in.exchange(k, t+20e3, 78, 200+in.rng.IntN(2000))
	return in.closeClient(k, t+1e6)
}

// unanswered appends a SYN sent at t and again 1, 2 and 3 s later
// (Linux with tcp_syn_linear_timeouts), never answered.
func (in *inst) unanswered(k *tcb, t int64) {
	p := in.ph.c(k, t, fSYN, 0)
	syn := *p
	for i := int64(1); i <= 3; i++ {
		in.again(syn, t+i*1e9)
	}
}

// build appends the segments of one instance of kind from t.
func (in *inst) build(kind Kind, t int64) {
	rng := in.rng
	switch kind {
	case KindRefused:
		k := in.conn(nil)
		in.ph.c(k, t, fSYN, 0)
		in.ph.s(k, t+in.pt.srv, fRST|fACK, 0).seq = 0
		in.want("connection_refused", "no_listener", k)

	case KindSilentDrop:
		k := in.conn(nil)
		in.unanswered(k, t)
		in.want("syn_unanswered", "silent_drop", k)

	case KindListenOverflow:
		// The server answers another client meanwhile: it is up and
		// drops this client's SYNs (a full listen queue).
		k := in.conn(nil)
		in.unanswered(k, t)
		in.normal(in.conn(nil), t+1300e6)
		in.want("syn_unanswered", "listen_queue_overflow", k)

	case KindTSRegression, KindPAWS:
		// One address, two TCP clocks (NAT): two connections 1 s apart
		// make the source's 1000 Hz clock known, then a host with a
		// clock 5 s behind connects from the same address.
		k1 := in.conn(nil)
		cli := k1.f.cli
		in.normal(k1, t)
		k2 := in.conn(&cli)
		k2.f.ctsOff = k1.f.ctsOff
		in.normal(k2, t+1e9)
		k3 := in.conn(&cli)
		k3.f.ctsOff = k1.f.ctsOff - 5000
		in.want("ts_regression", "nat_timestamps", k3)
		if kind == KindTSRegression {
			in.normal(k3, t+2e9)
			break
		}
		in.unanswered(k3, t+2e9) // the server's PAWS check drops it
		in.want("syn_unanswered", "paws_nat_timestamps", k3)

	case KindTimeWaitPAWS, KindTimeWaitSeq:
		// seeds/001 on today's kernels: the server closed first and
		// holds TIME_WAIT; a new SYN on the same 4-tuple gets the old
		// connection's ACK, the client resets and tries again 1 s later.
		// A NAT hands the port on at any time within the 60 s of
		// TIME_WAIT, mostly after a sensor has let the closed connection
		// go (10 s after its end): 0.3 to 50.3 s here.
		k := in.conn(nil)
		k.f.noTS = kind == KindTimeWaitSeq
		t = in.open(k, t)
		t = in.exchange(k, t+20e3, 78, 100+rng.IntN(1000))
		t = in.closeServer(k, t+50e3)
		lastCli := t - in.pt.srv // the client's FIN, its last segment
		reuse := int64(300e6) + rng.Int64N(50e9)
		old := *k
		f2 := *k.f
		if kind == KindTimeWaitPAWS {
			// Another host's clock, behind the old one's by more than
			// the time since, so that its TSval went back.
			f2.ctsOff -= 10000 + uint32(reuse/1e6)
		}
		k2 := &tcb{f: &f2, cseq: old.cseq - 100000 - uint32(rng.IntN(1e6)), sseq: rng.Uint32()}
		in.g.st.Flows++ // the same 4-tuple, a new connection
		t += reuse
		syn := *in.ph.c(k2, t, fSYN, 0)
		t += in.pt.srv
		// TIME_WAIT's ACK echoes the last TSval the server took from the
		// old client (tw_ts_recent; testdata/seed001.pcap #84), not the
		// old client's clock now: frame echoes the peer's clock 1 ms
		// before, so shift that clock.
		tw := *k.f
		tw.ctsOff += uint32(lastCli/1e6) - uint32((t-1e6)/1e6)
		old.f = &tw
		ack := in.ph.s(&old, t, fACK, 0)
		t += in.pt.rtt
		in.ph.pkts = append(in.ph.pkts, pkt{t: t, f: &f2, seq: ack.ack, flags: fRST})
		t += 1e9
		in.again(syn, t)
		t += in.pt.srv
		in.ph.s(k2, t, fSYN|fACK, 0)
		t += in.pt.rtt
		in.ph.c(k2, t, fACK, 0)
		t = in.exchange(k2, t+20e3, 78, 100+rng.IntN(1000))
		in.closeClient(k2, t+1e6)
		cause := "time_wait_paws"
		if kind == KindTimeWaitSeq {
			cause = "time_wait_seq"
		}
		in.want("port_reuse_rejected", cause, k2)

	case KindDeferAccept:
		// TCP_DEFER_ACCEPT: the client waits for the server to speak;
		// the server re-sends its SYN/ACK until the client's data comes.
		k := in.conn(nil)
		t0 := t
		in.ph.c(k, t, fSYN, 0)
		synack := *in.ph.s(k, t+in.pt.srv, fSYN|fACK, 0)
		ack := *in.ph.c(k, t+in.pt.srv+in.pt.rtt, fACK, 0)
		in.again(synack, t0+1020e6)
		in.again(ack, t0+1020e6+in.pt.rtt)
		t = in.exchange(k, t0+1500e6, 78, 512+rng.IntN(4000))
		in.closeClient(k, t+1e6)
		in.want("synack_retransmit_after_ack", "tcp_defer_accept", k)

	case KindAcceptOverflow:
		// A full accept queue: the server dropped the handshake ACK and
		// the request; it re-sends its SYN/ACK, the client its request,
		// until the application accepts.
		k := in.conn(nil)
		t0 := in.open(k, t)
		req := *in.ph.c(k, t0+200e3, fACK|fPSH, 100)
		in.again(req, t0+200e6)
		synack := in.ph.pkts[1]
		synack.ack = req.seq
		in.again(synack, t0+1000e6)
		in.ph.pkts = append(in.ph.pkts, pkt{t: t0 + 1000e6 + in.pt.rtt, f: k.f, seq: k.cseq, ack: k.sseq, flags: fACK})
		in.again(req, t0+1400e6)
		t = in.ph.transfer(k, true, 300+rng.IntN(3000), t0+1400e6+in.pt.srv, in.pt, rng)
		in.closeClient(k, t+1e6)
		in.want("synack_retransmit_after_ack", "accept_queue_overflow", k)

	case KindAckLost:
		// The server never got the handshake ACK: it re-sends its
		// SYN/ACK, gets the ACK again and speaks first (a banner).
		k := in.conn(nil)
		in.ph.c(k, t, fSYN, 0)
		synack := *in.ph.s(k, t+in.pt.srv, fSYN|fACK, 0)
		ack := *in.ph.c(k, t+in.pt.srv+in.pt.rtt, fACK, 0)
		in.again(synack, t+1000e6)
		in.again(ack, t+1000e6+in.pt.rtt)
		t = in.ph.transfer(k, true, 40+rng.IntN(60), t+1000e6+in.pt.rtt+in.pt.srv, in.pt, rng)
		t = in.exchange(k, t+1e6, 78, 200+rng.IntN(2000))
		in.closeClient(k, t+1e6)
		in.want("synack_retransmit_after_ack", "ack_lost_before_server", k)

	case KindSeqTranslation:
		// seeds/000: a middlebox rewrites the client's ACK numbers; the
		// server answers the impossible ACK with a RST whose seq is that
		// ACK (RFC 793), and the client gives up.
		k := in.conn(nil)
		t = in.open(k, t)
		p := in.ph.c(k, t+100e3, fACK|fPSH, 100)
		p.ack += 0x20000000 + uint32(rng.IntN(1<<28))
		bad := p.ack
		in.ph.pkts = append(in.ph.pkts, pkt{t: t + 100e3 + in.pt.srv, f: k.f, seq: bad, flags: fRST, bits: fromServer})
		in.want("invalid_ack", "seq_translation_middlebox", k)
		in.want("rst_after_invalid_ack", "seq_translation_middlebox", k)

	case KindUnseenSegment:
		// The capture missed the server's third segment; the client's
		// ACK covers it.
		k := in.conn(nil)
		t = in.open(k, t)
		t = in.ph.transfer(k, false, 78, t+20e3, in.pt, rng)
		t += in.pt.srv
		for i := range int64(3) {
			in.ph.s(k, t+i*in.pt.gap, fACK, mss)
		}
		in.ph.pkts = in.ph.pkts[:len(in.ph.pkts)-1] // the third: not captured
		t += 2*in.pt.gap + in.pt.rtt
		in.ph.c(k, t, fACK, 0)
		in.closeClient(k, t+1e6)
		in.want("invalid_ack", "ack_of_unseen_segment", k)

	case KindRSTInWindow:
		// The server resets in window; the client keeps sending a
		// request and its retransmission anyway.
		k := in.conn(nil)
		t = in.open(k, t)
		t = in.exchange(k, t+20e3, 78, 200+rng.IntN(1000))
		t += 1e6
		in.ph.s(k, t, fRST|fACK, 0)
		req := *in.ph.c(k, t+5e6, fACK|fPSH, 78)
		in.again(req, t+205e6)
		in.want("rst_ignored", "rst_in_window", k)

	case KindRSTOutOfWindow:
		// A RST far outside the window (spoofed or mangled): the client
		// rightly ignores it and the exchange goes on.
		k := in.conn(nil)
		t = in.open(k, t)
		t = in.exchange(k, t+20e3, 78, 200+rng.IntN(1000))
		t += 1e6
		in.ph.pkts = append(in.ph.pkts, pkt{t: t, f: k.f, seq: k.sseq + 0x40000000, flags: fRST, bits: fromServer})
		t = in.exchange(k, t+5e6, 78, 200+rng.IntN(1000))
		in.closeClient(k, t+1e6)
		in.want("rst_ignored", "rst_out_of_window", k)

	case KindServerDiscarding, KindBlackhole:
		// The request is never acknowledged: sent again after 200, 600
		// and 1400 ms. A discarding server still answers with ACKs of
		// nothing new; behind a black hole nothing comes back.
		k := in.conn(nil)
		t = in.open(k, t)
		ack := k.sseq
		req := *in.ph.c(k, t+100e3, fACK|fPSH, 200)
		for _, at := range []int64{200e6, 600e6, 1400e6} {
			in.again(req, t+at)
			if kind == KindServerDiscarding {
				in.ph.pkts = append(in.ph.pkts, pkt{t: t + at + in.pt.srv, f: k.f, seq: ack, ack: req.seq, flags: fACK, bits: fromServer})
			}
		}
		in.ph.c(k, t+3000e6, fFIN|fACK, 0)
		if kind == KindServerDiscarding {
			in.ph.pkts = append(in.ph.pkts, pkt{t: t + 3000e6 + in.pt.srv, f: k.f, seq: ack, flags: fRST, bits: fromServer})
			in.want("request_unanswered", "server_discarding", k)
		} else {
			in.want("request_unanswered", "path_blackhole", k)
		}

	case KindFailedRate:
		// seeds/002: a port refusing connections from many clients,
		// 2.5 attempts a second.
		for i := range failedRateClients {
			k := in.conn(nil)
			at := t + int64(i)*400e6
			in.ph.c(k, at, fSYN, 0)
			in.ph.s(k, at+in.pt.srv, fRST|fACK, 0).seq = 0
			in.want("connection_refused", "no_listener", k)
		}
		in.wantAgg("failed_connection_rate", "no_listener")

	case KindRSTStorm:
		// A server that answers and then resets every connection.
		for i := range rstStormConns {
			k := in.conn(nil)
			at := in.open(k, t+int64(i)*50e6)
			at = in.exchange(k, at+20e3, 78, 200)
			in.ph.s(k, at+40e3, fRST|fACK, 0)
		}
		in.wantAgg("rst_storm", "rst_storm")
	}
}
