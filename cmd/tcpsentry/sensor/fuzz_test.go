package sensor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/ring"
)

// FuzzConnection drives packet sequences of one connection, decoded from
// the fuzz input (see connScript), through the path of a replay: the
// frames are written to a pcap file in memory, read by ring's replay in
// batches of a chosen size, and run through a Worker (decode, flow table,
// detectors) and the publisher (Correlator, JSON writer). Whatever the
// sequence: no panic; every frame decodes; between batches the table
// holds at most its capacity and created - ended = active; at the end
// every connection has ended; and every event written is valid JSON of
// schema v1 about this connection, its action and reason from the
// catalogue (detectors/names.go), counted in the summary by type.
func FuzzConnection(f *testing.F) {
	for _, s := range connSeeds() {
		f.Add(s.mode, s.cISN, s.sISN, s.tsBase, s.recs())
	}
	f.Fuzz(func(t *testing.T, mode uint8, cISN, sISN, tsBase uint32, recs []byte) {
		checkConnection(t, connScript{mode: mode, cISN: cISN, sISN: sISN, tsBase: tsBase, recs: recs})
	})
}

// connScript is a fuzz input: one connection between client
// 192.0.2.7:51234 (2001:db8::7 with IPv6) and server 10.0.0.5:80
// (2001:db8::5), as packets of connRecLen bytes each.
//
// mode: bit 0 IPv6, bit 1 an 802.1Q tag (VLAN 100), bits 2-4 the replay's
// batch size (1, 2, 3, 5, 8, 13, 64, 1024).
//
// A packet record:
//
//	[0]     TCP flags
//	[1]     bit 7: sent by the server; bit 6: a timestamp option; bit 5:
//	        SYN options (MSS, SACK permitted, window scale); bit 4: the
//	        sequence offset is in units of 64 KiB; bit 3: so is the
//	        acknowledgment offset; bits 0-2: the unit of [2]
//	[2]     time since the previous packet, in units of 1 µs, 100 µs,
//	        10 ms, 100 ms, 1 s, 10 s or 60 s, or (unit 7) backwards by
//	        100 ms (a reordered or clock-stepped capture)
//	[3:5]   sequence number: the sender's ISN plus this (int16)
//	[5:7]   acknowledgment: the receiver's ISN plus this (int16)
//	[7:9]   payload length, modulo 9000 (the capture keeps at most 32
//	        bytes of it)
//	[9:11]  window
//	[11]    TSval: tsBase plus the milliseconds since the script's start
//	        (a 1 kHz TCP clock), plus this (int8) times 1000; TSecr is
//	        tsBase
type connScript struct {
	mode               uint8
	cISN, sISN, tsBase uint32
	recs               []byte
}

const (
	connRecLen = 12
	// connMaxPackets bounds a script: longer inputs are cut.
	connMaxPackets = 256
	// connFlows is the flow table's capacity: small, as one 4-tuple
	// holds one connection at a time (a new SYN takes over its slot).
	connFlows = 2
	// connSnap is how much of a payload the capture keeps.
	connSnap = 32
)

var (
	connT0    = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano()
	connCli4  = netip.MustParseAddr("192.0.2.7")
	connSrv4  = netip.MustParseAddr("10.0.0.5")
	connCli6  = netip.MustParseAddr("2001:db8::7")
	connSrv6  = netip.MustParseAddr("2001:db8::5")
	connBatch = [8]int{1, 2, 3, 5, 8, 13, 64, 1024}
)

const (
	connCliPort = 51234
	connSrvPort = 80
)

