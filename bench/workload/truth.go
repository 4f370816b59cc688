package workload

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
)

// Truth is one event tcpsentry must report about the generated traffic:
// its type (event.action), cause (event.reason), client and server as
// ip:port. Aggregates (failed_connection_rate, rst_storm) name only the
// server.
type Truth struct {
	Type   string `json:"type"`
	Cause  string `json:"cause"`
	Client string `json:"client,omitempty"`
	Server string `json:"server"`
}

// aggregate says whether events of type t are about a server rather than
// one connection.
func aggregate(t string) bool { return t == "failed_connection_rate" || t == "rst_storm" }

// WriteTruth writes the ground truth as JSON lines.
func WriteTruth(w io.Writer, truth []Truth) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range truth {
		if err := enc.Encode(&truth[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadTruth reads what WriteTruth wrote.
func ReadTruth(r io.Reader) ([]Truth, error) {
	var out []Truth
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var t Truth
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return nil, fmt.Errorf("truth line %d: %w", n, err)
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// ParseEvents reads tcpsentry's JSON events (one per line) as Truth
// records. A folded event (tcpsentry.count n > 1) stands for n.
func ParseEvents(r io.Reader) ([]Truth, error) {
	var out []Truth
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e struct {
			Event struct {
				Action string `json:"action"`
				Reason string `json:"reason"`
			} `json:"event"`
			Source      endpointJSON `json:"source"`
			Destination endpointJSON `json:"destination"`
			TCPSentry   struct {
				Count int `json:"count"`
			} `json:"tcpsentry"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("event line %d: %w", n, err)
		}
		t := Truth{Type: e.Event.Action, Cause: e.Event.Reason, Server: e.Destination.String()}
		if !aggregate(t.Type) {
			t.Client = e.Source.String()
		}
		for range max(e.TCPSentry.Count, 1) {
			out = append(out, t)
		}
	}
	return out, sc.Err()
}

type endpointJSON struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

func (e endpointJSON) String() string {
	a, err := netip.ParseAddr(e.IP)
	if err != nil {
		return e.IP + ":" + strconv.Itoa(e.Port)
	}
	return netip.AddrPortFrom(a, uint16(e.Port)).String()
}

// Quality is detection quality for one event type.
type Quality struct {
	Type      string
	Truth     int // events expected
	Reported  int // events reported
	Matched   int // reported and expected (same type, cause, client, server)
	Recall    float64
	Precision float64
}

// Score compares reported events with the truth, per type (sorted by
// type). A type with nothing expected has recall 1; one with nothing
// reported has precision 1.
func Score(truth, reported []Truth) []Quality {
	want := map[Truth]int{}
	byType := map[string]*Quality{}
	get := func(t string) *Quality {
		q := byType[t]
		if q == nil {
			q = &Quality{Type: t}
			byType[t] = q
		}
		return q
	}
	for _, t := range truth {
		want[t]++
		get(t.Type).Truth++
	}
	for _, r := range reported {
		q := get(r.Type)
		q.Reported++
		if want[r] > 0 {
			want[r]--
			q.Matched++
		}
	}
	var out []Quality
	for _, q := range byType {
		q.Recall, q.Precision = 1, 1
		if q.Truth > 0 {
			q.Recall = float64(q.Matched) / float64(q.Truth)
		}
		if q.Reported > 0 {
			q.Precision = float64(q.Matched) / float64(q.Reported)
		}
		out = append(out, *q)
	}
	slices.SortFunc(out, func(a, b Quality) int { return cmp.Compare(a.Type, b.Type) })
	return out
}

// Diff lists the differences Score counts: expected
// events not reported, and reported events not expected.
func Diff(truth, reported []Truth) (missing, unexpected []Truth) {
	want := map[Truth]int{}
	for _, t := range truth {
		want[t]++
	}
	for _, r := range reported {
		if want[r] > 0 {
			want[r]--
		} else {
			unexpected = append(unexpected, r)
		}
	}
	for _, t := range truth {
		if want[t] > 0 {
			want[t]--
			missing = append(missing, t)
		}
	}
	return missing, unexpected
}
