package detectors

// FactKind says what a Fact reports.
type FactKind uint8

const (
	FactSYN    FactKind = iota + 1 // a client's first SYN carrying a TCP timestamp
	FactSynAck                     // the server sent a SYN/ACK (deduplicated per worker, server:port and second)
	FactEnd                        // a connection past its handshake ended (first FIN or RST)
)

// Fact is a per-connection outcome the Correlator needs from every worker
// to keep cross-connection state (TCP clocks per source, answers and
// failures per server:port, RST endings per host:port). Facts are small
// and are sent only on handshake and end segments, never per data packet.
type Fact struct {
	At     int64 // capture time
	FlowID uint64
	seq    uint64
	Kind   FactKind
	Family uint8
	RST    bool // FactEnd: the server ended the connection with a RST
	NVLAN  uint8
	VLAN   [2]uint16
	TSval  uint32 // FactSYN
	Client Endpoint
	Server Endpoint
}

// Batch is what a worker hands the Correlator: its events and facts since
// the last batch, and its watermark: no later event or fact of this
// worker has an earlier At.
type Batch struct {
	Worker    int
	Events    []Event
	Facts     []Fact
	Watermark int64
	// Final: the worker has ended (after its flush); nothing follows.
	Final bool
}

// Out is a worker's event and fact buffer. It fills a Batch and hands it
// over through the send function when the batch is full or when the
// worker publishes its watermark; send returns an empty Batch to fill
// next (replay waits for one; a live sensor must never block and counts
// what it cannot keep).
type Out struct {
	worker  int
	b       *Batch
	send    func(*Batch) *Batch
	seq     uint64
	lastWM  int64
	flush   bool
	Dropped uint64 // events and facts lost because no batch was free
}

// Batch sizes.
const (
	BatchEvents = 256
	BatchFacts  = 1024
)

// NewBatch allocates an empty batch for Out.
func NewBatch() *Batch {
	return &Batch{Events: make([]Event, 0, BatchEvents), Facts: make([]Fact, 0, BatchFacts)}
}

// NewOut returns the buffer of worker w; send hands a full batch on and
// returns an empty one (or nil when none is free).
func NewOut(w int, send func(*Batch) *Batch) *Out {
	return &Out{worker: w, b: NewBatch(), send: send, lastWM: -1 << 63}
}

// Emit copies e into the batch.
func (o *Out) Emit(e *Event) {
	if o.b == nil || len(o.b.Events) == cap(o.b.Events) {
		o.handOff(o.lastWM)
		if o.b == nil {
			o.Dropped++
			return
		}
	}
	o.seq++
	e.seq = o.seq
	e.flush = o.flush
	o.b.Events = append(o.b.Events, *e)
}

// Fact copies f into the batch.
func (o *Out) Fact(f *Fact) {
	if o.b == nil || len(o.b.Facts) == cap(o.b.Facts) {
		o.handOff(o.lastWM)
		if o.b == nil {
			o.Dropped++
			return
		}
	}
	o.seq++
	f.seq = o.seq
	o.b.Facts = append(o.b.Facts, *f)
}

// Publish hands the batch on when the watermark moved by at least
// publishEvery since the last hand-over (a full batch goes at once):
// one hand-over per ring block would make the worker wait on the
// Correlator's goroutine far more often than the work needs.
func (o *Out) Publish(wm int64) {
	if o.b != nil && o.lastWM != -1<<63 && wm-o.lastWM < publishEvery {
		return
	}
	o.handOff(wm)
}

// publishEvery: a worker hands on its events and watermark at least this
// often in capture time, which bounds how long an event waits in it.
const publishEvery = int64(100e6)

func (o *Out) handOff(wm int64) {
	if wm < o.lastWM {
		wm = o.lastWM
	}
	o.lastWM = wm
	if o.b == nil {
		o.b = o.send(nil)
		return
	}
	o.b.Worker = o.worker
	o.b.Watermark = wm
	o.b = o.send(o.b)
}

// Flushing hands on everything so far, done with the capture proper,
// and marks the events emitted from now on as the end-of-capture flush,
// which the Correlator orders after everything else.
func (o *Out) Flushing() {
	o.handOff(1<<63 - 1)
	o.flush = true
}

// Close hands on the last batch, marked Final.
func (o *Out) Close() {
	if o.b == nil {
		o.b = o.send(nil)
		if o.b == nil {
			o.b = NewBatch() // the final mark must get through
		}
	}
	o.b.Final = true
	o.handOff(1<<63 - 1)
}
