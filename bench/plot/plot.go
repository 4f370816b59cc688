package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Chart is a line chart of one or more series.
type Chart struct {
	Title          string
	XLabel, YLabel string
	LogX, LogY     bool // log10 axes (all values of that axis must be > 0; else WriteSVG returns an error)
	Series         []Series
}

// Series is one line of a chart.
type Series struct {
	Name   string
	Points []Point // drawn in the given order, each with a marker; a series with one point is just a marker
}

// Point is a point of a series, in data units.
type Point struct{ X, Y float64 }

const (
	width, height = 720, 440

	tickFont   = 11
	labelFont  = 13
	titleFont  = 15
	legendFont = 12
	legendRow  = 18  // height of a legend entry
	legendMaxW = 300 // widest legend box in the plot; longer names are cut
	legendOutW = 200 // widest legend box beside the plot
	markerSize = 4   // about a marker's radius, for keeping the legend off them
)

// palette is 8 colours that stay apart from each other on white (those
// of matplotlib's tab10 without its grey and olive).
var palette = [8]string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Series past the palette reuse its colours, so each round of 8 gets its
// own marker shape and dash to stay distinguishable.
var (
	shapes = [4]string{
		"M-3.5 0a3.5 3.5 0 1 0 7 0a3.5 3.5 0 1 0-7 0z", // circle
		"M-3 -3h6v6h-6z",              // square
		"M0 -4.2L3.8 2.6H-3.8z",       // triangle
		"M0 -4.4L4.4 0L0 4.4L-4.4 0z", // diamond
	}
	dashes = [4]string{"", "7 4", "2 3", "8 3 2 3"}
)

type style struct{ color, shape, dash string }

func seriesStyle(i int) style {
	round := i / len(palette)
	return style{palette[i%len(palette)], shapes[round%len(shapes)], dashes[round%len(dashes)]}
}

// WriteSVG writes the chart as a standalone SVG document (width 720,
// height 440 px). It checks the whole chart before writing anything, so
// an invalid chart writes nothing.
func (c *Chart) WriteSVG(w io.Writer) error {
	if c == nil {
		return errors.New("plot: nil chart")
	}
	if err := c.validate(); err != nil {
		return err
	}
	l, err := c.layout()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	c.draw(&b, l)
	_, err = w.Write(b.Bytes())
	return err
}

func (c *Chart) validate() error {
	if len(c.Series) == 0 {
		return errors.New("plot: chart has no series")
	}
	for _, s := range c.Series {
		if len(s.Points) == 0 {
			return fmt.Errorf("plot: series %q has no points", s.Name)
		}
		for _, p := range s.Points {
			for _, v := range []struct {
				name string
				v    float64
				log  bool
			}{{"x", p.X, c.LogX}, {"y", p.Y, c.LogY}} {
				if !isFinite(v.v) {
					return fmt.Errorf("plot: series %q: %s value %v is not a finite number", s.Name, v.name, v.v)
				}
				if v.log && v.v <= 0 {
					return fmt.Errorf("plot: series %q: %s value %g on a log axis", s.Name, v.name, v.v)
				}
			}
		}
	}
	return nil
}

// layout is where everything goes, in pixels from the top left.
type layout struct {
	x, y             *axis
	px0, py0, pw, ph float64 // plot area
	title            float64 // title font size
	legend           rect
	names            []string // legend text, cut to fit
}

type rect struct{ x0, y0, x1, y1 float64 }

func (l *layout) px(v float64) float64 { return l.px0 + l.x.frac(v)*l.pw }
func (l *layout) py(v float64) float64 { return l.py0 + l.ph - l.y.frac(v)*l.ph }

// textWidth estimates the width of s in a sans-serif font: the SVG is
// drawn by a browser we cannot ask, so layout works from an average
// glyph width that errs on the wide side.
func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * size * 0.6
}

