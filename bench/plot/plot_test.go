package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// node is a parsed XML element, enough to look into the SVG.
type node struct {
	name     string
	attr     map[string]string
	children []*node
	text     string // character data directly inside
}

func parse(t *testing.T, svg []byte) *node {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("output is not valid XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else if root != nil {
				t.Fatalf("more than one root element")
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		t.Fatalf("no root element")
	}
	return root
}

// all returns the elements under n (n included) for which f is true, in
// document order.
func (n *node) all(f func(*node) bool) []*node {
	var out []*node
	if f(n) {
		out = append(out, n)
	}
	for _, c := range n.children {
		out = append(out, c.all(f)...)
	}
	return out
}

func byClass(c string) func(*node) bool {
	return func(n *node) bool { return n.attr["class"] == c }
}

func byName(name string) func(*node) bool {
	return func(n *node) bool { return n.name == name }
}

func write(t *testing.T, c *Chart) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatalf("WriteSVG: %v", err)
	}
	return b.Bytes()
}

// markerAt is where a marker is drawn: its translate(x y).
func markerAt(t *testing.T, n *node) (x, y float64) {
	t.Helper()
	var err1, err2 error
	tr := n.attr["transform"]
	s, ok := strings.CutPrefix(tr, "translate(")
	if f := strings.Fields(strings.TrimSuffix(s, ")")); ok && len(f) == 2 {
		x, err1 = strconv.ParseFloat(f[0], 64)
		y, err2 = strconv.ParseFloat(f[1], 64)
		if err1 == nil && err2 == nil {
			return x, y
		}
	}
	t.Fatalf("marker transform %q is not translate(x y)", tr)
	return 0, 0
}

// markers returns the positions of the markers of series i.
func markers(t *testing.T, root *node, i int) [][2]float64 {
	t.Helper()
	series := root.all(byClass("series"))
	if i >= len(series) {
		t.Fatalf("%d series groups, want more than %d", len(series), i)
	}
	var out [][2]float64
	for _, m := range series[i].all(byClass("marker")) {
		x, y := markerAt(t, m)
		out = append(out, [2]float64{x, y})
	}
	return out
}

func labels(root *node, class string) []string {
	var out []string
	for _, g := range root.all(byClass(class)) {
		for _, tx := range g.all(byName("text")) {
			out = append(out, tx.text)
		}
	}
	return out
}

func frame(t *testing.T, root *node) (x0, y0, x1, y1 float64) {
	t.Helper()
	f := root.all(byClass("frame"))
	if len(f) != 1 {
		t.Fatalf("%d frames, want 1", len(f))
	}
	v := func(k string) float64 {
		x, err := strconv.ParseFloat(f[0].attr[k], 64)
		if err != nil {
			t.Fatalf("frame %s: %v", k, err)
		}
		return x
	}
	return v("x"), v("y"), v("x") + v("width"), v("y") + v("height")
}

func throughput() *Chart {
	return &Chart{
		Title:  "Received packets/s by offered rate",
		XLabel: "offered packets/s",
		YLabel: "received packets/s",
		LogX:   true,
		Series: []Series{
			{Name: "tcpsentry (1 worker)", Points: []Point{{5e4, 5.02e4}, {1e5, 1.003e5}, {2e5, 2.007e5}, {4e5, 4.013e5}, {1.04e6, 7.958e5}}},
			{Name: "tcpsentry (2 workers)", Points: []Point{{5e4, 5.02e4}, {1e5, 1.003e5}, {2e5, 2.007e5}, {4e5, 4.0e5}, {1.04e6, 6.513e5}}},
			{Name: "gopacket/afpacket", Points: []Point{{5e4, 5.02e4}, {1e5, 1.003e5}, {2e5, 2.007e5}, {4e5, 4.013e5}, {1.04e6, 9.001e5}}},
			{Name: "tcpdump -w /dev/null", Points: []Point{{5e4, 5.02e4}, {1e5, 1.003e5}, {2e5, 2.007e5}, {4e5, 4.013e5}, {1.04e6, 7.266e5}}},
		},
	}
}

