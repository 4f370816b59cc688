//go:build linux

// Package peers runs the tools a TCP analyst would reach for instead of
// tcpsentry on the same pcap file, and measures them: what they print
// (lines of findings), wall time, CPU and peak memory. Each runs directly
// (no shell) with its stdout counted as it streams, so files of tens of
// millions of packets cost no memory here.
package peers

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Result is one run of a peer tool.
type Result struct {
	Tool    string        // "tshark", "tcpdump", "tcptrace", "argus"
	Version string        // first line of `tool --version`/`-v` output, trimmed
	Command string        // the exact command line run, shell-quoted, file path as given
	Lines   int           // lines the tool wrote to stdout (its findings)
	Took    time.Duration // wall time of the run
	CPU     time.Duration // user+sys CPU of the child (from ProcessState)
	MaxRSS  int64         // bytes, from ProcessState's rusage
	stderr  string        // the last line the tool wrote to stderr
}

// packages names the Debian package of each tool, for the reason
// Available gives.
var packages = map[string]string{"tshark": "tshark", "tcpdump": "tcpdump", "tcptrace": "tcptrace", "argus": "argus-server", "ra": "argus-client"}

// alsoNeeds names the other programs a peer's run calls.
var alsoNeeds = map[string][]string{"argus": {"ra"}} // ra counts argus's records

// Available says whether tool is on PATH (exec.LookPath), and the
// programs its run also calls, with a one-line reason when not.
func Available(tool string) (bool, string) {
	for _, t := range append([]string{tool}, alsoNeeds[tool]...) {
		if _, err := exec.LookPath(t); err != nil {
			if pkg, ok := packages[t]; ok {
				return false, fmt.Sprintf("%s is not installed (Debian package %s: apt-get install %s)", t, pkg, pkg)
			}
			return false, err.Error()
		}
	}
	return true, ""
}

// Tshark runs Wireshark's TCP analysis and prints the packets it flags
// (retransmissions, duplicate ACKs, zero windows, ...) and every RST:
//
//	tshark -n -r FILE -o tcp.analyze_sequence_numbers:TRUE -Y 'tcp.analysis.flags || tcp.flags.reset==1'
//
// tcp.analysis.flags also marks benign notes (window updates, keep-alives),
// so clean traffic prints lines too. Not -Q: it would suppress the packet
// lines we count. HOME and
// XDG_CONFIG_HOME point at an empty temporary directory, so that no
// user's profile changes the analysis and an unwritable HOME does no
// harm; the directory is removed afterwards.
func Tshark(ctx context.Context, file string) (Result, error) {
	home, err := os.MkdirTemp("", "peers-tshark-")
	if err != nil {
		return Result{Tool: "tshark"}, fmt.Errorf("tshark on %s: %w", file, err)
	}
	defer os.RemoveAll(home)
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home+"/.config")
	return run(ctx, "tshark", "--version", env, file,
		"-n", "-r", file, "-o", "tcp.analyze_sequence_numbers:TRUE",
		"-Y", "tcp.analysis.flags || tcp.flags.reset==1")
}

// Tcpdump prints every packet with RST set:
//
//	tcpdump -n -r FILE 'tcp[tcpflags] & (tcp-rst) != 0'
//
// libpcap compiles tcp[] for IPv4 only, and an untagged offset: IPv6 and
// 802.1Q-tagged RSTs do not match. That is the peer as people run it.
// Nor does libpcap read gzipped files (tshark and tcptrace do): give it
// the file gunzipped.
func Tcpdump(ctx context.Context, file string) (Result, error) {
	return run(ctx, "tcpdump", "--version", nil, file,
		"-n", "-r", file, "tcp[tcpflags] & (tcp-rst) != 0")
}

// Tcptrace summarises every connection (tcptrace -n FILE): a banner and
// totals (a handful of lines), then one line per connection.
func Tcptrace(ctx context.Context, file string) (Result, error) {
	return run(ctx, "tcptrace", "-v", nil, file, "-n", file)
}

