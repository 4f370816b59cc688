package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/bench/workload"
)

// wireEvent is the part of a JSON event the end-to-end tests check.
type wireEvent struct {
	Event struct {
		Action string `json:"action"`
		Reason string `json:"reason"`
	} `json:"event"`
	Source struct {
		IP   string `json:"ip"`
		Port uint16 `json:"port"`
	} `json:"source"`
	Destination struct {
		IP   string `json:"ip"`
		Port uint16 `json:"port"`
	} `json:"destination"`
	Tcpsentry struct {
		Count int `json:"count"`
	} `json:"tcpsentry"`
}

func (e wireEvent) String() string {
	c := netip.AddrPortFrom(netip.MustParseAddr(e.Source.IP), e.Source.Port)
	s := netip.AddrPortFrom(netip.MustParseAddr(e.Destination.IP), e.Destination.Port)
	return fmt.Sprintf("%s/%s %s -> %s x%d", e.Event.Action, e.Event.Reason, c, s, e.Tcpsentry.Count)
}

// replay runs the CLI in-process and returns exit code, events, stderr.
func replay(t *testing.T, args ...string) (int, []string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"replay"}, args...), &out, &errb)
	return code, parseEvents(t, out.Bytes()), errb.String()
}

// parseEvents returns the JSON lines of a replay as sorted strings.
func parseEvents(t *testing.T, out []byte) []string {
	t.Helper()
	var evs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var e wireEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event is not JSON: %v\n%s", err, line)
		}
		evs = append(evs, e.String())
	}
	sort.Strings(evs)
	return evs
}

// expected lists sc's events as replay formats them; "x*" where the
// count is not checked.
func expected(sc netlab.ShippedCapture) []string {
	var want []string
	for _, e := range sc.Want() {
		n := "*"
		if e.Count > 0 {
			n = fmt.Sprint(e.Count)
		}
		want = append(want, fmt.Sprintf("%s/%s %s -> %s x%s", e.Action, e.Reason, e.Client, e.Server, n))
	}
	sort.Strings(want)
	return want
}

// sameEvents matches got against want, where "x*" matches any count.
func sameEvents(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	left := slices.Clone(got)
	for _, w := range want {
		i := slices.IndexFunc(left, func(g string) bool {
			if p, ok := strings.CutSuffix(w, "x*"); ok {
				return strings.HasPrefix(g, p) && !strings.Contains(g[len(p):], " ")
			}
			return g == w
		})
		if i < 0 {
			return false
		}
		left = slices.Delete(left, i, i+1)
	}
	return true
}

// allCaptures is every capture in testdata/ with expected events.
func allCaptures() []netlab.ShippedCapture {
	return append(slices.Clone(netlab.ShippedCaptures), netlab.Scenarios...)
}

// TestReplayShippedCaptures: real kernel traffic (testdata/, made by
// bench/netlab) gives exactly the expected events, with any number of
// workers, and clean traffic gives none.
func TestReplayShippedCaptures(t *testing.T) {
	if len(allCaptures()) < 11 {
		t.Fatalf("only %d shipped captures", len(allCaptures()))
	}
	for _, sc := range allCaptures() {
		var first string
		for _, workers := range []string{"1", "2", "3"} {
			t.Run(sc.File+"/workers="+workers, func(t *testing.T) {
				var out, errb bytes.Buffer
				code := run([]string{"replay", "--workers", workers, filepath.Join("../../testdata", sc.File)}, &out, &errb)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
				evs := parseEvents(t, out.Bytes())
				want := expected(sc)
				if !sameEvents(evs, want) {
					t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(evs, "\n"), strings.Join(want, "\n"))
				}
				if len(sc.Conns) > 0 && !strings.Contains(errb.String(), fmt.Sprintf("%d created", len(sc.Conns))) {
					t.Fatalf("summary does not report %d flows:\n%s", len(sc.Conns), errb.String())
				}
				// Not only the same events: the same bytes in the same
				// order, but for the run's random event id prefix.
				norm := eventID.ReplaceAllString(out.String(), `"id":"ID"`)
				if first == "" {
					first = norm
				} else if norm != first {
					t.Fatalf("output differs from workers=1:\n%s\nvs\n%s", norm, first)
				}
			})
		}
	}
}

