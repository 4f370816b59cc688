package report

// LiveResults is what bench/live -json writes, for programs (a report generator
// plotting loss % against offered rate per reader). The shape is stable:
// fields may be added, none renamed or removed.
//
//	{
//	  "date": "2026-11-22T06:00:00Z",  // when the benchmark started, RFC 3339
//	  "packets": 123456,               // packets in the replayed pcap
//	  "readers": [{"key": "a1", "name": "tcpsentry ..."}, ...],
//	  "points": [{                     // readers in order, then rates as given
//	    "reader": "a1",
//	    "rate": 50000,                 // offered packets/s; 0 = top speed
//	    "sent": 150000,                // packets the sender sent
//	    "sent_pps": 49990.1,           // sent ÷ the sender's sending time
//	    "received": 150000,            // packets the reader got
//	    "rx_pps": 49990.1,             // received ÷ the sender's sending time
//	    "lost": 0,                     // sent − received (never negative)
//	    "loss_pct": 0,                 // 100 × lost ÷ sent
//	    "drops": 0,                    // the kernel's ring drops for the reader
//	    "cpu_ns_per_packet": 812.5     // reader CPU time ÷ received
//	  }, ...],
//	  "capacity": [{"reader": "a1", "median_pps": 2.5e6, "runs": 9}, ...],
//	  "baseline_pps": 1.2e6            // the sender alone at top speed; 0 when not run
//	}
//
// Every point is its median run (the run with the median rx_pps), the run
// the Markdown tables show, so the numbers agree with them; sent_pps is
// that run's own, where the Markdown's "sent pps" column is the median
// over every reader's runs at the rate. Points without runs are left
// out. capacity lists the readers with emptying-a-full-ring runs: runs
// is how many were made, median_pps the median of those that could be
// timed (0 if none could).
type LiveResults struct {
	Date        string         `json:"date"`
	Packets     int            `json:"packets"`
	Readers     []LiveReader   `json:"readers"`
	Points      []LivePoint    `json:"points"`
	Capacity    []LiveCapacity `json:"capacity"`
	BaselinePPS float64        `json:"baseline_pps"`
}

// LiveReader is one reader of the live benchmark.
type LiveReader struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

// LivePoint is one reader at one offered rate (its median run).
type LivePoint struct {
	Reader         string  `json:"reader"`
	Rate           int     `json:"rate"`
	Sent           uint64  `json:"sent"`
	SentPPS        float64 `json:"sent_pps"`
	Received       uint64  `json:"received"`
	RxPPS          float64 `json:"rx_pps"`
	Lost           uint64  `json:"lost"`
	LossPct        float64 `json:"loss_pct"`
	Drops          uint64  `json:"drops"`
	CPUNsPerPacket float64 `json:"cpu_ns_per_packet"`
}

// LiveCapacity is how fast a reader emptied a full ring.
type LiveCapacity struct {
	Reader    string  `json:"reader"`
	MedianPPS float64 `json:"median_pps"`
	Runs      int     `json:"runs"`
}