func TestSVGRoot(t *testing.T) {
	root := parse(t, write(t, throughput()))
	if root.name != "svg" {
		t.Fatalf("root element is <%s>, want <svg>", root.name)
	}
	if root.attr["width"] != "720" || root.attr["height"] != "440" {
		t.Errorf("svg width, height = %q, %q; want 720, 440", root.attr["width"], root.attr["height"])
	}
	if root.attr["viewBox"] != "0 0 720 440" {
		t.Errorf("viewBox = %q, want 0 0 720 440", root.attr["viewBox"])
	}
	// Without the namespace a browser shows the file as plain XML.
	if root.attr["xmlns"] != "http://www.w3.org/2000/svg" {
		t.Errorf("xmlns = %q", root.attr["xmlns"])
	}
}

func TestLegendNamesEscaped(t *testing.T) {
	// "&amp;" must come back as itself, not as "&".
	names := []string{`a<b & "c" 'd'`, "tshark", "<b>&amp;</b>", "ü → ∞"}
	c := &Chart{Title: `T < & "t"`, XLabel: "x & y", YLabel: "<y>"}
	for i, n := range names {
		c.Series = append(c.Series, Series{Name: n, Points: []Point{{1, float64(i)}, {2, float64(i + 1)}}})
	}
	svg := write(t, c)
	root := parse(t, svg)
	if got := labels(root, "legend"); !slices.Equal(got, names) {
		t.Errorf("legend texts = %q, want %q", got, names)
	}
	for class, want := range map[string]string{"title": c.Title, "x-label": c.XLabel, "y-label": c.YLabel} {
		if got := root.all(byClass(class)); len(got) != 1 || got[0].text != want {
			t.Errorf("%s: got %d elements, want one with text %q", class, len(got), want)
		}
	}
	if bytes.Contains(svg, []byte("<b>")) {
		t.Errorf("unescaped markup in output")
	}
}

func TestLegendCutsLongNames(t *testing.T) {
	long := strings.Repeat("a very long series name ", 5)
	c := &Chart{Series: []Series{{Name: long, Points: []Point{{1, 1}, {2, 2}}}}}
	root := parse(t, write(t, c))
	texts := root.all(byClass("legend"))[0].all(byName("text"))
	if len(texts) != 1 {
		t.Fatalf("%d legend texts, want 1", len(texts))
	}
	got := texts[0].text
	if len(got) >= len(long) || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("legend text %q is not a cut of %q", got, long)
	}
	// The full name stays available as a tooltip.
	if ti := texts[0].all(byName("title")); len(ti) != 1 || ti[0].text != long {
		t.Errorf("legend text has no title with the full name")
	}
}

func TestMarkerPerPoint(t *testing.T) {
	c := throughput()
	c.Series = append(c.Series, Series{Name: "single", Points: []Point{{3e5, 2e5}}})
	root := parse(t, write(t, c))
	want, lines := 0, 0
	for i, s := range c.Series {
		want += len(s.Points)
		if len(s.Points) > 1 {
			lines++
		}
		if got := len(markers(t, root, i)); got != len(s.Points) {
			t.Errorf("series %d: %d markers, want %d", i, got, len(s.Points))
		}
	}
	if got := len(root.all(byClass("marker"))); got != want {
		t.Errorf("%d markers, want %d (one per point)", got, want)
	}
	if got := len(root.all(byName("polyline"))); got != lines {
		t.Errorf("%d polylines, want %d (none for a one-point series)", got, lines)
	}
	if got := len(root.all(byClass("legend-marker"))); got != len(c.Series) {
		t.Errorf("%d legend markers, want %d", got, len(c.Series))
	}
}

