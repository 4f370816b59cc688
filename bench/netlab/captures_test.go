package netlab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

// testdata is the repository's testdata/ folder.
const testdata = "../../testdata"

const updateEnv = "TCPSENTRY_UPDATE_TESTDATA"

// TestGenerateCaptures remakes the captures in testdata/ and their section
// of testdata/README.md. It runs only with TCPSENTRY_UPDATE_TESTDATA=1:
//
//	sudo TCPSENTRY_UPDATE_TESTDATA=1 go test ./bench/netlab -run TestGenerateCaptures -count=1 -v
func TestGenerateCaptures(t *testing.T) {
	if os.Getenv(updateEnv) != "1" {
		t.Skip(updateEnv + "=1 not set; not regenerating testdata/")
	}
	var sections []string
	for _, sc := range netlab.ShippedCaptures {
		tmp := filepath.Join(t.TempDir(), sc.File)
		var cmdline string
		t.Run(sc.File, func(t *testing.T) {
			lab := netlab.New(t)
			if !lab.Checksums {
				t.Fatal("install ethtool: shipped captures must carry full checksums")
			}
			for _, p := range sc.Listen {
				lab.Listen(p, netlab.ListenConfig{})
			}
			for _, p := range sc.Drop {
				lab.Drop(p)
			}
			cp := lab.Capture(sc.Side, sc.Iface, tmp, sc.Filter)
			res := lab.MustConnect(sc.Dials...)
			st := cp.Stop()
			t.Logf("%s: %+v", sc.File, st)
			for i, r := range res {
				t.Logf("dial %d: %+v", i, r)
			}
			checkCapture(t, tmp, sc)
			cmdline = fmt.Sprintf("ip netns exec %s tcpdump -i %s -w %s --immediate-mode -U -n -Z root", "tsn-XXXXXXXX-"+sc.Side.String()[:1], sc.Iface, sc.File)
			if sc.Iface == "any" {
				cmdline += " -y LINUX_SLL2"
			}
			cmdline += " " + sc.Filter
		})
		if t.Failed() {
			t.Fatalf("%s: not written", sc.File)
		}
		if err := copyFile(tmp, filepath.Join(testdata, sc.File)); err != nil {
			t.Fatal(err)
		}
		sections = append(sections, readmeSection(t, sc, filepath.Join(testdata, sc.File), cmdline))
	}
	if err := updateReadme(filepath.Join(testdata, "README.md"), strings.Join(sections, "\n")); err != nil {
		t.Fatal(err)
	}
}

// TestShippedCaptures checks the committed captures against
// netlab.ShippedCaptures. It needs no privileges.
func TestShippedCaptures(t *testing.T) {
	for _, sc := range netlab.ShippedCaptures {
		t.Run(sc.File, func(t *testing.T) {
			path := filepath.Join(testdata, sc.File)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > 64<<10 {
				t.Errorf("%s is %d bytes; keep shipped captures small", path, fi.Size())
			}
			checkCapture(t, path, sc)
		})
	}
}

// checkCapture compares the connections in path with sc.Conns.
func checkCapture(t *testing.T, path string, sc netlab.ShippedCapture) {
	t.Helper()
	conns := summarize(t, path, sc.Link)
	if len(conns) != len(sc.Conns) {
		t.Fatalf("%s: %d connections, want %d", path, len(conns), len(sc.Conns))
	}
	for i, c := range conns {
		w := sc.Conns[i]
		if c.Client != w.Client || c.Server != w.Server || c.Outcome() != w.Outcome {
			t.Errorf("%s: connection %d is %v; want client %v -> server %v %s", path, i, c, w.Client, w.Server, w.Outcome)
		}
		switch w.Outcome {
		case netlab.OutcomeRefused:
			if c.SYNs != 1 || c.ServerRSTACKs != 1 || c.Packets != 2 {
				t.Errorf("%s: refused connection %d: want SYN, RST/ACK: %v", path, i, c)
			}
		case netlab.OutcomeUnanswered:
			if c.SYNs != 4 || c.Packets != 4 {
				t.Errorf("%s: unanswered connection %d: want 4 SYNs: %v", path, i, c)
			}
		case netlab.OutcomeFIN, netlab.OutcomeRST:
			d := sc.Dials[i]
			if c.ServerBytes != d.Exchanges*d.Response || c.SYNs != 1 || c.SYNACKs != 1 {
				t.Errorf("%s: clean connection %d: want 1 SYN, 1 SYN/ACK, %d response bytes: %v", path, i, d.Exchanges*d.Response, c)
			}
			if w.Outcome == netlab.OutcomeRST && (c.ClientRSTs != 1 || c.ServerRSTs != 0) {
				t.Errorf("%s: connection %d: want one RST from the client: %v", path, i, c)
			}
		}
	}
}

func readmeSection(t *testing.T, sc netlab.ShippedCapture, path, cmdline string) string {
	t.Helper()
	conns := summarize(t, path, sc.Link)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## %s — %s\n\n", sc.File, sc.Title)
	fmt.Fprintf(&b, "%s\n\n", sc.Description)
	fmt.Fprintf(&b, "- link type: %v (%d); %d bytes, %d connections\n", sc.Link, int(sc.Link), fi.Size(), len(conns))
	fmt.Fprintf(&b, "- capture: `%s`\n", cmdline)
	drop := "none"
	if len(sc.Drop) > 0 {
		drop = fmt.Sprint(sc.Drop)
	}
	fmt.Fprintf(&b, "- server namespace: Listener on %v; nothing on %d; DROP on %s\n\n", sc.Listen, netlab.PortRefused, drop)
	b.WriteString("Expected events (`tcpsentry replay " + sc.File + "`):\n\n")
	ev := sc.Events()
	if len(ev) == 0 {
		b.WriteString("- none: every connection must stay silent\n")
	}
	for _, e := range ev {
		fmt.Fprintf(&b, "- `%s` (reason `%s`): client %v -> server %v\n", e.Action, e.Reason, e.Client, e.Server)
	}
	b.WriteString("\nConnections (netlab.Summarize):\n\n```\n")
	for i, c := range conns {
		what := "silent"
		if a := sc.Conns[i].Action; a != "" {
			what = a
		}
		fmt.Fprintf(&b, "%-19s %v\n", what+":", c)
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
)

// updateReadme replaces the generated part of the README, keeping the rest.
func updateReadme(path, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	gen := beginMark + "\n\n" + body + "\n" + endMark + "\n"
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + gen + strings.TrimPrefix(s[j+len(endMark):], "\n")
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
