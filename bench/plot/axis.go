package plot

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// axis is the drawn range of one dimension and its ticks.
type axis struct {
	log    bool
	lo, hi float64 // drawn range in data units; lo < hi (and lo > 0 on a log axis)
	ticks  []tick
}

// tick is a tick mark; one with a label also gets a grid line.
type tick struct {
	v     float64
	label string // "" for an unlabelled minor tick
}

// frac maps a data value to its place along the axis, 0 at lo and 1 at hi.
func (a *axis) frac(v float64) float64 {
	if a.log {
		l := math.Log10(a.lo)
		return (math.Log10(v) - l) / (math.Log10(a.hi) - l)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// labels is the number of labelled ticks.
func (a *axis) labels() int {
	n := 0
	for _, t := range a.ticks {
		if t.label != "" {
			n++
		}
	}
	return n
}

// fits reports whether adjacent labels of a, laid along length pixels,
// are at least need(a, b) apart, so they do not overlap.
func (a *axis) fits(length float64, need func(a, b string) float64) bool {
	prev, prevAt := "", 0.0
	for _, t := range a.ticks {
		if t.label == "" {
			continue
		}
		at := a.frac(t.v) * length
		if prev != "" && at-prevAt < need(prev, t.label) {
			return false
		}
		prev, prevAt = t.label, at
	}
	return true
}

// newAxis chooses the drawn range and ticks for data in [min, max]: the
// densest set of nice ticks, up to maxLabels labels, whose labels do not
// overlap along length pixels. zero makes a linear range include 0, as a
// y axis should so that the height of a line is not exaggerated. integer
// (all values are whole numbers, such as counts or worker numbers) keeps
// linear steps at 1 or more, as 0.5 workers would be noise.
func newAxis(name string, log, zero, integer bool, min, max, length float64, maxLabels int, need func(a, b string) float64) (*axis, error) {
	var cands []*axis
	if log {
		// Beyond these, powers of ten overflow or lose all precision.
		if min < 1e-300 || max > 1e300 {
			return nil, fmt.Errorf("plot: %s values (%g to %g) are out of the range a log axis can draw", name, min, max)
		}
		cands = logCandidates(min, max)
	} else {
		if zero {
			min, max = math.Min(min, 0), math.Max(max, 0)
		}
		if !isFinite(max - min) {
			return nil, fmt.Errorf("plot: %s values span too wide a range (%g to %g)", name, min, max)
		}
		if max-min <= 1e-12*math.Max(math.Abs(min), math.Abs(max)) {
			// One value: widen the range around it so that it still has
			// a width to map onto.
			d := math.Abs(max) * 0.1
			switch {
			case zero && max == 0:
				max = 1
			case d == 0:
				min, max = min-1, max+1
			default:
				min, max = min-d, max+d
			}
		}
		minStep := 0.0
		if integer {
			minStep = 1
		}
		var step float64
		for target := 10; target >= 2; target-- {
			c := linearTicks(min, max, target, minStep)
			if s := c.ticks[1].v - c.ticks[0].v; s != step {
				step = s
				cands = append(cands, c)
			}
		}
	}
	var a *axis
	for _, c := range cands {
		if c.labels() <= maxLabels && c.fits(length, need) {
			a = c
			break
		}
	}
	if a == nil {
		// Nothing fits: the sparsest ticks overlap least.
		a = cands[len(cands)-1]
	}
	if !isFinite(a.lo) || !isFinite(a.hi) || !(a.lo < a.hi) || (log && !(a.lo > 0)) {
		return nil, fmt.Errorf("plot: %s values (%g to %g) are out of the range a chart can draw", name, min, max)
	}
	return a, nil
}

// linearTicks returns ticks at a multiple of a 1, 2 or 5 step (at least
// minStep) that gives about target intervals over [min, max], and extends
// the range to the ticks just outside it so that both ends of the axis
// are labelled.
func linearTicks(min, max float64, target int, minStep float64) *axis {
	step := math.Max(niceStep((max-min)/float64(target)), minStep)
	// The slack keeps a value that is a multiple of step up to rounding
	// from getting a tick of its own beyond it.
	k0 := math.Floor(min/step + 1e-9)
	k1 := math.Ceil(max/step - 1e-9)
	a := &axis{lo: k0 * step, hi: k1 * step}
	for i := 0; i <= int(k1-k0); i++ {
		v := (k0 + float64(i)) * step
		a.ticks = append(a.ticks, tick{v, formatTick(v, step)})
	}
	return a
}

// niceStep is the smallest of 1, 2 or 5 times a power of ten that is at
// least rough.
func niceStep(rough float64) float64 {
	p := pow10(math.Floor(math.Log10(rough)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= rough*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// pow10 is 10^e for an integer e, exact where math.Pow10 is.
func pow10(e float64) float64 { return math.Pow10(int(e)) }

// The values 1, 2 and 5 times a power of ten are numbered by index i:
// value(i) = [1 2 5][i mod 3] * 10^(i div 3). Log axes start and end on
// them so that their ends are round numbers.
var mant125 = [3]float64{1, 2, 5}

func value125(i int) float64 {
	e := floorDiv(i, 3)
	return mant125[i-3*e] * math.Pow10(e)
}

// floorDiv is a/b rounded down (Go's / rounds toward zero).
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// decade is the e with 10^e <= v < 10^(e+1) for v > 0. math.Log10 alone
// is not enough: it can return 2.9999999999999996 for 1000.
func decade(v float64) int {
	e := int(math.Floor(math.Log10(v)))
	for math.Pow10(e+1) <= v {
		e++
	}
	for e > -400 && math.Pow10(e) > v {
		e--
	}
	return e
}

// index125 is the index of the largest 1-2-5 value <= v (up), or of the
// smallest one >= v (up = true).
func index125(v float64, up bool) int {
	e := decade(v)
	m := v / math.Pow10(e)
	const eps = 1e-9 // so that a 1-2-5 value up to rounding is itself
	if up {
		for j, b := range mant125 {
			if m <= b*(1+eps) {
				return 3*e + j
			}
		}
		return 3 * (e + 1)
	}
	for j := 2; j > 0; j-- {
		if m >= mant125[j]*(1-eps) {
			return 3*e + j
		}
	}
	return 3 * e
}

// logCandidates returns tick sets for a log axis over [min, max], densest
// first: under 3 decades, labels at 1, 2 and 5 times powers of ten; then
// labels at every power of ten, every second one, and so on.
func logCandidates(min, max float64) []*axis {
	i0, i1 := index125(min, false), index125(max, true)
	if i0 == i1 {
		// One value: widen to the 1-2-5 values either side of it.
		i0, i1 = i0-1, i1+1
	}
	var cands []*axis
	if value125(i1)/value125(i0) < 1e3*(1-1e-9) {
		a := &axis{log: true, lo: value125(i0), hi: value125(i1)}
		for i := i0; i <= i1; i++ {
			v := value125(i)
			a.ticks = append(a.ticks, tick{v, formatTick(v, math.Pow10(floorDiv(i, 3)))})
		}
		a.ticks = addLogMinors(a.ticks, a.lo, a.hi)
		cands = append(cands, a)
	} else {
		// Wide ranges end on powers of ten, as their labels are only
		// powers of ten.
		i0 -= i0 - 3*floorDiv(i0, 3)
		i1 = 3 * floorDiv(i1+2, 3)
	}
	lo, hi := value125(i0), value125(i1)
	e0, e1 := floorDiv(i0+2, 3), floorDiv(i1, 3) // powers of ten within [lo, hi]
	for _, k := range []int{1, 2, 3, 5, 10, 20, 50, 100, 200} {
		a := &axis{log: true, lo: lo, hi: hi}
		for e := e0; e <= e1; e++ {
			label := ""
			if (e-e0)%k == 0 {
				label = formatTick(math.Pow10(e), math.Pow10(e))
			}
			a.ticks = append(a.ticks, tick{math.Pow10(e), label})
		}
		if k == 1 && e1-e0 <= 6 {
			a.ticks = addLogMinors(a.ticks, lo, hi)
		}
		if a.labels() < 2 {
			break
		}
		cands = append(cands, a)
	}
	return cands
}

// addLogMinors adds unlabelled ticks at 2..9 times each power of ten in
// [lo, hi] where there is no tick yet, which is what shows a reader that
// an axis is logarithmic.
func addLogMinors(ticks []tick, lo, hi float64) []tick {
	have := make(map[float64]bool, len(ticks))
	for _, t := range ticks {
		have[t.v] = true
	}
	var out []tick
	for e := decade(lo); e <= decade(hi); e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(e)
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			if have[v] {
				for _, t := range ticks {
					if t.v == v {
						out = append(out, t)
					}
				}
				continue
			}
			out = append(out, tick{v: v})
		}
	}
	return out
}

// formatTick formats a tick value compactly: 1k, 10k, 1M, 2.5M, 0.5, 100.
// step is the distance to the next tick, which says how many digits are
// needed to tell the ticks apart.
func formatTick(v, step float64) string {
	if v == 0 {
		return "0"
	}
	a := math.Abs(v)
	if a >= 1e15 || a < 1e-4 {
		// Too far from 1 for a suffix: a short exponent form.
		digits := decade(a) - decade(step) + 1
		digits = int(math.Min(math.Max(float64(digits), 1), 15))
		return strconv.FormatFloat(v, 'g', digits, 64)
	}
	suffix, scale := "", 1.0
	for _, s := range []struct {
		suffix string
		scale  float64
	}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if a >= s.scale*(1-1e-9) {
			suffix, scale = s.suffix, s.scale
			break
		}
	}
	dec := int(math.Ceil(-math.Log10(step/scale) - 1e-9))
	dec = int(math.Min(math.Max(float64(dec), 0), 15))
	s := strconv.FormatFloat(v/scale, 'f', dec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s + suffix
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