func (c *Chart) layout() (*layout, error) {
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	xint, yint := true, true
	for _, s := range c.Series {
		for _, p := range s.Points {
			xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
			ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
			xint = xint && p.X == math.Trunc(p.X)
			yint = yint && p.Y == math.Trunc(p.Y)
		}
	}
	l := &layout{title: titleFont}
	l.py0 = 16
	if c.Title != "" {
		l.py0 = 40
		// A title wider than the chart is shrunk rather than cut.
		if tw := textWidth(c.Title, titleFont); tw > width-20 {
			l.title = math.Max(8, titleFont*(width-20)/tw)
		}
	}
	bottom := 30.0 // x tick labels
	if c.XLabel != "" {
		bottom = 50
	}
	l.ph = height - l.py0 - bottom

	var err error
	// Linear y axes start at 0 so that a line's height is not exaggerated.
	l.y, err = newAxis("y", c.LogY, !c.LogY, yint, ymin, ymax, l.ph, 9,
		func(a, b string) float64 { return tickFont + 6 })
	if err != nil {
		return nil, err
	}
	yw := 0.0
	for _, t := range l.y.ticks {
		yw = math.Max(yw, textWidth(t.label, tickFont))
	}
	l.px0 = 10 + yw + 8
	if c.YLabel != "" {
		l.px0 += 16
	}

	// x ticks depend on the plot width, which depends on the room the
	// last x label and the legend take on the right.
	fitX := func(right float64) error {
		l.pw = width - l.px0 - right
		l.x, err = newAxis("x", c.LogX, false, xint, xmin, xmax, l.pw, 10,
			func(a, b string) float64 { return (textWidth(a, tickFont)+textWidth(b, tickFont))/2 + 10 })
		return err
	}
	lastHalf := func() float64 {
		t := l.x.ticks[len(l.x.ticks)-1]
		if t.label == "" || l.x.frac(t.v) < 0.999 {
			return 0
		}
		return textWidth(t.label, tickFont)/2 + 4
	}
	right := 20.0
	if err := fitX(right); err != nil {
		return nil, err
	}
	if h := lastHalf(); h > right {
		right = h
		if err := fitX(right); err != nil {
			return nil, err
		}
	}

	// The legend goes in the first corner of the plot area where it
	// covers no line or marker, and to the right of the plot if there is
	// no such corner.
	var bw float64
	l.names, bw = c.legendNames(legendMaxW)
	bh := 10 + float64(len(c.Series))*legendRow
	const inset = 8
	x0, x1 := l.px0+inset, l.px0+l.pw-inset-bw
	y0, y1 := l.py0+inset, l.py0+l.ph-inset-bh
	placed := false
	if bw <= l.pw/2 && bh <= l.ph-2*inset {
		for _, at := range [][2]float64{{x1, y0}, {x0, y0}, {x1, y1}, {x0, y1}} {
			r := rect{at[0], at[1], at[0] + bw, at[1] + bh}
			if !c.covers(l, r) {
				l.legend, placed = r, true
				break
			}
		}
	}
	if !placed {
		// Beside the plot the legend takes width from it: cut names
		// shorter there.
		l.names, bw = c.legendNames(legendOutW)
		right = 8 + bw + math.Max(12, lastHalf())
		if err := fitX(right); err != nil {
			return nil, err
		}
		l.legend = rect{width - 8 - bw, l.py0, width - 8, l.py0 + bh}
	}
	return l, nil
}

// legendNames returns the series names cut to fit a legend box at most
// maxW wide, and the width of the box.
func (c *Chart) legendNames(maxW float64) ([]string, float64) {
	// Box: 10 px padding, 28 px line sample, 6 px gap, text, 10 px padding.
	const chrome = 10 + 28 + 6 + 10
	names, lw := make([]string, len(c.Series)), 0.0
	for i, s := range c.Series {
		name := s.Name
		if textWidth(name, legendFont) > maxW-chrome {
			n := max(int((maxW-chrome)/(legendFont*0.6)), 2)
			name = string([]rune(name)[:n-1]) + "…"
		}
		names[i] = name
		lw = math.Max(lw, textWidth(name, legendFont))
	}
	return names, chrome + lw
}