var eventID = regexp.MustCompile(`"id":"[^"]*"`)

func TestReplayDemoSummary(t *testing.T) {
	code, evs, stderr := replay(t, "../../testdata/demo.pcap")
	if code != 0 || len(evs) != 2 {
		t.Fatalf("exit %d, %d events: %s", code, len(evs), stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("packets   %d ", countPackets(t, "../../testdata/demo.pcap")), "6 created, at most 6 held at once (", "1 syn_unanswered, 1 connection_refused", "not TCP   none",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
}

// TestReplayFilter: --filter replays only the frames the expression
// accepts, as tcpdump -r does (ring's TestReplayFilterMatchesTcpdump
// compares them frame by frame): the connection to port 9090 is the
// unanswered SYN and its three retransmissions, and the rest of the demo
// is left out, its refused connection with it.
func TestReplayFilter(t *testing.T) {
	total := countPackets(t, "../../testdata/demo.pcap")
	code, evs, stderr := replay(t, "--filter", "port 9090", "../../testdata/demo.pcap")
	if code != 0 || len(evs) != 1 || !strings.Contains(evs[0], "syn_unanswered") {
		t.Fatalf("exit %d, events %v: %s", code, evs, stderr)
	}
	for _, want := range []string{"packets   4 ", fmt.Sprintf("filter    \"port 9090\" left out %d frames", total-4), "1 created,", "events    1 syn_unanswered\n"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}
	// Without --filter there is no filter line.
	if _, _, stderr := replay(t, "../../testdata/demo.pcap"); strings.Contains(stderr, "filter") {
		t.Errorf("a filter line without --filter:\n%s", stderr)
	}
	// A bad expression is a usage error, before anything is read.
	code, evs, stderr = replay(t, "--filter", "tcp port", "../../testdata/demo.pcap")
	if code != 2 || len(evs) != 0 || !strings.Contains(stderr, `invalid value "tcp port" for flag -filter: unexpected end of expression`) {
		t.Errorf("bad filter: exit %d, %d events:\n%s", code, len(evs), stderr)
	}
	// One that the file's link type cannot take is a one-line error.
	code, _, stderr = replay(t, "--filter", "ether host 1:2:3:4:5:6", "../../ring/testdata/any_sll.pcap")
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "on link type Linux SLL") {
		t.Errorf("filter for another link type: exit %d:\n%s", code, stderr)
	}
}

// TestReplayFilterSnapped: on a capture cut to a snap length of 96 bytes,
// --filter keeps the frames tcpdump -r prints, which for "greater" are
// frames longer on the wire than any captured.
func TestReplayFilterSnapped(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump, the oracle, is not installed (Debian package tcpdump)")
		}
		t.Skip("tcpdump, the oracle, is not installed (Debian package tcpdump)")
	}
	o := workload.DefaultOptions()
	o.Connections, o.Concurrent, o.Snaplen = 300, 50, 96
	path := filepath.Join(t.TempDir(), "snap96.pcap")
	st, err := workload.WriteFile(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{"greater 1000", "tcp and greater 500", "less 100"} {
		out, err := exec.Command("tcpdump", "-n", "-r", path, expr).Output()
		if err != nil {
			t.Fatalf("tcpdump -r %s %q: %v", path, expr, err)
		}
		want := strings.Count(string(out), "\n")
		if want == 0 || want == st.Packets {
			t.Fatalf("%q: tcpdump printed %d of %d frames; the test needs some left in and some out", expr, want, st.Packets)
		}
		code, _, stderr := replay(t, "--filter", expr, path)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", expr, code, stderr)
		}
		for _, s := range []string{fmt.Sprintf("packets   %d ", want), fmt.Sprintf("filter    %q left out %d frames", expr, st.Packets-want)} {
			if !strings.Contains(stderr, s) {
				t.Errorf("%q: tcpdump -r printed %d of %d frames; the summary lacks %q:\n%s", expr, want, st.Packets, s, stderr)
			}
		}
		t.Logf("%q: %d of %d frames, as tcpdump -r", expr, want, st.Packets)
	}
}

