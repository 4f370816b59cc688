//go:build linux

package peers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const demo = "../../testdata/demo.pcap"

// tools maps each peer to its runner.
var tools = []struct {
	name string
	run  func(context.Context, string) (Result, error)
}{{"tshark", Tshark}, {"tcpdump", Tcpdump}, {"tcptrace", Tcptrace}, {"argus", Argus}}

// need skips the test when tool is missing, except on CI, which installs
// them all.
func need(t *testing.T, tool string) {
	t.Helper()
	if ok, why := Available(tool); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
}

// checkRun checks what every successful run fills in.
func checkRun(t *testing.T, res Result, tool, version, command string) {
	t.Helper()
	if res.Tool != tool || !strings.HasPrefix(res.Version, version) || res.Command != command {
		t.Errorf("tool %q version %q command %q; want %q, %q..., %q", res.Tool, res.Version, res.Command, tool, version, command)
	}
	if res.Took <= 0 || res.CPU < 0 || res.MaxRSS <= 0 {
		t.Errorf("took %v, CPU %v, max RSS %d", res.Took, res.CPU, res.MaxRSS)
	}
	t.Logf("%s: %d lines, %v, CPU %v, max RSS %d KiB", res.Version, res.Lines, res.Took, res.CPU, res.MaxRSS>>10)
}

// countRST counts the packets with RST set in a pcap, IPv4 and IPv6,
// tagged or not: the truth tcpdump's filter is checked against.
func countRST(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
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
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tcp.RST {
			n++
		}
	}
}

// TestTcpdumpRST: tcpdump's RST filter prints one line per RST in demo.pcap
// (there is one: the refusal of port 7211).
func TestTcpdumpRST(t *testing.T) {
	need(t, "tcpdump")
	want := countRST(t, demo)
	if want != 1 {
		t.Fatalf("demo.pcap holds %d RSTs, the README says 1", want)
	}
	res, err := Tcpdump(context.Background(), demo)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, "tcpdump", "tcpdump version ", "tcpdump -n -r ../../testdata/demo.pcap 'tcp[tcpflags] & (tcp-rst) != 0'")
	if res.Lines != want {
		t.Errorf("tcpdump printed %d lines, the file has %d RSTs", res.Lines, want)
	}
}

// TestTsharkDemo: tshark's line count on demo.pcap. The 4 was observed by
// running the same command by hand (TShark 4.0.17, Debian bookworm):
//
//	HOME=$(mktemp -d) tshark -n -r testdata/demo.pcap -o tcp.analyze_sequence_numbers:TRUE \
//	    -Y 'tcp.analysis.flags || tcp.flags.reset==1' | wc -l
//
// the RST/ACK refusing port 7211 and the three retransmissions of the
// unanswered SYN to 9090. It also checks that the running-as-root warning
// on stderr is no error, and that the temporary HOME is gone afterwards.
func TestTsharkDemo(t *testing.T) {
	need(t, "tshark")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	res, err := Tshark(context.Background(), demo)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, "tshark", "TShark (Wireshark) ",
		"tshark -n -r ../../testdata/demo.pcap -o tcp.analyze_sequence_numbers:TRUE -Y 'tcp.analysis.flags || tcp.flags.reset==1'")
	if res.Lines != 4 {
		t.Errorf("tshark printed %d lines, want 4", res.Lines)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("temporary directory holds %v (%v) after the run", left, err)
	}
}

// TestTcptraceDemo: tcptrace runs and summarises: its banner and at least
// one line per connection of the 6.
func TestTcptraceDemo(t *testing.T) {
	need(t, "tcptrace")
	res, err := Tcptrace(context.Background(), demo)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, "tcptrace", "Version: Ostermann's tcptrace", "tcptrace -n ../../testdata/demo.pcap")
	if res.Lines < 6 {
		t.Errorf("tcptrace printed %d lines, want at least 6", res.Lines)
	}
}

