package netlab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

// testdata is the repository's testdata/ folder.
const testdata = "../../testdata"

const updateEnv = "TCPSENTRY_UPDATE_TESTDATA"

// TestGenerateCaptures remakes the captures of netlab.ShippedCaptures in
// testdata/ and their section of testdata/README.md. It runs only with
// TCPSENTRY_UPDATE_TESTDATA=1:
//
//	sudo TCPSENTRY_UPDATE_TESTDATA=1 go test ./bench/netlab -run TestGenerateCaptures -count=1 -v
func TestGenerateCaptures(t *testing.T) {
	generate(t, netlab.ShippedCaptures, beginMark, endMark, "")
}

// TestGenerateScenarios remakes the captures of netlab.Scenarios (the
// scenario library) in testdata/ and their section of testdata/README.md.
// It runs only with TCPSENTRY_UPDATE_TESTDATA=1; -run
// 'TestGenerateScenarios/seed000' remakes one (the README section is made
// from the files in testdata/, so it covers them all):
//
//	sudo TCPSENTRY_UPDATE_TESTDATA=1 go test ./bench/netlab -run TestGenerateScenarios -count=1 -v
func TestGenerateScenarios(t *testing.T) {
	generate(t, netlab.Scenarios, scenariosBegin, scenariosEnd, scenariosIntro)
}

func generate(t *testing.T, list []netlab.ShippedCapture, begin, end, intro string) {
	if os.Getenv(updateEnv) != "1" {
		t.Skip(updateEnv + "=1 not set; not regenerating testdata/")
	}
	var sections []string
	for _, sc := range list {
		dst := filepath.Join(testdata, sc.File)
		t.Run(sc.File, func(t *testing.T) {
			tmp := filepath.Join(t.TempDir(), sc.File)
			start := time.Now()
			netlab.GenerateScenario(t, sc, tmp)
			if err := copyFile(tmp, dst); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: made in %v", sc.File, time.Since(start).Round(time.Millisecond))
		})
		if t.Failed() {
			t.Fatalf("%s: not written", sc.File)
		}
		if _, err := os.Stat(dst); err != nil {
			t.Logf("%s: not in testdata/ yet; no README section", sc.File)
			continue
		}
		sections = append(sections, readmeSection(t, sc, dst))
	}
	if err := updateReadme(filepath.Join(testdata, "README.md"), begin, end, intro+strings.Join(sections, "\n")); err != nil {
		t.Fatal(err)
	}
}

// TestShippedCaptures checks the committed captures against
// netlab.ShippedCaptures and netlab.Scenarios. It needs no privileges.
func TestShippedCaptures(t *testing.T) {
	for _, sc := range slices.Concat(netlab.ShippedCaptures, netlab.Scenarios) {
		t.Run(sc.File, func(t *testing.T) {
			path := filepath.Join(testdata, sc.File)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			limit := int64(64 << 10)
			if strings.HasSuffix(sc.File, ".gz") {
				limit = 256 << 10
			}
			if fi.Size() > limit {
				t.Errorf("%s is %d bytes, over %d; keep shipped captures small", path, fi.Size(), limit)
			}
			checkCapture(t, path, sc)
		})
	}
}

// checkCapture checks the capture at path against sc (netlab's CheckFile).
func checkCapture(t *testing.T, path string, sc netlab.ShippedCapture) {
	t.Helper()
	if err := sc.CheckFile(path); err != nil {
		t.Error(err)
	}
}

// maxListed is how many connections a README section lists one by one.
const maxListed = 30

