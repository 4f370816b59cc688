package ring_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/ring"
)

// unavailable skips t, or fails it under CI=true, where a skipped
// privileged test would hide a broken setup.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipping)", msg)
	}
	t.Skip(msg)
}

// tcpdumpLoopback captures TCP on lo to port with tcpdump while traffic
// runs, and returns the pcap file. tcpdump says it listens a moment before
// it sees packets, so probe runs until the file has some before traffic.
func tcpdumpLoopback(t *testing.T, port int, probe, traffic func()) []byte {
	t.Helper()
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		unavailable(t, "tcpdump is not installed (Debian package tcpdump)")
	}
	if os.Geteuid() != 0 {
		unavailable(t, "capturing on lo needs root (CAP_NET_RAW); running as uid %d", os.Geteuid())
	}
	file := filepath.Join(t.TempDir(), "live.pcap")
	cmd := exec.Command(tcpdump, "-i", "lo", "-w", file, "--immediate-mode", "-U", "-n", "-Z", "root", "-B", "8192",
		"--time-stamp-precision", "nano", fmt.Sprintf("tcp port %d", port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	tail := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "listening on") {
				listening <- ""
			}
		}
		listening <- strings.Join(lines, "\n")
		tail <- strings.Join(lines, "; ")
	}()
	select {
	case msg := <-listening:
		if msg != "" {
			cmd.Wait()
			unavailable(t, "tcpdump did not start: %s", msg)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("tcpdump did not start listening in 10 s")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		probe()
		time.Sleep(50 * time.Millisecond)
		if fi, err := os.Stat(file); err == nil && fi.Size() > 24 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("tcpdump captured nothing in 10 s")
		}
	}
	traffic()
	time.Sleep(300 * time.Millisecond) // let the last packets reach the file
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	t.Logf("tcpdump: %s", <-tail)
	return readFile(t, file)
}

// TestReplayLiveTcpdump replays a capture tcpdump makes now of real
// loopback connections (the committed files are older ones of the kind).
func TestReplayLiveTcpdump(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tcpdump")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	const conns = 4
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				c.Write(append([]byte("echo:"), buf[:n]...))
			}()
		}
	}()
	talk := func(msg string) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, msg)
		io.ReadAll(c)
		c.Close()
	}
	data := tcpdumpLoopback(t, port, func() { talk("probe") }, func() {
		for i := range conns {
			talk(fmt.Sprintf("hello %d", i))
		}
	})

	whole := oracle(t, data)
	res := replay(t, data, ring.ReplayConfig{Workers: 2, Hash: symHash, BatchSize: 8})
	flows := checkFanout(t, whole, res, symHash)
	keys := map[string]bool{}
	for _, f := range whole {
		k, _ := flowKey(f.Data, f.Link)
		keys[k] = true
	}
	if flows[0]+flows[1] != len(keys) || len(keys) < conns {
		t.Errorf("%v flows per worker, want %d in all (at least %d)", flows, len(keys), conns)
	}
	if res.rp.Link() != ring.LinkTypeEthernet || res.rp.Err() != nil || res.rp.Truncated() {
		t.Errorf("Link %v Err %v Truncated %v", res.rp.Link(), res.rp.Err(), res.rp.Truncated())
	}
	syns := 0
	for _, f := range whole {
		// Ethernet, IPv4 without options: TCP flags at 14+20+13.
		if len(f.Data) > 47 && f.Data[47] == 0x02 {
			syns++
		}
	}
	if syns < conns {
		t.Errorf("%d SYNs, want at least %d", syns, conns)
	}
	st := res.rp.Stats()
	if st.Packets != uint64(len(whole)) || st.FirstTS != whole[0].TS || st.LastTS != whole[len(whole)-1].TS {
		t.Errorf("stats %+v for %d frames", st, len(whole))
	}
	t.Logf("%d frames of %d connections (%d SYNs) from tcpdump -i lo", len(whole), len(keys), syns)
}