// Argus runs the Argus flow monitor over the file, as a network team
// keeps a record of every connection with its TCP state (FIN, RST, REQ
// for a SYN left unanswered, CON, ...) but no cause. Timed:
//
//	argus -X -r FILE -w flows.argus
//
// -X leaves out /etc/argus.conf, so that a site's settings change
// nothing. Then, not timed, the Argus client counts its TCP records, a
// line each (Lines): ra -n -L -1 -r flows.argus - tcp. flows.argus is in
// a temporary directory, removed afterwards. (On a machine with systemd,
// installing argus-server also starts its capture daemon, argus.service;
// bench-deps and CI disable it.)
func Argus(ctx context.Context, file string) (Result, error) {
	res := Result{Tool: "argus"}
	dir, err := os.MkdirTemp("", "peers-argus-")
	if err != nil {
		return res, fmt.Errorf("argus on %s: %w", file, err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "flows.argus")
	if res, err = run(ctx, "argus", "-h", nil, file, "-X", "-r", file, "-w", out); err != nil {
		return res, err
	}
	// argus exits 0 when it cannot read its input, and says why on
	// stderr: a missing file writes no output, an unknown format an empty
	// one.
	if _, err := os.Stat(out); err != nil || strings.Contains(res.stderr, "ArgusError") || strings.Contains(res.stderr, "pcap_open_offline") {
		return res, fmt.Errorf("argus on %s: %s", file, cmp.Or(res.stderr, "it wrote no output"))
	}
	count := []string{"-n", "-L", "-1", "-r", out, "-", "tcp"}
	res.Command = quoteCommand("argus", []string{"-X", "-r", file, "-w", "flows.argus"}) + "; " +
		strings.ReplaceAll(quoteCommand("ra", count), out, "flows.argus")
	var lines lineCounter
	errb := &tail{max: stderrTail}
	cmd := command(ctx, "ra", nil, count...)
	cmd.Stdout, cmd.Stderr = &lines, errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if line := errb.lastLine(); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
		return res, fmt.Errorf("argus on %s: counting its records with ra: %w", file, err)
	}
	res.Lines = lines.lines()
	return res, nil
}

// stderrTail is how much of a tool's stderr is kept for its error.
const stderrTail = 4 << 10

// run runs tool with args (env nil: ours) after asking its version; file
// is the capture among args, for errors.
func run(ctx context.Context, tool, versionFlag string, env []string, file string, args ...string) (Result, error) {
	res := Result{Tool: tool, Command: quoteCommand(tool, args)}
	fail := func(err error) (Result, error) {
		return res, fmt.Errorf("%s on %s: %w", tool, file, err)
	}

	v, err := version(ctx, tool, versionFlag, env)
	if err != nil {
		return fail(err)
	}
	res.Version = v

	var out lineCounter
	errb := &tail{max: stderrTail}
	cmd := command(ctx, tool, env, args...)
	cmd.Stdout, cmd.Stderr = &out, errb
	start := time.Now()
	err = cmd.Run()
	res.Took = time.Since(start)
	res.Lines = out.lines()
	res.stderr = errb.lastLine()
	if ps := cmd.ProcessState; ps != nil {
		res.CPU = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			res.MaxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			// Killed by us: the exit status says "signal: killed",
			// the context says why.
			return fail(ctx.Err())
		}
		if line := errb.lastLine(); line != "" {
			return fail(fmt.Errorf("%w: %s", err, line))
		}
		return fail(err)
	}
	return res, nil
}

// command is exec.CommandContext with the child in a process group of its
// own, killed whole on cancellation, so that nothing it might start
// outlives it; WaitDelay bounds the wait for pipes such a leftover could
// hold open. (The group also keeps a terminal's Ctrl-C from the child:
// the harness cancels its context instead.)
func command(ctx context.Context, tool string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != syscall.ESRCH {
			return err
		}
		return os.ErrProcessDone
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// version runs `tool flag` and returns the first non-empty line of its
// stdout, or of its stderr when stdout has none (tcptrace -v writes
// there; tshark adds its running-as-root warning to stderr). A tool with
// no version flag prints its version atop its usage and fails (argus -h
// exits 255): a failure still gives the version when that line names the
// tool and a version.
func version(ctx context.Context, tool, flag string, env []string) (string, error) {
	var out, errb bytes.Buffer
	cmd := command(ctx, tool, env, flag)
	cmd.Stdout, cmd.Stderr = &out, &errb
	runErr := cmd.Run()
	if runErr != nil && ctx.Err() != nil {
		return "", ctx.Err()
	}
	for _, b := range []*bytes.Buffer{&out, &errb} {
		for line := range strings.Lines(b.String()) {
			if line = strings.TrimSpace(line); line != "" {
				l := strings.ToLower(line)
				if runErr != nil && (!strings.Contains(l, tool) || !strings.Contains(l, "version")) {
					return "", fmt.Errorf("%s %s: %w", tool, flag, runErr)
				}
				return line, nil
			}
		}
	}
	if runErr != nil {
		return "", fmt.Errorf("%s %s: %w", tool, flag, runErr)
	}
	return "", fmt.Errorf("%s %s printed nothing", tool, flag)
}

// lineCounter counts the lines written to it without keeping them; a last
// line without a newline counts too.
type lineCounter struct {
	n       int
	partial bool // bytes after the last newline
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		c.n += bytes.Count(p, []byte{'\n'})
		c.partial = p[len(p)-1] != '\n'
	}
	return len(p), nil
}

func (c *lineCounter) lines() int {
	if c.partial {
		return c.n + 1
	}
	return c.n
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line kept.
func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// quoteCommand renders a command line a POSIX shell would run as given:
// words with anything but safe characters in single quotes.
func quoteCommand(tool string, args []string) string {
	words := []string{shellQuote(tool)}
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=+,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