// frames builds the script's frames and capture times; monotonic says
// whether time never went backwards.
func (s *connScript) frames() (frames [][]byte, ts []int64, wire []int, monotonic bool) {
	v6, vlan := s.mode&1 != 0, s.mode&2 != 0
	now := connT0
	monotonic = true
	recs := s.recs
	for len(recs) >= connRecLen && len(frames) < connMaxPackets {
		r := recs[:connRecLen]
		recs = recs[connRecLen:]
		fromServer := r[1]&0x80 != 0
		switch unit := r[1] & 7; unit {
		case 7:
			now -= int64(r[2]) * 100e6
			monotonic = monotonic && r[2] == 0
		default:
			now += int64(r[2]) * [7]int64{1e3, 100e3, 10e6, 100e6, 1e9, 10e9, 60e9}[unit]
		}
		own, peer := s.cISN, s.sISN
		if fromServer {
			own, peer = peer, own
		}
		seqOff, ackOff := uint32(int32(int16(binary.BigEndian.Uint16(r[3:])))), uint32(int32(int16(binary.BigEndian.Uint16(r[5:]))))
		if r[1]&0x10 != 0 {
			seqOff <<= 16
		}
		if r[1]&0x08 != 0 {
			ackOff <<= 16
		}
		seg := connSegment{
			fromServer: fromServer,
			flags:      r[0],
			seq:        own + seqOff,
			ack:        peer + ackOff,
			payload:    int(binary.BigEndian.Uint16(r[7:]) % 9000),
			window:     binary.BigEndian.Uint16(r[9:]),
			synOpts:    r[1]&0x20 != 0,
			ts:         r[1]&0x40 != 0,
			tsval:      s.tsBase + uint32((now-connT0)/1e6) + uint32(int32(int8(r[11]))*1000),
			tsecr:      s.tsBase,
		}
		f, w := seg.frame(v6, vlan)
		frames = append(frames, f)
		ts = append(ts, now)
		wire = append(wire, w)
	}
	return frames, ts, wire, monotonic
}

// connSegment is one TCP segment of the connection.
type connSegment struct {
	fromServer   bool
	flags        uint8
	seq, ack     uint32
	payload      int
	window       uint16
	synOpts, ts  bool
	tsval, tsecr uint32
}

// frame builds the segment as an Ethernet frame, its payload cut to
// connSnap bytes; wire is its length on the wire.
func (g *connSegment) frame(v6, vlan bool) (frame []byte, wire int) {
	cli, srv := connCli4, connSrv4
	if v6 {
		cli, srv = connCli6, connSrv6
	}
	src, dst, sport, dport := cli, srv, uint16(connCliPort), uint16(connSrvPort)
	if g.fromServer {
		src, dst, sport, dport = srv, cli, dport, sport
	}
	var opts []byte
	if g.synOpts {
		opts = append(opts, 2, 4, 0x05, 0xb4, 4, 2, 3, 3, 7) // MSS 1460, SACK permitted, window scale 7
	}
	if g.ts {
		opts = append(opts, 1, 1, 8, 10)
		opts = binary.BigEndian.AppendUint32(opts, g.tsval)
		opts = binary.BigEndian.AppendUint32(opts, g.tsecr)
	}
	for len(opts)%4 != 0 {
		opts = append(opts, 1) // NOP
	}
	tcpLen := 20 + len(opts)

	b := []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1} // MAC addresses
	if g.fromServer {
		b = []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}
	}
	if vlan {
		b = append(b, 0x81, 0x00, 0x00, 100)
	}
	if v6 {
		b = append(b, 0x86, 0xdd, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(tcpLen+g.payload))
		b = append(b, 6, 64)
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
	} else {
		b = append(b, 0x08, 0x00, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(20+tcpLen+g.payload))
		b = append(b, 0, 1, 0x40, 0, 64, 6, 0, 0) // id 1, DF, TTL 64, TCP, checksum 0 (offloaded)
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
	}
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint32(b, g.seq)
	b = binary.BigEndian.AppendUint32(b, g.ack)
	b = append(b, byte(tcpLen/4)<<4, g.flags)
	b = binary.BigEndian.AppendUint16(b, g.window)
	b = append(b, 0, 0, 0, 0) // checksum, urgent pointer
	b = append(b, opts...)
	wire = len(b) + g.payload
	for i := range min(g.payload, connSnap) {
		b = append(b, byte('a'+i%26))
	}
	return b, wire
}

// connPcap writes frames to a pcap file (nanosecond, Ethernet).
func connPcap(frames [][]byte, ts []int64, wire []int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0xa1b23c4d)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = binary.LittleEndian.AppendUint32(b, 65535)
	b = binary.LittleEndian.AppendUint32(b, uint32(ring.LinkTypeEthernet))
	for i, f := range frames {
		b = binary.LittleEndian.AppendUint32(b, uint32(ts[i]/1e9))
		b = binary.LittleEndian.AppendUint32(b, uint32(ts[i]%1e9))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = binary.LittleEndian.AppendUint32(b, uint32(wire[i]))
		b = append(b, f...)
	}
	return b
}

// tableChecker is a worker's source that checks the worker's flow table
// each time the worker asks for the next batch, on the worker's
// goroutine.
type tableChecker struct {
	ring.Source
	w       *Worker
	batches int
	bad     []string
}

