package main

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

// asCommand is the environment variable that makes the test binary run as
// the tcpsentry command (see TestMain).
const asCommand = "TCPSENTRY_TEST_AS_COMMAND"

// sensorProc is `tcpsentry run` running as a child process.
type sensorProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
}

// startRun starts `tcpsentry run args...` and returns once it says it
// captures (its sockets are bound, so nothing sent afterwards is missed).
func startRun(t *testing.T, args ...string) *sensorProc {
	t.Helper()
	return startRunExe(t, os.Args[0], nil, args...)
}

// startRunExe is startRun of the tcpsentry binary exe, started with attr.
func startRunExe(t *testing.T, exe string, attr *syscall.SysProcAttr, args ...string) *sensorProc {
	t.Helper()
	if !slices.Contains(args, "--nats") {
		args = append([]string{"--nats", "off"}, args...) // events on stdout
	}
	if !slices.Contains(args, "--metrics-addr") {
		args = append([]string{"--metrics-addr", "off"}, args...) // 9717 may be taken
	}
	if !slices.Contains(args, "--log-format") {
		args = append([]string{"--log-format", "text"}, args...) // what the tests parse; stderr is a pipe
	}
	return startProc(t, append([]string{exe, "run"}, args...), attr)
}

// startProc is startRunExe of a command line that runs tcpsentry run.
func startProc(t *testing.T, argv []string, attr *syscall.SysProcAttr) *sensorProc {
	t.Helper()
	args := argv[1:]
	p := &sensorProc{cmd: exec.Command(argv[0], args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), asCommand+"=1")
	p.cmd.SysProcAttr = attr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errp, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	ready := make(chan bool, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.Write(sc.Bytes())
			p.stdout.WriteByte('\n')
			p.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(errp)
		said := false
		for sc.Scan() {
			p.mu.Lock()
			p.stderr.Write(sc.Bytes())
			p.stderr.WriteByte('\n')
			p.mu.Unlock()
			if line := sc.Text(); !said && (strings.HasPrefix(line, "tcpsentry: capturing interfaces=") || strings.HasPrefix(line, "{") && strings.Contains(line, `"msg":"capturing"`)) {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
	}()
	go func() {
		wg.Wait()
		_ = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-p.done
			t.Fatalf("tcpsentry run %s: exited before capturing (%v):\n%s", strings.Join(args, " "), p.cmd.ProcessState, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpsentry run: not capturing after 10 s:\n%s", p.Stderr())
	}
	return p
}

func (p *sensorProc) Stdout() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.stdout.Bytes())
}

func (p *sensorProc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitOutput waits up to 10 s for stdout to contain s.
func (p *sensorProc) waitOutput(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if bytes.Contains(p.Stdout(), []byte(s)) {
			return true
		}
	}
	return false
}

// stop sends sig and waits for the exit; it returns the exit code.
func (p *sensorProc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpsentry run still running 10 s after %v:\n%s", sig, p.Stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		netlab.Unavailable(t, "live capture needs root (CAP_NET_RAW); running as uid %d", os.Geteuid())
	}
}

// TestRunLoopbackRefused is the README's first step: `tcpsentry run -i lo`
// reports a connection refused on loopback, made as a user would make it,
// as soon as it happens, and stops cleanly on SIGINT with a summary.
func TestRunLoopbackRefused(t *testing.T) {
	needRoot(t)
	p := startRun(t, "-i", "lo", "--workers", "2")
	if out, err := exec.Command("bash", "-c", "echo > /dev/tcp/127.0.0.1/7211").CombinedOutput(); err == nil {
		t.Fatalf("port 7211 accepted a connection (%s): something listens there", out)
	}
	// Before the stop: events are live, not written at exit.
	if !p.waitOutput(`"action":"connection_refused"`) {
		t.Fatalf("no connection_refused event within 10 s; stdout:\n%s\nstderr:\n%s", p.Stdout(), p.Stderr())
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Stderr())
	}
	var hit []string
	for _, e := range parseEvents(t, p.Stdout()) {
		if strings.Contains(e, ":7211 ") {
			hit = append(hit, e)
		}
	}
	if len(hit) != 1 || !strings.HasPrefix(hit[0], "connection_refused/no_listener 127.0.0.1:") {
		t.Fatalf("events about port 7211: %q", hit)
	}
	errs := p.Stderr()
	for _, want := range []string{"tcpsentry run -i lo\n", "  kernel    lo: ", " 0 dropped", "connection_refused"} {
		if !strings.Contains(errs, want) {
			t.Errorf("summary lacks %q:\n%s", want, errs)
		}
	}
}