// demoFiles is a temporary directory, testdata/demo.pcap's bytes to make
// bad files from, and write, which puts one in the directory.
func demoFiles(t *testing.T) (dir string, demo []byte, write func(name string, b []byte) string) {
	t.Helper()
	dir = t.TempDir()
	demo, err := os.ReadFile("../../testdata/demo.pcap")
	if err != nil {
		t.Fatal(err)
	}
	write = func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return dir, demo, write
}

// TestReplayBadFiles: every bad input gets one clear line naming the
// file and the problem, and exit 1; a truncated last record is a warning.
func TestReplayBadFiles(t *testing.T) {
	dir, demo, write := demoFiles(t)
	// A record header in the middle claiming 1 GiB: corrupt.
	corrupt := bytes.Clone(demo)
	rec2 := 24 + 16 + int(le32(corrupt[24+8:])) // second record header
	copy(corrupt[rec2+8:], []byte{0, 0, 0, 0x40})
	copy(corrupt[rec2+12:], []byte{0, 0, 0, 0x40})
	// The link type field of the file header: 105 (IEEE 802.11).
	wifi := bytes.Clone(demo)
	wifi[20], wifi[21], wifi[22], wifi[23] = 105, 0, 0, 0

	cases := []struct {
		name, path string
		code       int
		stderr     []string // substrings of the first line
	}{
		{"missing", filepath.Join(dir, "nope.pcap"), 1, []string{"nope.pcap", "no such file"}},
		{"directory", dir, 1, []string{"is a directory"}},
		{"empty", write("empty.pcap", nil), 1, []string{"empty.pcap", "not a pcap or pcapng file", "empty"}},
		{"text", write("notes.txt", []byte("hello, this is not a capture at all\n")), 1, []string{"notes.txt", "not a pcap or pcapng file"}},
		{"header only", write("header.pcap", demo[:24]), 0, nil},
		{"short header", write("short.pcap", demo[:10]), 1, []string{"short.pcap", "not a pcap or pcapng file"}},
		{"corrupt record", write("corrupt.pcap", corrupt), 1, []string{"corrupt.pcap", "record 2"}},
		{"unsupported link", write("wifi.pcap", wifi), 1, []string{"wifi.pcap", "link type 105"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, evs, stderr := replay(t, "--quiet", c.path)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			for _, s := range c.stderr {
				if !strings.Contains(first, s) {
					t.Errorf("first stderr line %q lacks %q", first, s)
				}
			}
			if c.code != 0 && c.name != "corrupt record" && len(evs) != 0 {
				t.Errorf("events on a bad file: %v", evs)
			}
		})
	}

	t.Run("truncated last record", func(t *testing.T) {
		p := write("cut.pcap", demo[:len(demo)-7])
		code, evs, stderr := replay(t, p)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		n := countPackets(t, "../../testdata/demo.pcap") - 1
		if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "truncated") || !strings.Contains(stderr, fmt.Sprintf("packets   %d ", n)) {
			t.Fatalf("stderr:\n%s", stderr)
		}
		if len(evs) != 2 {
			t.Fatalf("events before the cut lost: %v", evs)
		}
	})
}