// covers reports whether r, grown by a marker's size, touches any line or
// marker of the chart.
func (c *Chart) covers(l *layout, r rect) bool {
	r = rect{r.x0 - markerSize, r.y0 - markerSize, r.x1 + markerSize, r.y1 + markerSize}
	for _, s := range c.Series {
		px, py := l.px(s.Points[0].X), l.py(s.Points[0].Y)
		if segmentHits(px, py, px, py, r) {
			return true
		}
		for _, p := range s.Points[1:] {
			qx, qy := l.px(p.X), l.py(p.Y)
			if segmentHits(px, py, qx, qy, r) {
				return true
			}
			px, py = qx, qy
		}
	}
	return false
}

// segmentHits reports whether the segment from (x0, y0) to (x1, y1)
// touches r, by clipping it to r (Liang–Barsky).
func segmentHits(x0, y0, x1, y1 float64, r rect) bool {
	t0, t1 := 0.0, 1.0
	dx, dy := x1-x0, y1-y0
	for _, e := range [4][2]float64{{-dx, x0 - r.x0}, {dx, r.x1 - x0}, {-dy, y0 - r.y0}, {dy, r.y1 - y0}} {
		p, q := e[0], e[1]
		if p == 0 {
			if q < 0 {
				return false
			}
			continue
		}
		t := q / p
		if p < 0 {
			if t > t1 {
				return false
			}
			t0 = math.Max(t0, t)
		} else {
			if t < t0 {
				return false
			}
			t1 = math.Min(t1, t)
		}
	}
	return true
}