func readmeSection(t *testing.T, sc netlab.ShippedCapture, path string) string {
	t.Helper()
	tr, err := netlab.ReadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	conns := tr.Conns
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## %s — %s\n\n", sc.File, sc.Title)
	fmt.Fprintf(&b, "%s\n\n", sc.Description)
	if sc.Expect == nil {
		fmt.Fprintf(&b, "- link type: %v (%d); %d bytes, %d connections\n", sc.Link, int(sc.Link), fi.Size(), len(conns))
	} else {
		fmt.Fprintf(&b, "- link type: %v (%d); %d bytes, %d frames, %d connections (4-tuples)\n", sc.Link, int(sc.Link), fi.Size(), tr.Frames, len(conns))
	}
	fmt.Fprintf(&b, "- capture: `%s`\n", sc.CaptureCommand())
	if sc.Expect == nil {
		drop := "none"
		if len(sc.Drop) > 0 {
			drop = fmt.Sprint(sc.Drop)
		}
		fmt.Fprintf(&b, "- server namespace: Listener on %v; nothing on %d; DROP on %s\n", sc.Listen, netlab.PortRefused, drop)
	}
	b.WriteString("\nExpected events (`tcpsentry replay " + sc.File + "`):\n\n")
	want := sc.Want()
	if len(want) == 0 {
		b.WriteString("- none: every connection must stay silent\n")
	}
	for _, e := range want {
		fmt.Fprintf(&b, "- `%s` (reason `%s`): client %v -> server %v", e.Action, e.Reason, e.Client, e.Server)
		if e.Count > 0 {
			fmt.Fprintf(&b, ", `tcpsentry.count` %d", e.Count)
		}
		b.WriteString("\n")
	}
	if sc.Facts != nil {
		fmt.Fprintf(&b, "\n%s", sc.Facts(tr))
	}
	if len(conns) > maxListed {
		outcomes := map[string]int{}
		for _, c := range conns {
			outcomes[c.Outcome()]++
		}
		fmt.Fprintf(&b, "\nConnections (netlab.Summarize): %d; by outcome: %v\n", len(conns), outcomes)
		return b.String()
	}
	b.WriteString("\nConnections (netlab.Summarize):\n\n```\n")
	width := 19
	for i, c := range conns {
		width = max(width, len(label(sc, i, c, want))+1)
	}
	for i, c := range conns {
		fmt.Fprintf(&b, "%-*s %v\n", width, label(sc, i, c, want)+":", c)
	}
	b.WriteString("```\n")
	if _, err := exec.LookPath("tshark"); err == nil {
		out, err := exec.Command("tshark", "-n", "-r", path, "-q", "-z", "conv,tcp").Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		fmt.Fprintf(&b, "\n`tshark -n -r %s -q -z conv,tcp`:\n\n```\n%s```\n", sc.File, trimConv(string(out)))
	}
	return b.String()
}

// label names the events expected of connection i (c) in a README list.
func label(sc netlab.ShippedCapture, i int, c netlab.Conn, want []netlab.ExpectedEvent) string {
	if sc.Expect == nil {
		if a := sc.Conns[i].Action; a != "" {
			return a
		}
		return "silent"
	}
	var actions []string
	for _, e := range want {
		if e.Client == c.Client && e.Server == c.Server {
			actions = append(actions, e.Action)
		}
	}
	switch len(actions) {
	case 0:
		return "silent"
	case 1:
		return actions[0]
	}
	return fmt.Sprintf("%d events", len(actions))
}

// trimConv drops tshark's banner lines of '=' and keeps the table.
func trimConv(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "=====") {
			continue
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	return b.String()
}

const (
	beginMark = "<!-- netlab:begin (generated by TestGenerateCaptures; edit bench/netlab/captures.go) -->"
	endMark   = "<!-- netlab:end -->"

	scenariosBegin = "<!-- netlab:scenarios:begin (generated by TestGenerateScenarios; edit bench/netlab/scenarios.go) -->"
	scenariosEnd   = "<!-- netlab:scenarios:end -->"
)

// scenariosIntro opens the generated section of the scenario library.
const scenariosIntro = `# The scenario library

One capture per story of shared/seeds and per detector of DESIGN.md §4,
made from real kernel traffic in the same lab by ` + "`TestGenerateScenarios`" + `
(` + "`netlab.Scenarios`" + ` in ` + "`bench/netlab/scenarios.go`" + `):

` + "```sh" + `
TCPSENTRY_UPDATE_TESTDATA=1 go test ./bench/netlab -run TestGenerateScenarios -count=1 -v
` + "```" + `

Each scenario has a complete list of expected events (` + "`Expect`" + `;
` + "`tcpsentry.count`" + ` where events of one type, client address and server
port are folded), a packet-level check that the capture really shows its
story (run on every generated and every committed file by
` + "`TestShippedCaptures`" + `), and where needed a driver of its own:
concurrent or timed dials, Listeners that never accept or that reset, and
crafted clients. A crafted client sends from 10.213.0.3, an address no
namespace owns: it writes its frames onto the client namespace's eth0 and
reads the server's answers off it (the client kernel drops them silently,
so it never resets a crafted connection).
` + "`netlab.GenerateScenario(t, sc, path)`" + ` makes one scenario's capture with
a fresh lab, for tests that check the sensor's events on a new capture.
Files over 64 KiB are gzip-compressed (` + "`.pcap.gz`" + `; tcpsentry replay,
tshark and pcapgo read them as they are).

`

// updateReadme replaces the generated part of the README between begin
// and end, keeping the rest.
func updateReadme(path, begin, end, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	gen := begin + "\n\n" + body + "\n" + end + "\n"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + gen + strings.TrimPrefix(s[j+len(end):], "\n")
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + gen
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(to+".tmp", to)
}