func (c *tableChecker) NextBatch(b *ring.Batch) error {
	if c.w != nil {
		c.batches++
		st, capacity := c.w.flows.Stats(), c.w.flows.Capacity()
		ended := st.EvictedIdle + st.EvictedFull + st.Reused + st.Flushed
		if st.Active < 0 || st.Active > capacity || st.Created-ended != uint64(st.Active) {
			c.bad = append(c.bad, fmt.Sprintf("before batch %d: capacity %d, table %+v", c.batches, capacity, st))
		}
	}
	return c.Source.NextBatch(b)
}

// connRun is what a run of the pipeline over a script gave.
type connRun struct {
	sum       Summary
	out       []byte
	table     flowtable.Stats
	ended     int
	frames    int
	monotonic bool
	bad       []string
}

// runConnection replays the script's frames as Replay does, with one
// worker, a table of connFlows and the script's batch size.
func runConnection(s connScript) (connRun, error) {
	frames, ts, wire, monotonic := s.frames()
	run := connRun{frames: len(frames), monotonic: monotonic}
	batch := connBatch[s.mode>>2&7]
	rp, err := ring.OpenReplay(bytes.NewReader(connPcap(frames, ts, wire)), ring.ReplayConfig{BatchSize: batch})
	if err != nil {
		return run, err
	}
	defer rp.Close()
	src := &tableChecker{Source: rp.Sources()[0]}
	var mu sync.Mutex
	cfg := Config{Workers: 1, Flows: connFlows, flowEnded: func(int, *flowtable.Conn) {
		mu.Lock()
		run.ended++
		mu.Unlock()
	}}
	cfg.defaults()
	var out bytes.Buffer
	p, err := newPipeline(cfg, []ring.Source{src}, &out, func() int64 { return rp.Stats().LastTS }, replayReorder, batch)
	if err != nil {
		return run, err
	}
	src.w = p.workers[0]
	if err := p.run(nil, nil, nil); err != nil {
		return run, err
	}
	if err := rp.Err(); err != nil {
		return run, err
	}
	run.sum, run.out, run.bad = p.summary(), out.Bytes(), src.bad
	run.table = p.workers[0].flows.Stats()
	return run, nil
}

// checkConnection runs a script and checks the invariants of
// FuzzConnection.
func checkConnection(t *testing.T, s connScript) connRun {
	t.Helper()
	run, err := runConnection(s)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	for _, msg := range run.bad {
		t.Error(msg)
	}
	sum := run.sum
	if sum.Packets != uint64(run.frames) || sum.DecodeFailures() != 0 || sum.OptMalformed != 0 {
		t.Errorf("%d frames; the worker saw %d packets, %d not decoded (%v), %d with malformed options",
			run.frames, sum.Packets, sum.DecodeFailures(), sum.Drops, sum.OptMalformed)
	}
	st := run.table
	if st.Active != 0 || st.Created != st.EvictedIdle+st.EvictedFull+st.Reused+st.Flushed || uint64(run.ended) != st.Created {
		t.Errorf("at the end: table %+v, %d connections ended", st, run.ended)
	}
	if run.frames > 0 && st.Created == 0 {
		t.Errorf("%d frames made no connection", run.frames)
	}

	var byType [detectors.NumTypes]uint64
	lines := bytes.Split(bytes.TrimSuffix(run.out, []byte("\n")), []byte("\n"))
	if len(run.out) == 0 {
		lines = nil
	}
	for i, line := range lines {
		ty, err := checkEventV1(line, s.mode&1 != 0, s.mode&2 != 0, run.monotonic)
		if err != nil {
			t.Errorf("event %d: %v\n%s", i+1, err, line)
			continue
		}
		byType[ty]++
	}
	if byType != sum.Events {
		t.Errorf("events by type in the output %v, in the summary %v", byType, sum.Events)
	}
	return run
}