// TestMapping checks that larger values land further right and higher up,
// inside the frame, and that equal ratios are equal distances on a log
// axis (and equal differences on a linear one).
func TestMapping(t *testing.T) {
	for _, tc := range []struct {
		name       string
		logX, logY bool
		xs, ys     []float64
	}{
		{"linear", false, false, []float64{10, 20, 30, 40}, []float64{100, 200, 300, 400}},
		{"log", true, true, []float64{1e4, 1e5, 1e6, 1e7}, []float64{1e1, 1e2, 1e3, 1e4}},
		{"logx", true, false, []float64{1e2, 1e3, 1e4}, []float64{5, 10, 15}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Chart{LogX: tc.logX, LogY: tc.logY, Series: []Series{{Name: "s"}}}
			for i := range tc.xs {
				c.Series[0].Points = append(c.Series[0].Points, Point{tc.xs[i], tc.ys[i]})
			}
			root := parse(t, write(t, c))
			x0, y0, x1, y1 := frame(t, root)
			m := markers(t, root, 0)
			for i, p := range m {
				if p[0] < x0-0.01 || p[0] > x1+0.01 || p[1] < y0-0.01 || p[1] > y1+0.01 {
					t.Errorf("marker %d at %v is outside the frame %v", i, p, [4]float64{x0, y0, x1, y1})
				}
				if i == 0 {
					continue
				}
				if !(p[0] > m[i-1][0]) {
					t.Errorf("x %g at pixel x %g, not right of x %g at %g", tc.xs[i], p[0], tc.xs[i-1], m[i-1][0])
				}
				if !(p[1] < m[i-1][1]) {
					t.Errorf("y %g at pixel y %g, not above y %g at %g", tc.ys[i], p[1], tc.ys[i-1], m[i-1][1])
				}
				// The values step by equal differences (linear) or equal
				// ratios (log), so the pixels step evenly.
				if i >= 2 {
					if d0, d1 := m[i-1][0]-m[i-2][0], p[0]-m[i-1][0]; math.Abs(d0-d1) > 0.05 {
						t.Errorf("x pixel steps %g and %g differ", d0, d1)
					}
					if d0, d1 := m[i-1][1]-m[i-2][1], p[1]-m[i-1][1]; math.Abs(d0-d1) > 0.05 {
						t.Errorf("y pixel steps %g and %g differ", d0, d1)
					}
				}
			}
		})
	}
}

// TestLinearNotLog checks that the log flags matter: on linear axes,
// values a factor 10 apart are not evenly spaced.
func TestLinearNotLog(t *testing.T) {
	c := &Chart{Series: []Series{{Name: "s", Points: []Point{{1e4, 1e4}, {1e5, 1e5}, {1e6, 1e6}}}}}
	m := markers(t, parse(t, write(t, c)), 0)
	if d0, d1 := m[1][0]-m[0][0], m[2][0]-m[1][0]; !(d1 > 5*d0) {
		t.Errorf("linear x: pixel steps %g then %g, want the second 10 times the first", d0, d1)
	}
}

func TestLogTickLabels(t *testing.T) {
	pts := []Point{{1e4, 1e4}, {3e4, 2e4}, {2e5, 2e5}, {2e6, 2e6}}
	root := parse(t, write(t, &Chart{LogX: true, LogY: true, Series: []Series{{Name: "s", Points: pts}}}))
	for _, class := range []string{"x-axis", "y-axis"} {
		got := labels(root, class)
		for _, want := range []string{"10k", "100k", "1M"} {
			if !slices.Contains(got, want) {
				t.Errorf("%s labels %q lack %q", class, got, want)
			}
		}
		// Under 3 decades, 2 and 5 times the powers are labelled too.
		if want := []string{"10k", "20k", "50k", "100k", "200k", "500k", "1M", "2M"}; !slices.Equal(got, want) {
			t.Errorf("%s labels = %q, want %q", class, got, want)
		}
	}
	// Over more than 3 decades, only powers of ten are labelled.
	pts = []Point{{1, 1}, {2e4, 2e4}}
	root = parse(t, write(t, &Chart{LogX: true, LogY: true, Series: []Series{{Name: "s", Points: pts}}}))
	for _, class := range []string{"x-axis", "y-axis"} {
		if got, want := labels(root, class), []string{"1", "10", "100", "1k", "10k", "100k"}; !slices.Equal(got, want) {
			t.Errorf("%s labels = %q, want %q", class, got, want)
		}
	}
}

func TestLinearTickLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pts    []Point
		wantX  []string
		wantY  []string
		yFirst string
	}{
		{"rates", []Point{{0, 120e3}, {4, 2.3e6}}, nil, nil, "0"},
		{"fractions", []Point{{0.1, 0.2}, {0.9, 0.45}}, nil, nil, "0"},
		{"negative", []Point{{-3, -250}, {3, 40}}, nil, nil, "-250"},
		{"integers", []Point{{1, 1}, {4, 3}}, []string{"1", "2", "3", "4"}, []string{"0", "1", "2", "3"}, "0"},
		{"exact", []Point{{0, 0}, {100, 1000}}, []string{"0", "20", "40", "60", "80", "100"}, []string{"0", "200", "400", "600", "800", "1k"}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := parse(t, write(t, &Chart{Series: []Series{{Name: "s", Points: tc.pts}}}))
			for _, ax := range []struct {
				class string
				want  []string
			}{{"x-axis", tc.wantX}, {"y-axis", tc.wantY}} {
				got := labels(root, ax.class)
				if ax.want != nil && !slices.Equal(got, ax.want) {
					t.Errorf("%s labels = %q, want %q", ax.class, got, ax.want)
				}
				checkNiceSteps(t, ax.class, got)
			}
			if got := labels(root, "y-axis"); got[0] != tc.yFirst {
				t.Errorf("y axis starts at %q, want %q", got[0], tc.yFirst)
			}
		})
	}
}

// checkNiceSteps checks that labels are evenly spaced by 1, 2 or 5 times
// a power of ten.
func checkNiceSteps(t *testing.T, what string, labels []string) {
	t.Helper()
	if len(labels) < 2 {
		t.Errorf("%s: %d labels, want at least 2", what, len(labels))
		return
	}
	var v []float64
	for _, l := range labels {
		v = append(v, parseCompact(t, l))
	}
	step := v[1] - v[0]
	m := step / math.Pow10(int(math.Floor(math.Log10(step)+1e-9)))
	if math.Abs(m-1) > 1e-6 && math.Abs(m-2) > 1e-6 && math.Abs(m-5) > 1e-6 {
		t.Errorf("%s: step %g is not 1, 2 or 5 times a power of ten (labels %q)", what, step, labels)
	}
	for i := 2; i < len(v); i++ {
		if d := v[i] - v[i-1]; math.Abs(d-step) > 1e-9*math.Abs(step)*10 {
			t.Errorf("%s: uneven steps in %q", what, labels)
			break
		}
	}
}

func parseCompact(t *testing.T, s string) float64 {
	t.Helper()
	mult := 1.0
	for suffix, m := range map[string]float64{"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = n, m
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("tick label %q: %v", s, err)
	}
	return v * mult
}