func (c *Chart) draw(b *bytes.Buffer, l *layout) {
	px1, py1 := l.px0+l.pw, l.py0+l.ph
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		width, height, width, height)
	// An explicit background: GitHub's dark theme would otherwise show
	// dark text on a dark page.
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)

	// Grid lines at the labelled ticks.
	b.WriteString(`<g class="grid" stroke="#e8e8e8" stroke-width="1">` + "\n")
	for _, t := range l.x.ticks {
		if t.label != "" {
			x := l.px(t.v)
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(x), num(l.py0), num(x), num(py1))
		}
	}
	for _, t := range l.y.ticks {
		if t.label != "" {
			y := l.py(t.v)
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(l.px0), num(y), num(px1), num(y))
		}
	}
	// A darker line at 0 when the data cross it, as the sign matters.
	if !l.y.log && l.y.lo < 0 && l.y.hi > 0 {
		y := l.py(0)
		fmt.Fprintf(b, `<line class="zero" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999999"/>`+"\n", num(l.px0), num(y), num(px1), num(y))
	}
	b.WriteString("</g>\n")

	// Axes: tick marks outside the frame, 5 px for labelled ticks and
	// 3 px for the minor ones of log axes.
	fmt.Fprintf(b, `<g class="x-axis" font-size="%d" fill="#333333" text-anchor="middle">`+"\n", tickFont)
	for _, t := range l.x.ticks {
		x, n := l.px(t.v), 3.0
		if t.label != "" {
			n = 5
		}
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#666666"/>`+"\n", num(x), num(py1), num(x), num(py1+n))
		if t.label != "" {
			fmt.Fprintf(b, `<text x="%s" y="%s">%s</text>`+"\n", num(x), num(py1+17), esc(t.label))
		}
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<g class="y-axis" font-size="%d" fill="#333333" text-anchor="end">`+"\n", tickFont)
	for _, t := range l.y.ticks {
		y, n := l.py(t.v), 3.0
		if t.label != "" {
			n = 5
		}
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#666666"/>`+"\n", num(l.px0-n), num(y), num(l.px0), num(y))
		if t.label != "" {
			fmt.Fprintf(b, `<text x="%s" y="%s">%s</text>`+"\n", num(l.px0-8), num(y+4), esc(t.label))
		}
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<rect class="frame" x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#666666"/>`+"\n",
		num(l.px0), num(l.py0), num(l.pw), num(l.ph))

	if c.Title != "" {
		fmt.Fprintf(b, `<text class="title" x="%d" y="26" font-size="%s" font-weight="bold" fill="#222222" text-anchor="middle">%s</text>`+"\n",
			width/2, num(l.title), esc(c.Title))
	}
	if c.XLabel != "" {
		fmt.Fprintf(b, `<text class="x-label" x="%s" y="%d" font-size="%d" fill="#222222" text-anchor="middle">%s</text>`+"\n",
			num(l.px0+l.pw/2), height-12, labelFont, esc(c.XLabel))
	}
	if c.YLabel != "" {
		fmt.Fprintf(b, `<text class="y-label" transform="translate(20 %s) rotate(-90)" font-size="%d" fill="#222222" text-anchor="middle">%s</text>`+"\n",
			num(l.py0+l.ph/2), labelFont, esc(c.YLabel))
	}

	for i, s := range c.Series {
		st := seriesStyle(i)
		fmt.Fprintf(b, `<g class="series" stroke="%s" fill="%s">`+"\n", st.color, st.color)
		if len(s.Points) > 1 {
			var pts strings.Builder
			for j, p := range s.Points {
				if j > 0 {
					pts.WriteByte(' ')
				}
				pts.WriteString(num(l.px(p.X)) + "," + num(l.py(p.Y)))
			}
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke-width="2" stroke-linejoin="round"%s/>`+"\n", pts.String(), dashAttr(st.dash))
		}
		// Markers are outlined in white so that they stand out where
		// lines cross; the title is a tooltip in a browser.
		for _, p := range s.Points {
			fmt.Fprintf(b, `<path class="marker" transform="translate(%s %s)" d="%s" stroke="#ffffff" stroke-width="1"><title>%s</title></path>`+"\n",
				num(l.px(p.X)), num(l.py(p.Y)), st.shape, esc(s.Name+": "+pointText(p)))
		}
		b.WriteString("</g>\n")
	}

	r := l.legend
	fmt.Fprintf(b, `<g class="legend" font-size="%d">`+"\n", legendFont)
	// Nearly opaque, so that a legend that does sit on a grid line is
	// still easy to read.
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" fill-opacity="0.9" stroke="#cccccc"/>`+"\n",
		num(r.x0), num(r.y0), num(r.x1-r.x0), num(r.y1-r.y0))
	for i, s := range c.Series {
		st := seriesStyle(i)
		y := r.y0 + 5 + legendRow/2 + float64(i)*legendRow
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"%s/>`+"\n",
			num(r.x0+10), num(y), num(r.x0+38), num(y), st.color, dashAttr(st.dash))
		fmt.Fprintf(b, `<path class="legend-marker" transform="translate(%s %s)" d="%s" fill="%s" stroke="#ffffff" stroke-width="1"/>`+"\n",
			num(r.x0+24), num(y), st.shape, st.color)
		title := ""
		if l.names[i] != s.Name {
			title = "<title>" + esc(s.Name) + "</title>"
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#222222">%s%s</text>`+"\n", num(r.x0+44), num(y+4), title, esc(l.names[i]))
	}
	b.WriteString("</g>\n</svg>\n")
}

func dashAttr(d string) string {
	if d == "" {
		return ""
	}
	return ` stroke-dasharray="` + d + `"`
}

func pointText(p Point) string {
	return "x=" + strconv.FormatFloat(p.X, 'g', -1, 64) + ", y=" + strconv.FormatFloat(p.Y, 'g', -1, 64)
}

// num formats a pixel coordinate to 0.01 px, which is finer than any
// screen and keeps the output short and deterministic.
func num(v float64) string {
	v = math.Round(v*100) / 100
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// esc escapes s for XML text and attribute values; characters XML cannot
// hold become U+FFFD.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
