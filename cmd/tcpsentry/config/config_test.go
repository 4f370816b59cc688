package config

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/detectors"
)

// list is a repeatable flag, as run's -i.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// testFlags is a small command: the file's keys are its flags.
type testFlags struct {
	fs      *flag.FlagSet
	workers int
	filter  string
	promisc bool
	window  time.Duration
	retx    int
	ifaces  list
	config  string
}

func newTestFlags() *testFlags {
	f := &testFlags{fs: flag.NewFlagSet("t", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.IntVar(&f.workers, "workers", 0, "number of workers")
	f.fs.StringVar(&f.filter, "filter", "", "capture filter")
	f.fs.BoolVar(&f.promisc, "no-promisc", false, "leave promiscuous mode off")
	f.fs.DurationVar(&f.window, "failed-window", 10*time.Second, "the window")
	f.fs.IntVar(&f.retx, "syn-retransmits", 3, "SYN retransmissions")
	f.fs.Var(&f.ifaces, "i", "interface")
	f.fs.StringVar(&f.config, "config", "", "the file")
	return f
}

var testLayout = &Layout{
	Skip:  []string{"config"},
	Lists: []string{"i"},
	Local: []string{"filter"},
	Detectors: []Detector{
		{Type: detectors.TypeSynUnanswered, Flags: []string{"syn-retransmits"}},
		{Type: detectors.TypeFailedConnectionRate, Flags: []string{"failed-window"}},
		{Type: detectors.TypeConnectionRefused},
	},
	Sections: []Section{{Title: "Capture", Flags: []string{"i", "workers"}}},
}

// load parses and applies text under the command line args.
func load(t *testing.T, text string, args ...string) (*testFlags, *File, error) {
	t.Helper()
	f := newTestFlags()
	if err := f.fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	file, err := Parse("tcpsentry.yaml", []byte(text), f.fs, testLayout)
	if err != nil {
		return f, nil, err
	}
	return f, file, file.Apply(f.fs, nil)
}

func TestErrorsNameLineAndKey(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"workers: 2\n\n# typo below\nwrkers: 3\n", `tcpsentry.yaml:4: unknown key "wrkers"`},
		{"filter: tcp\nworkers: two\n", `tcpsentry.yaml:2: workers: not a number: "two"`},
		{"workers: 99999999999999999999\n", `tcpsentry.yaml:1: workers: out of range: "99999999999999999999"`},
		{"no-promisc: yes\n", `tcpsentry.yaml:1: no-promisc: not true or false: "yes"`},
		{"detectors:\n  failed_connection_rate:\n    failed-window: 10\n", `tcpsentry.yaml:3: detectors.failed_connection_rate.failed-window: not a duration: "10" (say 500ms, 10s or 5m)`},
		{"workers: 1\nworkers: 2\n", `tcpsentry.yaml:2: workers: set twice (first on line 1)`},
		{"workers: [1, 2]\n", `tcpsentry.yaml:1: workers: takes one value, not a list`},
		{"workers:\n", `tcpsentry.yaml:1: workers: no value (write "" for an empty one)`},
		{"workers: {a: 1}\n", `tcpsentry.yaml:1: workers: takes a value, not a mapping`},
		{"i:\n  - eth1\n  - [lo]\n", `tcpsentry.yaml:3: i: a list item must be a single value`},
		{"config: /etc/other.yaml\n", `tcpsentry.yaml:1: unknown key "config"`},
		{"syn-retransmits: 2\n", `tcpsentry.yaml:1: unknown key "syn-retransmits" (it goes under detectors: syn_unanswered:)`},
		{"detectors:\n  syn_unanswerd:\n    enabled: false\n", `tcpsentry.yaml:2: unknown key "detectors.syn_unanswerd" (not an event type: `},
		{"detectors:\n  syn_unanswered:\n    enabled: true\n    severty: notice\n", `tcpsentry.yaml:4: unknown key "detectors.syn_unanswered.severty"`},
		{"detectors:\n  connection_refused:\n    failed-window: 5s\n", `tcpsentry.yaml:3: unknown key "detectors.connection_refused.failed-window" (failed-window is a setting of failed_connection_rate)`},
		{"detectors:\n  connection_refused:\n    enabled: 0.5\n", `tcpsentry.yaml:3: detectors.connection_refused.enabled: not true or false: "0.5"`},
		{"detectors:\n  connection_refused:\n    severity: high\n", `tcpsentry.yaml:3: detectors.connection_refused.severity: not a severity: "high" (say notice, warning, critical or default)`},
		{"detectors: [syn_unanswered]\n", `tcpsentry.yaml:1: detectors: want one entry per event type`},
		{"- workers\n", `tcpsentry.yaml:1: want settings as key: value lines`},
		{"workers: 1\n  filter: : x\n", `tcpsentry.yaml:2: mapping values are not allowed in this context`},
	} {
		_, _, err := load(t, tc.text)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	text := "workers: 2\nfilter: tcp port 80\ni: [eth1, lo]\ndetectors:\n  syn_unanswered:\n    syn-retransmits: 5\n"
	f, _, err := load(t, text, "--workers", "4", "-i", "eth9")
	if err != nil {
		t.Fatal(err)
	}
	if f.workers != 4 || f.filter != "tcp port 80" || f.ifaces.String() != "eth9" || f.retx != 5 {
		t.Fatalf("workers %d, filter %q, i %q, syn-retransmits %d", f.workers, f.filter, f.ifaces.String(), f.retx)
	}
	f, _, err = load(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if f.workers != 2 || f.ifaces.String() != "eth1,lo" {
		t.Fatalf("without flags: workers %d, i %q", f.workers, f.ifaces.String())
	}
}

func TestTypeSettings(t *testing.T) {
	_, file, err := load(t, "detectors:\n  connection_refused: {enabled: false, severity: critical}\n  syn_unanswered:\n    severity: default\n  failed_connection_rate:\n")
	if err != nil {
		t.Fatal(err)
	}
	var cfg detectors.Config
	cfg.Severity[detectors.TypeSynUnanswered] = detectors.SeverityNotice
	file.ApplyTypes(&cfg)
	if !cfg.Disabled[detectors.TypeConnectionRefused] || cfg.Severity[detectors.TypeConnectionRefused] != detectors.SeverityCritical {
		t.Errorf("connection_refused: %+v", cfg)
	}
	if cfg.Severity[detectors.TypeSynUnanswered] != 0 || cfg.Disabled[detectors.TypeSynUnanswered] {
		t.Errorf("syn_unanswered: severity default should clear the override: %+v", cfg)
	}
}

// TestDefaultRoundTrip: the default file of a flag set sets every flag
// to its default, and passes Parse and Apply.
func TestDefaultRoundTrip(t *testing.T) {
	f := newTestFlags()
	var b bytes.Buffer
	if err := WriteDefault(&b, f.fs, testLayout, "test file"); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{"# test file\n", "\n# number of workers\nworkers: 0\n", "i: []\n", `# filter: ""`,
		"no-promisc: false\n", "  syn_unanswered:\n    enabled: true\n    severity: default  # warning; critical when",
		"    # the window\n    failed-window: 10s\n", "  connection_refused:\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("default file lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "config:") {
		t.Errorf("default file sets --config:\n%s", text)
	}
	g, _, err := load(t, text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if g.workers != 0 || g.window != 10*time.Second || g.retx != 3 || len(g.ifaces) != 0 {
		t.Fatalf("after the default file: %+v", g)
	}
}
