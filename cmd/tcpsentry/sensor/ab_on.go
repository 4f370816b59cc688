//go:build abtest

package sensor

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// An A/B harness for the worker's hot path, in builds with the abtest tag
// only (go build -tags abtest). With TCPSENTRY_AB naming a variant,
// Process alternates batch by batch between tracking group by group (A,
// byGroup) and the variant (B), times every batch, and when the input
// ends prints each way's median and quartiles in ns per packet.
// TCPSENTRY_AB_SWAP=1 runs B on the even batches instead of the odd.
//
// Alternating inside one replay pairs the two ways in the same moments of
// a VM whose speed drifts by a third within minutes: rounds of whole
// replays could not tell 5% apart, this can. Both ways give the same
// events; only their speed differs.
const abBuild = true

// abVariants are the ways B can be.
var abVariants = map[string]func(w *Worker, b *ring.Batch){
	// same is A itself: what the harness measures between equals.
	"same": (*Worker).byGroup,
	// noindex is A without reading the index entries ahead.
	"noindex": func(w *Worker, b *ring.Batch) {
		for lo := 0; lo < b.N; lo += group {
			w.decode(b, &w.groups[0], lo)
			w.track(b, &w.groups[0])
		}
	},
	// pipeline is the read-ahead pipeline.
	"pipeline": (*Worker).pipeline,
}

// abOut is where report writes (a test replaces it).
var abOut io.Writer = os.Stderr

type abTrial struct {
	read    bool // the environment has been read
	name    string
	variant func(w *Worker, b *ring.Batch)
	swap    bool
	batch   int
	ps      [2][]int64 // each timed batch's picoseconds per packet: A, B
}

func (a *abTrial) active() bool {
	if !a.read {
		a.read = true
		a.name = os.Getenv("TCPSENTRY_AB")
		a.swap = os.Getenv("TCPSENTRY_AB_SWAP") == "1"
		if a.name != "" {
			a.variant = abVariants[a.name]
			if a.variant == nil {
				fmt.Fprintf(abOut, "tcpsentry: TCPSENTRY_AB=%q: not a variant (same, noindex, pipeline); running as usual\n", a.name)
				a.name = ""
			}
			for i := range a.ps {
				a.ps[i] = make([]int64, 0, 1<<16)
			}
		}
	}
	return a.name != ""
}

func (a *abTrial) run(w *Worker, b *ring.Batch) {
	a.batch++
	way := a.batch & 1
	if a.swap {
		way ^= 1
	}
	start := time.Now()
	if way == 0 {
		w.byGroup(b)
	} else {
		a.variant(w, b)
	}
	if b.N > 0 {
		a.ps[way] = append(a.ps[way], int64(time.Since(start))*1000/int64(b.N))
	}
}

func (a *abTrial) report() {
	if a.name == "" {
		return
	}
	var med [2]float64
	for way, name := range []string{"A (group by group)", "B (" + a.name + ")"} {
		v := a.ps[way]
		if len(v) == 0 {
			fmt.Fprintf(abOut, "ab: %s: no batches\n", name)
			continue
		}
		slices.Sort(v)
		med[way] = float64(v[len(v)/2]) / 1000
		fmt.Fprintf(abOut, "ab: %s: %d batches, median %.1f ns/packet, quartiles %.1f-%.1f\n",
			name, len(v), med[way], float64(v[len(v)/4])/1000, float64(v[3*len(v)/4])/1000)
	}
	if med[0] > 0 && med[1] > 0 {
		fmt.Fprintf(abOut, "ab: B ÷ A, medians: %.3f\n", med[1]/med[0])
	}
}
