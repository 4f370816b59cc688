package detectors

// Endpoint is one side of a connection as the event reports it.
type Endpoint struct {
	Addr [16]byte // IPv4 in the first 4 bytes when Event.Family is 4
	Port uint16
}

// Capture flags: when the evidence may be an artefact of the capture
// (DESIGN.md section 3, tcpsentry.capture).
const (
	CaptureMidstream       = 1 << iota // the handshake was not seen
	CaptureOneSided                    // only one direction was seen
	CaptureLossSuspected               // the flow shows signs of capture loss
	CaptureChecksumOffload             // locally generated frames with unfinished checksums
)

// MaxEvidence is how many evidence values an event carries.
const MaxEvidence = 8

// Evidence is one named number that proves the event.
type Evidence struct {
	Key   EvidenceKey
	Value int64
}

// Event is one finding, a fixed-size value with no pointers: detectors
// fill it in place and it is copied into the worker's event buffer, so
// emitting allocates nothing. The wire form (JSON schema v1) is written by
// package detectors/events.
type Event struct {
	Type     Type
	Cause    Cause
	Severity Severity

	// Start and End are capture times in nanoseconds since the epoch:
	// the first evidence packet and the packet that completed it.
	Start, End int64

	Family uint8 // 4 or 6
	// Client sent the first SYN (or, midstream, has the higher port);
	// Server is the other side. Client is ECS source, Server destination.
	Client, Server Endpoint
	NVLAN          uint8
	VLAN           [2]uint16 // outermost first

	FlowID     uint64   // stable for the life of the connection
	History    [16]byte // Zeek conn.log history letters
	HistoryLen uint8
	Capture    uint8  // Capture* flags
	Count      uint32 // events folded into this one by rate limiting (>= 1)
	Iface      uint16 // index of the capture interface in the sensor's list

	NEvidence uint8
	Evidence  [MaxEvidence]Evidence

	// Top lists the peers most involved in an aggregate event
	// (failed_connection_rate: clients; rst_storm: peers), most first.
	NTop uint8
	Top  [MaxTop]Peer

	// At orders events from all workers for the Correlator: the capture
	// time the event was due, computed from its connection alone (see
	// flowtable.Handler), never before the worker's published watermark.
	At int64
	// seq orders one worker's events that share At and FlowID.
	seq uint64
	// flush: emitted while the worker flushed its table at the end.
	flush bool
}

// MaxTop is how many peers an aggregate event names.
const MaxTop = 3

// Peer is one address of an aggregate event's top list.
type Peer struct {
	Addr  [16]byte
	Count uint32
}

// AddEvidence appends a value; beyond MaxEvidence it is ignored.
func (e *Event) AddEvidence(k EvidenceKey, v int64) {
	if int(e.NEvidence) < MaxEvidence {
		e.Evidence[e.NEvidence] = Evidence{k, v}
		e.NEvidence++
	}
}

// Lookup returns the value of evidence k and whether it is present.
func (e *Event) Lookup(k EvidenceKey) (int64, bool) {
	for i := range min(int(e.NEvidence), MaxEvidence) {
		if e.Evidence[i].Key == k {
			return e.Evidence[i].Value, true
		}
	}
	return 0, false
}