// TestRunErrors checks the one-line errors of the run command.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "tcpsentry: run needs an interface: -i IFACE (interfaces here: lo"},
		{[]string{"-i", "nosuch0"}, 1, `tcpsentry: no interface "nosuch0" (interfaces here: lo`},
		{[]string{"-i", "lo", "extra"}, 2, `tcpsentry: run takes no arguments (got "extra"); a filter goes in --filter`},
		{[]string{"-i", "lo", "--cpus", "9999"}, 2, "tcpsentry: --cpus: CPU 9999 is not available to this process (available: "},
		{[]string{"-i", "lo", "--cpus", "x"}, 2, `invalid value "x" for flag -cpus: "x" is not a CPU list (say 0-3,6)`},
		{[]string{"-i", "lo", "--filter", "tcp port"}, 2, `invalid value "tcp port" for flag -filter: unexpected end of expression after "port"`},
		{[]string{"-i", "lo", "--filter", "gateway x"}, 2, `invalid value "gateway x" for flag -filter: "gateway" at column 1 is not supported by tcpsentry's filter compiler (supported: `},
		{[]string{"-i", "lo", "--ring-block-size", "3000"}, 2, `invalid value "3000" for flag -ring-block-size: must be a power of two`},
		{[]string{"-i", "lo", "--ring-block-size", "1G", "--ring-blocks", "100000"}, 1, "is more than half of the available memory"},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"run"}, tc.args...), &out, &errb)
		first, _, _ := strings.Cut(errb.String(), "\n")
		if code != tc.code || !strings.HasPrefix(first, tc.want) && !strings.Contains(first, tc.want) {
			t.Errorf("run %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

// TestRunWithoutCapability checks the error a user without CAP_NET_RAW
// gets: it names the capability and how to grant it.
func TestRunWithoutCapability(t *testing.T) {
	needRoot(t)
	// A copy of this binary that user nobody may run: the build
	// directory is private.
	dir, err := os.MkdirTemp("", "tcpsentry-nocap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe := filepath.Join(dir, "tcpsentry")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "run", "-i", "lo")
	cmd.Env = append(os.Environ(), asCommand+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	want := "tcpsentry: capturing needs the CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode): run as root, or grant them with 'setcap cap_net_raw,cap_net_admin+ep "
	if !strings.HasPrefix(string(out), want) || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("as nobody:\n%s\nwant one line starting %q", out, want)
	}
}

// TestRunScenariosLive plays two stories of the scenario library on real
// kernels in namespaces while `tcpsentry run` captures, and checks that
// the live events are exactly the expected ones: a TCP_DEFER_ACCEPT server
// and late clients (synack_retransmit_after_ack), and connections refused
// on a namespace's loopback.
func TestRunScenariosLive(t *testing.T) {
	if testing.Short() {
		t.Skip("plays kernel scenarios in real time (about 15 s)")
	}
	if err := netlab.Check(); err != nil {
		netlab.Unavailable(t, "%v", err)
	}
	for _, sc := range netlab.Scenarios {
		if sc.File != "defer_accept.pcap" && sc.File != "refused_lo.pcap" {
			continue
		}
		t.Run(sc.File, func(t *testing.T) {
			var p *sensorProc
			netlab.RunScenario(t, sc, func(lab *netlab.Lab) func() {
				args := []string{"--netns", lab.NS(sc.Side), "-i", sc.Iface, "--workers", "2", "--sensor", "live-test"}
				if sc.Filter != "" {
					args = append(args, "--filter", sc.Filter)
				}
				p = startRun(t, args...)
				return func() {
					if code := p.stop(t, syscall.SIGTERM); code != 0 {
						t.Errorf("exit %d after SIGTERM:\n%s", code, p.Stderr())
					}
				}
			})
			got := parseEvents(t, p.Stdout())
			want := expected(sc)
			if !sameEvents(reportsAnyPort(got), reportsAnyPort(want)) {
				t.Errorf("live events\n%s\nwant\n%s\nsummary:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), p.Stderr())
			}
			if !strings.Contains(p.Stderr(), " 0 dropped") {
				t.Errorf("summary:\n%s", p.Stderr())
			}
		})
	}
}

// TestRunTimersFireOnQuietLink checks that a handshake timer fires live on
// a link that has gone quiet: one SYN to a port behind DROP, never
// retransmitted, and nothing after it. Only the workers' idle clock (the
// ring's block timeout) can bring the 3 s timer due; the event must come
// before the sensor is stopped.
func TestRunTimersFireOnQuietLink(t *testing.T) {
	if err := netlab.Check(); err != nil {
		netlab.Unavailable(t, "%v", err)
	}
	lab := netlab.New(t)
	lab.Drop(9090)
	p := startRun(t, "--netns", lab.NS(netlab.Server), "-i", netlab.Iface, "--workers", "2")
	to := netip.AddrPortFrom(netlab.ServerV4, 9090)
	r := lab.MustConnect(netlab.Dial{To: to, From: 41010, UserTimeout: 300 * time.Millisecond})[0]
	if r.Connected {
		t.Fatalf("dial %v: %+v", to, r)
	}
	if !p.waitOutput(`"action":"syn_unanswered"`) {
		t.Fatalf("no syn_unanswered event within 10 s of a lone SYN; stdout:\n%s\nstderr:\n%s", p.Stdout(), p.Stderr())
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Stderr())
	}
	got := parseEvents(t, p.Stdout())
	if want := "syn_unanswered/silent_drop 10.213.0.1:41010 -> 10.213.0.2:9090 x1"; len(got) != 1 || got[0] != want {
		t.Fatalf("events %q; want [%s]", got, want)
	}
}

// TestRunFilter checks that --filter runs in the kernel: a refused
// connection to a port the filter excludes is neither reported nor counted
// by the kernel, one to the port it keeps is.
func TestRunFilter(t *testing.T) {
	needRoot(t)
	p := startRun(t, "-i", "lo", "--workers", "2", "--filter", "tcp port 7212")
	if !strings.Contains(p.Stderr(), `tcpsentry: capture filter, run in the kernel filter="tcp port 7212" bpf_instructions=`) {
		t.Errorf("start lines:\n%s", p.Stderr())
	}
	for _, port := range []string{"7211", "7212"} {
		if err := exec.Command("bash", "-c", "echo > /dev/tcp/127.0.0.1/"+port).Run(); err == nil {
			t.Fatalf("port %s accepted a connection", port)
		}
	}
	if !p.waitOutput(`"port":7212`) {
		t.Fatalf("no event about port 7212; stdout:\n%s", p.Stdout())
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Stderr())
	}
	evs := parseEvents(t, p.Stdout())
	if len(evs) != 1 || !strings.HasPrefix(evs[0], "connection_refused/no_listener 127.0.0.1:") || !strings.Contains(evs[0], " -> 127.0.0.1:7212 ") {
		t.Fatalf("events %q; want the refusal on 7212 only", evs)
	}
	// SYN and RST on 7212; 7211's never reached the socket.
	if !strings.Contains(p.Stderr(), "  kernel    lo: 2 packets, 0 dropped") {
		t.Fatalf("summary:\n%s", p.Stderr())
	}
}