// eventV1 is the schema v1 event record (DESIGN.md section 3), with the
// fields that may be left out as pointers.
type eventV1 struct {
	Timestamp *string `json:"@timestamp"`
	Message   *string `json:"message"`
	Event     *struct {
		ID       string   `json:"id"`
		Kind     string   `json:"kind"`
		Category []string `json:"category"`
		Type     []string `json:"type"`
		Outcome  string   `json:"outcome"`
		Action   string   `json:"action"`
		Reason   *string  `json:"reason"`
		Severity int      `json:"severity"`
		Dataset  string   `json:"dataset"`
		Start    string   `json:"start"`
		End      string   `json:"end"`
	} `json:"event"`
	Observer *struct {
		Name    string  `json:"name"`
		Type    string  `json:"type"`
		Product string  `json:"product"`
		Version *string `json:"version"`
	} `json:"observer"`
	Source      *endpointV1 `json:"source"`
	Destination *endpointV1 `json:"destination"`
	Network     *struct {
		Transport   string  `json:"transport"`
		Type        string  `json:"type"`
		IANANumber  string  `json:"iana_number"`
		CommunityID *string `json:"community_id"`
		VLAN        *struct {
			ID string `json:"id"`
		} `json:"vlan"`
	} `json:"network"`
	Tcpsentry *struct {
		Schema   int     `json:"schema"`
		Severity string  `json:"severity"`
		Count    uint32  `json:"count"`
		FlowID   *uint64 `json:"flow_id"`
		History  *string `json:"history"`
		Capture  *struct {
			Midstream     *bool `json:"midstream"`
			OneSided      *bool `json:"one_sided"`
			LossSuspected *bool `json:"loss_suspected"`
		} `json:"capture"`
		Evidence map[string]json.RawMessage `json:"evidence"`
	} `json:"tcpsentry"`
}

type endpointV1 struct {
	IP   string  `json:"ip"`
	Port *uint16 `json:"port"`
}

// causesOf is the catalogue's causes of each type (DESIGN.md section 4).
var causesOf = map[string][]string{
	"synack_retransmit_after_ack": {"tcp_defer_accept", "accept_queue_overflow", "ack_lost_before_server"},
	"invalid_ack":                 {"seq_translation_middlebox", "ack_of_unseen_segment"},
	"rst_after_invalid_ack":       {"seq_translation_middlebox"},
	"rst_ignored":                 {"rst_in_window", "rst_out_of_window"},
	"request_unanswered":          {"server_discarding", "path_blackhole"},
	"syn_unanswered":              {"paws_nat_timestamps", "listen_queue_overflow", "silent_drop"},
	"ts_regression":               {"nat_timestamps"},
	"port_reuse_rejected":         {"time_wait_paws", "time_wait_seq"},
	"connection_refused":          {"no_listener"},
	"failed_connection_rate":      {"no_listener", "silent_drop", "listen_queue_overflow", "paws_nat_timestamps"},
	"rst_storm":                   {"rst_storm"},
}