// TestArgusDemo: Argus keeps a record per TCP connection of demo.pcap (6:
// four closed, the refused one, the unanswered SYN), counted with ra, and
// leaves nothing in the temporary directory.
func TestArgusDemo(t *testing.T) {
	need(t, "argus") // and ra
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	res, err := Argus(context.Background(), demo)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, res, "argus", "Argus Version ",
		"argus -X -r ../../testdata/demo.pcap -w flows.argus; ra -n -L -1 -r flows.argus - tcp")
	if res.Lines != 6 {
		t.Errorf("argus kept %d TCP records, want 6", res.Lines)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("temporary directory holds %v (%v) after the run", left, err)
	}
	// argus exits 0 on a file it cannot read; the run is still an error.
	bad := filepath.Join(tmp, "bad.pcap")
	if err := os.WriteFile(bad, []byte("not a capture"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Argus(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "unknown packet file format") {
		t.Errorf("a file that is no capture: %v", err)
	}
}

// TestMissingFile: a file that does not exist is an error naming the tool
// and the file.
func TestMissingFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.pcap")
	for _, tool := range tools {
		t.Run(tool.name, func(t *testing.T) {
			need(t, tool.name)
			_, err := tool.run(context.Background(), file)
			if err == nil || !strings.Contains(err.Error(), tool.name) || !strings.Contains(err.Error(), file) {
				t.Fatalf("error %v; want one naming %s and %s", err, tool.name, file)
			}
			t.Log(err)
		})
	}
}

// TestCancel: cancelling the context kills the tool and the call returns
// context.Canceled with no child left. The tool reads a FIFO nobody
// writes, so it blocks in open(2) until it is killed.
func TestCancel(t *testing.T) {
	for _, tool := range tools {
		t.Run(tool.name, func(t *testing.T) {
			need(t, tool.name)
			fifo := filepath.Join(t.TempDir(), "blocked.pcap")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := tool.run(ctx, fifo)
				done <- err
			}()
			// Wait for the run on the FIFO (not the version query).
			var pid int
			for deadline := time.Now().Add(30 * time.Second); pid == 0; {
				select {
				case err := <-done:
					t.Fatalf("returned before cancel: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s child reading %s after 30 s", tool.name, fifo)
				}
				for _, c := range children(t) {
					if bytes.Contains(c.cmdline, []byte(fifo)) {
						pid = c.pid
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			err := <-done
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), tool.name) {
				t.Fatalf("error %v; want context.Canceled naming %s", err, tool.name)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
				t.Errorf("%s (pid %d) still exists after the run returned: %v", tool.name, pid, err)
			}
			if cs := children(t); len(cs) != 0 {
				t.Errorf("children left: %+v", cs)
			}
		})
	}
}

type child struct {
	pid     int
	cmdline []byte
}

// children lists this process's child processes from /proc.
func children(t *testing.T) []child {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	var cs []child
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold anything, so split
		// after its closing parenthesis.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			cs = append(cs, child{pid, cmdline})
		}
	}
	return cs
}

func TestLineCounter(t *testing.T) {
	for _, c := range []struct {
		chunks []string
		want   int
	}{
		{nil, 0},
		{[]string{""}, 0},
		{[]string{"a\n"}, 1},
		{[]string{"a\nb"}, 2},
		{[]string{"a", "b", "\n"}, 1},
		{[]string{"a\n", "\n", "b\nc\n"}, 4},
		{[]string{"a\n", "b"}, 2},
		{[]string{"a", "\nb", ""}, 2},
	} {
		var lc lineCounter
		for _, s := range c.chunks {
			if n, err := lc.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if got := lc.lines(); got != c.want {
			t.Errorf("%q: %d lines, want %d", c.chunks, got, c.want)
		}
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 16}
	for _, s := range []string{"first line\n", "a much longer second line\n", "third\n\n"} {
		tl.Write([]byte(s))
	}
	if len(tl.buf) != 16 || tl.lastLine() != "third" {
		t.Fatalf("kept %q, last line %q", tl.buf, tl.lastLine())
	}
}

func TestQuoteCommand(t *testing.T) {
	got := quoteCommand("tool", []string{"-n", "/a b/it's.pcap", "", "x:TRUE", "a || b"})
	want := `tool -n '/a b/it'\''s.pcap' '' x:TRUE 'a || b'`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAvailable(t *testing.T) {
	if ok, why := Available("sh"); !ok {
		t.Errorf("sh: %s", why)
	}
	ok, why := Available("tcptrace-not-a-tool")
	if ok || !strings.Contains(why, "tcptrace-not-a-tool") {
		t.Errorf("missing tool: %v, %q", ok, why)
	}
	bin := t.TempDir()
	t.Setenv("PATH", bin)
	if ok, why := Available("tcpdump"); ok || !strings.Contains(why, "apt-get install tcpdump") {
		t.Errorf("tcpdump off PATH: %v, %q", ok, why)
	}
	// argus is no use without ra, its client, which counts its records.
	if err := os.WriteFile(filepath.Join(bin, "argus"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, why := Available("argus"); ok || !strings.Contains(why, "ra is not installed (Debian package argus-client") {
		t.Errorf("argus without ra: %v, %q", ok, why)
	}
}