// TestReplayHostileFiles: with --quiet, a file that is no capture gets
// exactly one stderr line, "tcpsentry: <path>: <reason>", and exit 1; a
// header-only file is an empty capture (exit 0, nothing on stderr); a
// record claiming 2^31 bytes after a snap length of 2^32-1 stops the
// replay at that record with one line naming it, after the events of
// the records before it.
func TestReplayHostileFiles(t *testing.T) {
	_, demo, write := demoFiles(t)
	absurd := bytes.Clone(demo)
	binary.LittleEndian.PutUint32(absurd[16:], 0xffffffff) // snap length
	rec2 := 24 + 16 + int(le32(absurd[24+8:]))
	binary.LittleEndian.PutUint32(absurd[rec2+8:], 1<<31)  // captured
	binary.LittleEndian.PutUint32(absurd[rec2+12:], 1<<31) // on the wire

	cases := []struct {
		name, file string
		data       []byte
		code       int
		stderr     string // all of it, after "tcpsentry: <path>: "
		events     int
	}{
		{"zero bytes", "empty.pcap", nil, 1, "ring: not a pcap or pcapng file: the file is empty", 0},
		{"wrong magic, text", "notes.pcap", []byte("GET / HTTP/1.1\r\n\r\n"), 1,
			`ring: not a pcap or pcapng file: it starts with 47 45 54 20 2f 20 48 54 ("GET / HT", text)`, 0},
		{"wrong magic, binary", "elf.pcap", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00"), 1,
			"ring: not a pcap or pcapng file: it starts with 7f 45 4c 46 02 01 01 00", 0},
		{"magic only", "magic.pcap", demo[:4], 1,
			"ring: not a pcap or pcapng file: pcap file header cut short (4 of 24 bytes)", 0},
		{"header only", "header.pcap", demo[:24], 0, "", 0},
		{"absurd lengths", "absurd.pcap", absurd, 1, "ring: packet record 2 at byte offset " + fmt.Sprint(rec2) +
			": corrupt capture file: capture length 2147483648 exceeds the 262144-byte maximum", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(c.file, c.data)
			code, evs, stderr := replay(t, "--quiet", p)
			want := ""
			if c.stderr != "" {
				want = "tcpsentry: " + p + ": " + c.stderr + "\n"
			}
			if code != c.code || stderr != want || len(evs) != c.events {
				t.Errorf("exit %d, %d events, stderr\n%q\nwant exit %d, %d events, stderr\n%q", code, len(evs), stderr, c.code, c.events, want)
			}
		})
	}
}

// countPackets counts a pcap's records with pcapgo, independently of ring.
func countPackets(t *testing.T, name string) int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			return n
		}
		n++
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage") {
		t.Fatalf("no args: exit %d", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code := run([]string{"replay"}, &out, &errb); code != 2 {
		t.Fatalf("replay without file: exit %d", code)
	}
	if code := run([]string{"replay", "--workers", "-1", "x"}, &out, &errb); code != 2 {
		t.Fatalf("bad workers: exit %d", code)
	}
}

// TestReplayStdin: "replay -" reads the capture from standard input, as
// tcpdump -r - does, plain and gzipped, and gives the events and the
// summary counts a replay of the file gives.
func TestReplayStdin(t *testing.T) {
	for _, file := range []string{"refused_rate.pcap", "clean_many.pcap.gz", "seed001.pcap"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("../../testdata", file)
			var fout, ferr bytes.Buffer
			if code := run([]string{"replay", "--workers", "2", path}, &fout, &ferr); code != 0 {
				t.Fatalf("replay %s: exit %d: %s", path, code, ferr.String())
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cmd := exec.Command(os.Args[0], "replay", "--workers", "2", "-")
			cmd.Env = append(os.Environ(), asCommand+"=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = in, &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("replay -: %v\n%s", err, stderr.String())
			}
			if got, want := eventID.ReplaceAllString(stdout.String(), `"id":"ID"`), eventID.ReplaceAllString(fout.String(), `"id":"ID"`); got != want {
				t.Fatalf("events differ from the file's:\n%s\nwant:\n%s", got, want)
			}
			// The summary names the input and counts the same packets.
			gotSum := strings.SplitN(stderr.String(), "\n", 3)
			wantSum := strings.SplitN(ferr.String(), "\n", 3)
			if len(gotSum) < 3 || gotSum[0] != "tcpsentry replay standard input" || !strings.HasPrefix(gotSum[1], strings.SplitN(wantSum[1], " in ", 2)[0]+" in ") {
				t.Fatalf("summary:\n%s\nwant it like:\n%s", stderr.String(), ferr.String())
			}
		})
	}
	// Empty standard input is an empty file: one line, exit 1.
	cmd := exec.Command(os.Args[0], "replay", "-")
	cmd.Env = append(os.Environ(), asCommand+"=1")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = strings.NewReader(""), &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || stderr.String() != "tcpsentry: standard input: ring: not a pcap or pcapng file: the file is empty\n" {
		t.Fatalf("empty stdin: exit %d (%v), stderr %q", code, err, stderr.String())
	}
}