func TestFormatTick(t *testing.T) {
	for _, tc := range []struct {
		v, step float64
		want    string
	}{
		{0, 1, "0"},
		{100, 20, "100"},
		{0.5, 0.1, "0.5"},
		{0.3, 0.1, "0.3"}, // 3*0.1 is 0.30000000000000004
		{1000, 1000, "1k"},
		{1e4, 1e4, "10k"},
		{2e4, 1e4, "20k"},
		{1e6, 1e6, "1M"},
		{2.5e6, 5e5, "2.5M"},
		{1.5e3, 500, "1.5k"},
		{-1.5e3, 500, "-1.5k"},
		{3e9, 1e9, "3G"},
		{1e-5, 1e-5, "1e-05"},
		{1.0002e6, 200, "1.0002M"},
	} {
		if got := formatTick(tc.v, tc.step); got != tc.want {
			t.Errorf("formatTick(%g, %g) = %q, want %q", tc.v, tc.step, got, tc.want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := write(t, throughput()), write(t, throughput())
	if !bytes.Equal(a, b) {
		t.Fatalf("two writes of the same chart differ")
	}
	c := throughput()
	if !bytes.Equal(write(t, c), write(t, c)) {
		t.Fatalf("two writes of one chart differ")
	}
}

// TestDegenerate checks that charts whose data has no extent on an axis
// still draw, with the marker inside the frame.
func TestDegenerate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		logX, logY bool
		pts        []Point
	}{
		{"one point", false, false, []Point{{5, 7}}},
		{"one point log", true, true, []Point{{1000, 1e6}}},
		{"one point at 0", false, false, []Point{{0, 0}}},
		{"flat", false, false, []Point{{1, 3}, {2, 3}, {3, 3}}},
		{"vertical", false, false, []Point{{2, 1}, {2, 3}}},
		{"flat log", true, true, []Point{{2, 3}, {5, 3}}},
		{"negative", false, false, []Point{{-2, -5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svg := write(t, &Chart{LogX: tc.logX, LogY: tc.logY, Series: []Series{{Name: "s", Points: tc.pts}}})
			if bytes.Contains(svg, []byte("NaN")) || bytes.Contains(svg, []byte("Inf")) {
				t.Fatalf("output has NaN or Inf:\n%s", svg)
			}
			root := parse(t, svg)
			x0, y0, x1, y1 := frame(t, root)
			m := markers(t, root, 0)
			if len(m) != len(tc.pts) {
				t.Fatalf("%d markers, want %d", len(m), len(tc.pts))
			}
			for _, p := range m {
				if p[0] < x0 || p[0] > x1 || p[1] < y0 || p[1] > y1 {
					t.Errorf("marker at %v is outside the frame %v", p, [4]float64{x0, y0, x1, y1})
				}
			}
			for _, class := range []string{"x-axis", "y-axis"} {
				if n := len(labels(root, class)); n < 2 {
					t.Errorf("%s has %d labels, want at least 2", class, n)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	pts := []Point{{1, 1}}
	for _, tc := range []struct {
		name string
		c    *Chart
		want string
	}{
		{"nil", nil, "plot: nil chart"},
		{"no series", &Chart{}, "plot: chart has no series"},
		{"no points", &Chart{Series: []Series{{Name: "a", Points: pts}, {Name: "empty"}}}, `plot: series "empty" has no points`},
		{"NaN x", &Chart{Series: []Series{{Name: "n", Points: []Point{{math.NaN(), 1}}}}}, `plot: series "n": x value NaN is not a finite number`},
		{"Inf y", &Chart{Series: []Series{{Name: "i", Points: []Point{{1, 1}, {2, math.Inf(1)}}}}}, `plot: series "i": y value +Inf is not a finite number`},
		{"-Inf x", &Chart{Series: []Series{{Name: "i", Points: []Point{{math.Inf(-1), 1}}}}}, `plot: series "i": x value -Inf is not a finite number`},
		{"log y 0", &Chart{LogY: true, Series: []Series{{Name: "tshark", Points: []Point{{1, 2}, {2, 0}}}}}, `plot: series "tshark": y value 0 on a log axis`},
		{"log x negative", &Chart{LogX: true, Series: []Series{{Name: "a", Points: []Point{{-3, 2}}}}}, `plot: series "a": x value -3 on a log axis`},
		{"linear too wide", &Chart{Series: []Series{{Name: "a", Points: []Point{{-1e308, 1}, {1e308, 2}}}}}, "plot: x values span too wide a range"},
		{"log too small", &Chart{LogY: true, Series: []Series{{Name: "a", Points: []Point{{1, 1e-320}}}}}, "out of the range a log axis can draw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := tc.c.WriteSVG(&b)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", b.Len())
			}
		})
	}
}

// TestRandomCharts draws charts of random shapes and magnitudes (from a
// fixed seed) and checks what must hold for any chart: valid SVG, a
// marker per point, inside the frame, and at least 2 labels an axis.
func TestRandomCharts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		c := &Chart{LogX: r.IntN(2) == 0, LogY: r.IntN(2) == 0}
		// Each axis gets a random magnitude and spread, so that ranges go
		// from a fraction of a decade to many decades.
		val := func(log bool, base, spread float64) float64 {
			v := base * math.Pow(10, r.Float64()*spread)
			if !log && r.IntN(4) == 0 {
				v = -v
			}
			if r.IntN(3) == 0 {
				v = math.Round(v)
				if log && v <= 0 {
					v = 1
				}
			}
			return v
		}
		xb, xs := math.Pow(10, float64(r.IntN(16)-6)), r.Float64()*float64(r.IntN(8))
		yb, ys := math.Pow(10, float64(r.IntN(16)-6)), r.Float64()*float64(r.IntN(8))
		for s := range 1 + r.IntN(10) {
			se := Series{Name: fmt.Sprint("s", s)}
			for range 1 + r.IntN(8) {
				se.Points = append(se.Points, Point{val(c.LogX, xb, xs), val(c.LogY, yb, ys)})
			}
			c.Series = append(c.Series, se)
		}
		var b bytes.Buffer
		if err := c.WriteSVG(&b); err != nil {
			t.Fatalf("chart %d: %v", i, err)
		}
		root := parse(t, b.Bytes())
		x0, y0, x1, y1 := frame(t, root)
		n := 0
		for _, m := range root.all(byClass("marker")) {
			x, y := markerAt(t, m)
			if x < x0-0.01 || x > x1+0.01 || y < y0-0.01 || y > y1+0.01 {
				t.Errorf("chart %d: marker at %g,%g is outside the frame", i, x, y)
			}
			n++
		}
		want := 0
		for _, s := range c.Series {
			want += len(s.Points)
		}
		if n != want {
			t.Errorf("chart %d: %d markers, want %d", i, n, want)
		}
		for _, class := range []string{"x-axis", "y-axis"} {
			if l := labels(root, class); len(l) < 2 || len(l) > 10 {
				t.Errorf("chart %d: %s labels %q, want 2 to 10", i, class, l)
			}
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	if err := throughput().WriteSVG(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteSVG to a failing writer: %v, want the write error", err)
	}
}

// TestManySeries checks that series past the palette keep the colour of
// the series 8 before them but differ in marker and dash.
func TestManySeries(t *testing.T) {
	c := &Chart{}
	for i := range 17 {
		c.Series = append(c.Series, Series{Name: fmt.Sprint("s", i), Points: []Point{{1, float64(i)}, {2, float64(i + 1)}}})
	}
	root := parse(t, write(t, c))
	groups := root.all(byClass("series"))
	lines := root.all(byName("polyline"))
	if len(groups) != 17 || len(lines) != 17 {
		t.Fatalf("%d series groups and %d lines, want 17", len(groups), len(lines))
	}
	look := func(i int) [3]string {
		return [3]string{groups[i].attr["stroke"], groups[i].all(byClass("marker"))[0].attr["d"], lines[i].attr["stroke-dasharray"]}
	}
	seen := map[[3]string]int{}
	for i := range groups {
		l := look(i)
		if j, ok := seen[l]; ok {
			t.Errorf("series %d and %d look the same: %q", j, i, l)
		}
		seen[l] = i
		if i < 8 && l[0] == look((i + 1) % 8)[0] {
			t.Errorf("series %d and %d have the same colour", i, (i+1)%8)
		}
		if i >= 8 && l[0] != look(i - 8)[0] {
			t.Errorf("series %d has colour %s, want that of series %d", i, l[0], i-8)
		}
	}
}

// TestLegendAvoidsData draws a line rising to the top right, where a
// legend would cover it, and checks that the legend box holds no marker.
func TestLegendAvoidsData(t *testing.T) {
	c := &Chart{Series: []Series{
		{Name: "rising", Points: []Point{{0, 0}, {1, 10}, {2, 40}, {3, 90}, {4, 200}}},
		{Name: "also rising", Points: []Point{{0, 5}, {1, 20}, {2, 50}, {3, 100}, {4, 150}}},
	}}
	root := parse(t, write(t, c))
	box := root.all(byClass("legend"))[0].all(byName("rect"))[0]
	v := func(k string) float64 { f, _ := strconv.ParseFloat(box.attr[k], 64); return f }
	bx0, by0 := v("x"), v("y")
	bx1, by1 := bx0+v("width"), by0+v("height")
	fx0, _, fx1, _ := frame(t, root)
	if !(bx1 < (fx0+fx1)/2) {
		t.Errorf("legend box x %g..%g, want it in the left half of the plot %g..%g", bx0, bx1, fx0, fx1)
	}
	for _, m := range root.all(byClass("marker")) {
		x, y := markerAt(t, m)
		if x >= bx0 && x <= bx1 && y >= by0 && y <= by1 {
			t.Errorf("marker at %g,%g is under the legend %v", x, y, [4]float64{bx0, by0, bx1, by1})
		}
	}
}

// TestLegendOutside draws lines through all four corners of the plot,
// so that the legend has to go to the right of it.
func TestLegendOutside(t *testing.T) {
	c := &Chart{Series: []Series{
		{Name: "up", Points: []Point{{0, 0}, {10, 100}}},
		{Name: "down", Points: []Point{{0, 100}, {10, 0}}},
	}}
	root := parse(t, write(t, c))
	box := root.all(byClass("legend"))[0].all(byName("rect"))[0]
	bx, err := strconv.ParseFloat(box.attr["x"], 64)
	if err != nil {
		t.Fatal(err)
	}
	_, _, fx1, _ := frame(t, root)
	if bx <= fx1 {
		t.Errorf("legend box starts at x %g, want it right of the plot, which ends at %g", bx, fx1)
	}
	bw, _ := strconv.ParseFloat(box.attr["width"], 64)
	if bx+bw > 720 {
		t.Errorf("legend box ends at x %g, past the chart's width", bx+bw)
	}
}

// TestExamples draws a few charts; with PLOT_EXAMPLE_DIR set it writes
// them there as SVG files, to look at.
func TestExamples(t *testing.T) {
	dense := &Chart{Title: "Latency by load", XLabel: "connections", YLabel: "p99 latency (µs)"}
	for i := range 10 {
		s := Series{Name: fmt.Sprintf("reader %d <%s>", i, strings.Repeat("x", i))}
		for j := 1; j <= 6; j++ {
			s.Points = append(s.Points, Point{float64(j * 1000), float64((i + 1) * j * j * 7)})
		}
		dense.Series = append(dense.Series, s)
	}
	cpu := &Chart{Title: "CPU per packet", XLabel: "offered packets/s", YLabel: "ns/packet", LogX: true,
		Series: []Series{
			{Name: "(a1) full pipeline, 1 worker", Points: []Point{{5e4, 1116}, {1e5, 845}, {2e5, 896}, {4e5, 607}, {1.04e6, 757}}},
			{Name: "(a'1) ring count-only", Points: []Point{{5e4, 245}, {1e5, 98}, {2e5, 72}, {4e5, 60}, {1.04e6, 48}}},
			{Name: "one point", Points: []Point{{3e5, 500}}},
		}}
	charts := map[string]*Chart{
		"throughput": throughput(),
		"dense":      dense,
		"cpu":        cpu,
		"negative":   {Title: "Drift", Series: []Series{{Name: "a", Points: []Point{{0, -2.5}, {1, 1.5}, {2, 0.25}}}}},
		"single":     {Series: []Series{{Name: "only", Points: []Point{{42, 42}}}}},
		"crowded": {Title: "Crowded", XLabel: "x", YLabel: "y", LogY: true, Series: []Series{
			{Name: "up", Points: []Point{{0, 1}, {10, 2e6}}},
			{Name: "down (a much longer name than the others)", Points: []Point{{0, 2e6}, {10, 1}}},
		}},
	}
	dir := os.Getenv("PLOT_EXAMPLE_DIR")
	for _, name := range slices.Sorted(maps.Keys(charts)) {
		svg := write(t, charts[name])
		parse(t, svg)
		if dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name+".svg"), svg, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