// checkEventV1 checks one line of output against schema v1 and the
// script's connection, and returns the event's type.
func checkEventV1(line []byte, v6, vlan, monotonic bool) (detectors.Type, error) {
	var e eventV1
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&e); err != nil {
		return 0, fmt.Errorf("not JSON: %v", err)
	}
	if dec.More() {
		return 0, fmt.Errorf("more than one JSON value")
	}
	if e.Timestamp == nil || e.Message == nil || e.Event == nil || e.Observer == nil || e.Source == nil ||
		e.Destination == nil || e.Network == nil || e.Tcpsentry == nil {
		return 0, fmt.Errorf("a required object is missing")
	}
	ev, ts := e.Event, e.Tcpsentry
	ty := detectors.TypeNone
	for t := detectors.Type(1); t < detectors.NumTypes; t++ {
		if t.String() == ev.Action {
			ty = t
		}
	}
	if ty == detectors.TypeNone {
		return 0, fmt.Errorf("event.action %q is not in the catalogue", ev.Action)
	}
	if ev.Reason != nil && !contains(causesOf[ev.Action], *ev.Reason) {
		return 0, fmt.Errorf("event.reason %q is not a cause of %s", *ev.Reason, ev.Action)
	}
	if *e.Message == "" || ev.Kind != "alert" || strings.Join(ev.Category, ",") != "network" ||
		strings.Join(ev.Type, ",") != "connection,error" || ev.Outcome != "failure" || ev.Dataset != "tcpsentry.anomaly" ||
		!strings.HasPrefix(ev.ID, "tcpsentry-") {
		return 0, fmt.Errorf("event fields")
	}
	if ev.Severity < 1 || ev.Severity > 3 || detectors.Severity(ev.Severity).String() != ts.Severity {
		return 0, fmt.Errorf("severity %d, %q", ev.Severity, ts.Severity)
	}
	at, err1 := time.Parse(time.RFC3339Nano, *e.Timestamp)
	start, err2 := time.Parse(time.RFC3339Nano, ev.Start)
	end, err3 := time.Parse(time.RFC3339Nano, ev.End)
	if err1 != nil || err2 != nil || err3 != nil || !at.Equal(end) {
		return 0, fmt.Errorf("times %q, %q, %q", *e.Timestamp, ev.Start, ev.End)
	}
	if monotonic && start.After(end) {
		return 0, fmt.Errorf("event.start %s after event.end %s in a capture whose time never goes back", ev.Start, ev.End)
	}
	if o := e.Observer; o.Name != "tcpsentry" || o.Type != "sensor" || o.Product != "tcpsentry" {
		return 0, fmt.Errorf("observer %+v", *o)
	}

	// The connection's endpoints, either way round (a midstream
	// connection's client is a guess); an aggregate names only a host.
	cli, srv := connCli4, connSrv4
	family := "ipv4"
	if v6 {
		cli, srv, family = connCli6, connSrv6, "ipv6"
	}
	aggregate := ts.FlowID == nil
	for _, ep := range []*endpointV1{e.Source, e.Destination} {
		ip, err := netip.ParseAddr(ep.IP)
		if err != nil || ip != cli && ip != srv {
			return 0, fmt.Errorf("endpoint %s is neither %s nor %s", ep.IP, cli, srv)
		}
		if ep.Port == nil && !aggregate {
			return 0, fmt.Errorf("endpoint %s without a port", ep.IP)
		}
		if ep.Port != nil && (ip == cli) != (*ep.Port == connCliPort) {
			return 0, fmt.Errorf("endpoint %s port %d", ep.IP, *ep.Port)
		}
	}
	if !aggregate && e.Source.IP == e.Destination.IP {
		return 0, fmt.Errorf("source and destination are both %s", e.Source.IP)
	}
	n := e.Network
	if n.Transport != "tcp" || n.Type != family || n.IANANumber != "6" || (n.CommunityID == nil) != aggregate {
		return 0, fmt.Errorf("network %+v", *n)
	}
	if vlan != (n.VLAN != nil) || vlan && n.VLAN.ID != "100" {
		return 0, fmt.Errorf("network.vlan %v, want VLAN 100: %v", n.VLAN, vlan)
	}
	if ts.Schema != 1 || ts.Count < 1 || ts.Capture == nil || ts.Capture.Midstream == nil ||
		ts.Capture.OneSided == nil || ts.Capture.LossSuspected == nil {
		return 0, fmt.Errorf("tcpsentry fields")
	}
	if ts.FlowID != nil && (*ts.FlowID == 0 || *ts.FlowID >= 1<<53) {
		return 0, fmt.Errorf("flow_id %d", *ts.FlowID)
	}
	if ts.History != nil && strings.Trim(*ts.History, "shadfrtwiqSHADFRTWIQ") != "" {
		return 0, fmt.Errorf("history %q", *ts.History)
	}
	for k, v := range ts.Evidence {
		if !evidenceKey(k) {
			return 0, fmt.Errorf("evidence %q is not in the catalogue", k)
		}
		if len(v) == 0 || v[0] == '"' || v[0] == '{' {
			return 0, fmt.Errorf("evidence %q is %s", k, v)
		}
	}
	return ty, nil
}

func evidenceKey(k string) bool {
	if k == "top_clients" || k == "top_peers" {
		return true
	}
	for e := detectors.EvidenceKey(1); e < detectors.NumEvidenceKeys; e++ {
		if e.String() == k {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// connPkt is a readable packet record, for seeds and tests.
type connPkt struct {
	server     bool
	flags      uint8
	ts, synOpt bool
	seqFar     bool
	ackFar     bool
	unit, dt   uint8
	seq, ack   int16
	payload    uint16
	window     uint16
	tsAdj      int8
}

func (p connPkt) rec() []byte {
	ctl := p.unit & 7
	for bit, on := range map[uint8]bool{0x80: p.server, 0x40: p.ts, 0x20: p.synOpt, 0x10: p.seqFar, 0x08: p.ackFar} {
		if on {
			ctl |= bit
		}
	}
	r := []byte{p.flags, ctl, p.dt}
	r = binary.BigEndian.AppendUint16(r, uint16(p.seq))
	r = binary.BigEndian.AppendUint16(r, uint16(p.ack))
	r = binary.BigEndian.AppendUint16(r, p.payload)
	r = binary.BigEndian.AppendUint16(r, p.window)
	return append(r, byte(p.tsAdj))
}

// connSeed is a named script.
type connSeed struct {
	name               string
	mode               uint8
	cISN, sISN, tsBase uint32
	pkts               []connPkt
}

func (s connSeed) recs() []byte {
	var b []byte
	for _, p := range s.pkts {
		b = append(b, p.rec()...)
	}
	return b
}

func (s connSeed) script() connScript {
	return connScript{mode: s.mode, cISN: s.cISN, sISN: s.sISN, tsBase: s.tsBase, recs: s.recs()}
}

// TCP flags.
const (
	fF = 0x01
	fS = 0x02
	fR = 0x04
	fP = 0x08
	fA = 0x10
)

// Time units of connPkt.unit.
const (
	unitUs100 = 1 // 100 µs
	unitMs10  = 2
	unitMs100 = 3
	unitS     = 4
)

// connSeeds mirror the catalogue: sequences that are silent and sequences
// that make each per-connection detector fire.
func connSeeds() []connSeed {
	syn := connPkt{flags: fS, synOpt: true, ts: true, window: 64240, unit: unitMs10}
	synAck := connPkt{server: true, flags: fS | fA, ack: 1, synOpt: true, ts: true, window: 65160, unit: unitUs100, dt: 5}
	ack := connPkt{flags: fA, seq: 1, ack: 1, ts: true, window: 502, unit: unitUs100, dt: 5}
	data := func(server bool, seq, ack int16, n uint16) connPkt {
		return connPkt{server: server, flags: fP | fA, seq: seq, ack: ack, payload: n, ts: true, window: 502, unit: unitMs10, dt: 1}
	}
	handshake := []connPkt{syn, synAck, ack}
	with := func(ps ...[]connPkt) []connPkt {
		var out []connPkt
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
	at := func(p connPkt, unit, dt uint8) connPkt {
		p.unit, p.dt = unit, dt
		return p
	}
	finC := connPkt{flags: fF | fA, seq: 101, ack: 201, ts: true, window: 502, unit: unitMs10, dt: 1}
	finS := connPkt{server: true, flags: fF | fA, seq: 201, ack: 102, ts: true, window: 502, unit: unitUs100, dt: 3}
	lastAck := connPkt{flags: fA, seq: 102, ack: 202, ts: true, window: 502, unit: unitUs100, dt: 3}
	clean := with(handshake, []connPkt{data(false, 1, 1, 100), data(true, 1, 101, 200), finC, finS, lastAck})

	var refusedRate []connPkt
	for i := range int16(12) {
		s := at(syn, unitMs100, 4)
		s.seq = i * 1000
		refusedRate = append(refusedRate, s, connPkt{server: true, flags: fR | fA, ack: i*1000 + 1, unit: unitUs100, dt: 2})
	}
	reuse := with(clean, []connPkt{
		{flags: fS, seq: 5000, synOpt: true, ts: true, tsAdj: -100, window: 64240, unit: unitS, dt: 2},
		{server: true, flags: fA, seq: 202, ack: 102, ts: true, unit: unitUs100, dt: 2},
		{flags: fR, seq: 102, unit: unitUs100, dt: 1},
	})

	return []connSeed{
		{name: "empty"},
		{name: "clean", cISN: 1000, sISN: 900000, tsBase: 7777, pkts: clean},
		{name: "clean-ipv6-vlan-batch1", mode: 1 | 2, cISN: 0xfffffff0, sISN: 5, tsBase: 1, pkts: clean},
		{name: "refused", mode: 3 << 2, cISN: 42, pkts: []connPkt{syn, {server: true, flags: fR | fA, ack: 1, unit: unitUs100, dt: 2}}},
		{name: "syn-retransmits", cISN: 42, pkts: []connPkt{syn, at(syn, unitS, 1), at(syn, unitS, 2), at(syn, unitS, 4)}},
		{name: "synack-after-ack", cISN: 1, sISN: 2, pkts: with(handshake, []connPkt{at(synAck, unitMs100, 13), data(false, 1, 1, 300)})},
		{name: "rst-ignored", cISN: 3, sISN: 4, pkts: with(handshake, []connPkt{data(false, 1, 1, 50),
			{server: true, flags: fR, seq: 1, unit: unitMs10, dt: 1}, data(false, 51, 1, 50), data(false, 101, 1, 50)})},
		{name: "invalid-ack-rst", cISN: 5, sISN: 6, pkts: with(handshake, []connPkt{
			{server: true, flags: fA, seq: 1, ack: 300, ackFar: true, unit: unitMs10, dt: 1},
			{flags: fR, seq: 300, seqFar: true, unit: unitMs10, dt: 1}})},
		{name: "request-unanswered", cISN: 7, sISN: 8, pkts: with(handshake, []connPkt{data(false, 1, 1, 100),
			at(data(false, 1, 1, 100), unitMs100, 3), at(data(false, 1, 1, 100), unitMs100, 6),
			at(data(false, 1, 1, 100), unitS, 1), {flags: fF | fA, seq: 101, ack: 1, unit: unitS, dt: 2}})},
		{name: "port-reuse-rejected", cISN: 9, sISN: 10, tsBase: 100000, pkts: reuse},
		{name: "refused-rate", mode: 5 << 2, cISN: 11, pkts: refusedRate},
		{name: "midstream-reordered", cISN: 12, sISN: 13, pkts: []connPkt{data(true, 1, 1, 10),
			at(data(false, 1, 11, 10), 7, 3), data(true, 11, 11, 10)}},
		// Hostile segments (issue 8): only the checks apply.
		{name: "syn-rst-fin-together", cISN: 14, sISN: 15, pkts: with([]connPkt{
			{flags: fS | fR | fF, synOpt: true, window: 64240, unit: unitMs10},
			{server: true, flags: fS | fA | fR | fF, ack: 1, unit: unitUs100, dt: 2},
			{flags: 0xff, seq: 1, ack: 1, payload: 10, unit: unitUs100, dt: 2}}, handshake, []connPkt{
			{flags: fR | fF | fA, seq: 1, ack: 1, unit: unitMs10, dt: 1}})},
		{name: "absurd-and-overlapping-seq", cISN: 0x7fffffff, sISN: 0xffffffff, pkts: with(handshake, []connPkt{
			data(false, 1, 1, 1000), data(false, 501, 1, 1000), data(false, 1, 1, 1500), // overlapping resends
			{flags: fP | fA, seq: 7, seqFar: true, ack: -3, ackFar: true, payload: 100, unit: unitMs10, dt: 1},
			{server: true, flags: fA, seq: -30000, seqFar: true, ack: 30000, ackFar: true, unit: unitMs10, dt: 1},
			data(true, 1, -20000, 65535), data(false, 1501, 1, 0)})},
		{name: "zero-and-huge-windows", cISN: 16, sISN: 17, pkts: with(handshake, []connPkt{
			{flags: fA, seq: 1, ack: 1, window: 0, unit: unitMs10, dt: 1},
			{server: true, flags: fP | fA, seq: 1, ack: 1, payload: 1, window: 0, unit: unitS, dt: 3}, // zero-window probe
			{flags: fA, seq: 1, ack: 2, window: 65535, unit: unitMs10, dt: 1},
			{server: true, flags: fP | fA, seq: 2, ack: 1, payload: 65535, window: 65535, unit: unitMs10, dt: 1},
			finC, finS, lastAck})},
	}
}

// TestConnectionSeeds: the seeds pass FuzzConnection's checks, the clean
// connection is silent, and each other seed makes the detector it is
// named after fire.
func TestConnectionSeeds(t *testing.T) {
	want := map[string]string{
		"clean":                  "",
		"clean-ipv6-vlan-batch1": "",
		"refused":                "connection_refused",
		"syn-retransmits":        "syn_unanswered",
		"synack-after-ack":       "synack_retransmit_after_ack",
		"rst-ignored":            "rst_ignored",
		"invalid-ack-rst":        "rst_after_invalid_ack",
		"request-unanswered":     "request_unanswered",
		"port-reuse-rejected":    "port_reuse_rejected",
		"refused-rate":           "failed_connection_rate",
	}
	for _, s := range connSeeds() {
		t.Run(s.name, func(t *testing.T) {
			run := checkConnection(t, s.script())
			w, ok := want[s.name]
			if !ok {
				return
			}
			var actions []string
			for t := detectors.Type(1); t < detectors.NumTypes; t++ {
				if run.sum.Events[t] > 0 {
					actions = append(actions, t.String())
				}
			}
			if w == "" && len(actions) > 0 || w != "" && !contains(actions, w) {
				t.Errorf("events %v, want %q\n%s", actions, w, run.out)
			}
		})
	}
}
