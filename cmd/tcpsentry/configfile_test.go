package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
)

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func defaultFile(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"config", "default"}, &out, &errb); code != 0 {
		t.Fatalf("config default: exit %d: %s", code, errb.String())
	}
	return out.String()
}

// TestConfigDefaultRoundTrip: 'config default' names every flag of run
// and every event type, and 'config check' accepts it.
func TestConfigDefaultRoundTrip(t *testing.T) {
	text := defaultFile(t)
	path := writeFile(t, "tcpsentry.yaml", text)
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check", path}, &out, &errb); code != 0 || out.String() != "ok\n" {
		t.Fatalf("config check of the default file: exit %d, %q %q", code, out.String(), errb.String())
	}
	newRunFlags(io.Discard).fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "config" {
			return
		}
		if !regexp.MustCompile(`(?m)^ *(# )?` + regexp.QuoteMeta(fl.Name) + `: `).MatchString(text) {
			t.Errorf("the default file has no key %s", fl.Name)
		}
	})
	for ty := detectors.TypeNone + 1; ty < detectors.NumTypes; ty++ {
		if !strings.Contains(text, "\n  "+ty.String()+":\n    enabled: true\n    severity: default  # "+ty.SeverityNote()+"\n") {
			t.Errorf("the default file has no entry for %s", ty)
		}
	}
}

// TestConfigDefaultIsDefaults: the default file changes no setting.
func TestConfigDefaultIsDefaults(t *testing.T) {
	path := writeFile(t, "tcpsentry.yaml", defaultFile(t))
	plain, _, _, ok := resolveRun([]string{"--config", "none"}, io.Discard)
	if !ok {
		t.Fatal("resolveRun failed")
	}
	var errb bytes.Buffer
	withFile, st, _, ok := resolveRun([]string{"--config", path}, &errb)
	if !ok {
		t.Fatal(errb.String())
	}
	if st.path != path {
		t.Errorf("settings from %q", st.path)
	}
	a, b := snapshot(plain.fs), snapshot(withFile.fs)
	for k, v := range a {
		if k != "config" && b[k] != v {
			t.Errorf("%s: %q with the default file, %q without", k, b[k], v)
		}
	}
	if plain.cfg.Detectors != withFile.cfg.Detectors || plain.cfg.Table != withFile.cfg.Table {
		t.Errorf("detectors %+v / %+v\ntable %+v / %+v", withFile.cfg.Detectors, plain.cfg.Detectors, withFile.cfg.Table, plain.cfg.Table)
	}
}

func TestConfigCheckErrors(t *testing.T) {
	bad := writeFile(t, "tcpsentry.yaml", "workers: 2\n\n# typo\nwrkers: 3\n")
	badValue := writeFile(t, "tcpsentry.yaml", "i: [eth1, lo]\nworkers: two\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"config", "check", bad}, bad + `:4: unknown key "wrkers"` + "\n"},
		{[]string{"config", "check", badValue}, badValue + `:2: workers: not a number: "two"` + "\n"},
		{[]string{"config", "check", "/nonexistent/x.yaml"}, "/nonexistent/x.yaml: no such file\n"},
		{[]string{"run", "-i", "lo", "--config", bad}, "tcpsentry: " + bad + `:4: unknown key "wrkers"` + "\n"},
		{[]string{"run", "-i", "lo", "--config", "/nonexistent/x.yaml"}, "tcpsentry: --config /nonexistent/x.yaml: no such file\n"},
		{[]string{"replay", "--config", badValue, "../../testdata/refused_rate.pcap"}, "tcpsentry: " + badValue + `:2: workers: not a number: "two"` + "\n"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || errb.String() != tc.want || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

// TestConfigBadValues: the values checked by their flag's Set, not at
// start, are named with their line by 'config check' and by run and
// replay before they open anything (run needs no root to say so).
func TestConfigBadValues(t *testing.T) {
	page := os.Getpagesize()
	for _, tc := range []struct{ setting, want string }{
		{"ring-block-size: 3000", "ring-block-size: must be a power of two between the page size (" + strconv.Itoa(page) + ") and 1 GiB, not 3000"},
		{"ring-block-size: 1x", `ring-block-size: not a size: "1x" (say 65536, 64K or 1M)`},
		{"ring-blocks: 1", "ring-blocks: must be between 2 and 1048576, not 1"},
		{"ring-frame-size: 100", "ring-frame-size: must be a multiple of 16, at least 128 and at most the block size, not 100"},
		{"ring-timeout: 2m", "ring-timeout: must be between 1ms and 1m, not 2m"},
		{"events-buffer: 1", "events-buffer: must be between 2 and 100000000, not 1"},
		{"nats-mode: fast", `nats-mode: must be jetstream or core, not "fast"`},
		{"cpus: 0-x", `cpus: "0-x" is not a CPU list (say 0-3,6)`},
		{"filter: tcp port", `filter: unexpected end of expression after "port"`},
		{"sensor: a.b", `sensor: "a.b" cannot be a NATS subject token: use letters, digits, '-' or '_' (no '.', '*', '>' or spaces)`},
		{"nats: http://x", `nats: not a NATS server URL: "http://x": the scheme is nats, tls, ws or wss`},
		{"nats: nats://a:4222,nats://b:99999", `nats: not a NATS server URL: "nats://b:99999": bad port`},
		{"nats: ws://a,nats://b", `nats: mixes websocket (ws, wss) and plain (nats, tls) URLs, which the NATS client refuses: "ws://a,nats://b"`},
		{"metrics-addr: 9717", `metrics-addr: want host:port, e.g. 127.0.0.1:9717, or off, not "9717"`},
		{"broker-listen: localhost", `broker-listen: want host:port, e.g. 127.0.0.1:4222, not "localhost"`},
		// What no one flag can check, at the line of the one the file sets.
		{"ring-block-size: 4K\nring-frame-size: 8K", "ring-frame-size: must be at most the block size (ring-block-size 4096), not 8192"},
		{"ring-frame-size: 2M", "ring-frame-size: must be at most the block size (ring-block-size 1048576), not 2097152"},
	} {
		// The bad value is on line 3, the last on line 4.
		path := writeFile(t, "tcpsentry.yaml", "i: [lo]\n# the value under test\n"+tc.setting+"\n")
		line := path + ":" + strconv.Itoa(2+strings.Count(tc.setting, "\n")+1) + ": " + tc.want + "\n"
		for _, args := range [][]string{
			{"config", "check", path},
			// No such interface: were the value taken, run would stop
			// there rather than capture.
			{"run", "--config", path, "-i", "nosuch0", "--metrics-addr", "off", "--nats", "off"},
			{"replay", "--config", path, "../../testdata/demo.pcap"},
		} {
			want := line
			if args[0] != "config" {
				want = "tcpsentry: " + line
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 2 || errb.String() != want || out.Len() != 0 {
				t.Errorf("%s with %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", args[0], tc.setting, code, out.String(), errb.String(), want)
			}
		}
	}
}

// TestBadFlagValues: on the command line the same checks are the flag
// package's error, exit 2, before anything is opened.
func TestBadFlagValues(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the first line of stderr
	}{
		{[]string{"run", "--ring-block-size", "3000"}, `invalid value "3000" for flag -ring-block-size: must be a power of two between the page size (` + strconv.Itoa(os.Getpagesize()) + `) and 1 GiB, not 3000`},
		{[]string{"run", "--ring-frame-size", "2050"}, `invalid value "2050" for flag -ring-frame-size: must be a multiple of 16, at least 128 and at most the block size, not 2050`},
		{[]string{"run", "--snaplen", "40"}, `invalid value "40" for flag -snaplen: must be 0 (whole frames) or between 58 and 262144, not 40`},
		{[]string{"run", "--cpus", "x"}, `invalid value "x" for flag -cpus: "x" is not a CPU list (say 0-3,6)`},
		{[]string{"run", "--filter", "tcp port"}, `invalid value "tcp port" for flag -filter: unexpected end of expression after "port"`},
		{[]string{"run", "--nats", "nats://a b"}, `invalid value "nats://a b" for flag -nats: not a NATS server URL: "nats://a b" (say nats://HOST:4222, several comma-separated; or embedded or off)`},
		{[]string{"replay", "--events-buffer", "1", "x.pcap"}, `invalid value "1" for flag -events-buffer: must be between 2 and 100000000, not 1`},
		{[]string{"replay", "--sensor", "a b", "x.pcap"}, `invalid value "a b" for flag -sensor: "a b" cannot be a NATS subject token: use letters, digits, '-' or '_' (no '.', '*', '>' or spaces)`},
		{[]string{"events", "--nats", "tcp://x"}, `invalid value "tcp://x" for flag -nats: not a NATS server URL: "tcp://x": the scheme is nats, tls, ws or wss`},
		{[]string{"run", "--ring-block-size", "4K", "--ring-frame-size", "8K"}, "tcpsentry: --ring-frame-size 8192 must be at most --ring-block-size 4096"},
	} {
		var out, errb bytes.Buffer
		args := tc.args
		switch args[0] {
		case "run":
			// As above: never a capture, should a value pass.
			args = append(args, "--config", "none", "-i", "nosuch0", "--metrics-addr", "off", "--nats", "off")
		case "replay":
			args = append(args, "--config", "none")
		}
		code := run(args, &out, &errb)
		first, _, _ := strings.Cut(errb.String(), "\n")
		if code != 2 || first != tc.want || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and first line %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

// TestReplayConfig: replay takes the detector settings of a file, under
// its own flags, and leaves the file's capture and event settings alone.
func TestReplayConfig(t *testing.T) {
	path := writeFile(t, "tcpsentry.yaml", `# a sensor's file
nats: nats://192.0.2.1:4222  # run's; replay must not publish there
workers: 64
detectors:
  connection_refused:
    enabled: false
  failed_connection_rate:
    severity: critical
    failed-connections: 100
`)
	const capture = "../../testdata/refused_rate.pcap"
	// The file's threshold: 20 refusals never reach 100.
	code, evs, stderr := replay(t, "--config", path, capture)
	if code != 0 || len(evs) != 0 {
		t.Fatalf("exit %d, events %q:\n%s", code, evs, stderr)
	}
	for _, want := range []string{"tcpsentry: settings from " + path + "\n", "20 connection_refused not written (disabled)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "64 worker(s)") {
		t.Errorf("replay took workers from the file:\n%s", stderr)
	}
	// The command line's wins.
	var out, errb bytes.Buffer
	code = run([]string{"replay", "--config", path, "--failed-connections", "5", "--workers", "2", capture}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 0 || len(lines) != 1 || !strings.Contains(lines[0], `"action":"failed_connection_rate"`) ||
		!strings.Contains(lines[0], `"severity":"critical"`) || !strings.Contains(lines[0], `"failures":5`) {
		t.Fatalf("exit %d, events:\n%s\n%s", code, out.String(), errb.String())
	}
}

// TestReloaderChanges: SIGHUP's reload applies the detector settings,
// says what changed, names the changes that need a restart, and keeps
// the settings in force when the file is bad.
func TestReloaderChanges(t *testing.T) {
	path := writeFile(t, "tcpsentry.yaml", "i: [lo]\nworkers: 2\n")
	args := []string{"--config", path, "--nats", "off"}
	rf, st, _, ok := resolveRun(args, io.Discard)
	if !ok {
		t.Fatal("resolveRun failed")
	}
	var log bytes.Buffer
	r := &reloader{args: args, st: st, cfg: rf.cfg.Detectors, to: &sensor.Reload{}, log: newLogger(logText, slog.LevelInfo, &log)}
	step := func(text, want string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		log.Reset()
		r.reload()
		if log.String() != want {
			t.Errorf("after %q:\n got %q\nwant %q", text, log.String(), want)
		}
	}
	step("i: [lo]\nworkers: 2\n", "tcpsentry: reloaded: no detector setting changed config="+path+"\n")
	step("i: [lo]\nworkers: 3\nfold: 2m\ndetectors:\n  failed_connection_rate:\n    failed-connections: 3\n  syn_unanswered: {enabled: false, severity: critical}\n",
		"tcpsentry: reloaded config="+path+` changed="failed-connections 10 -> 3, fold 1m -> 2m, syn_unanswered.enabled true -> false, syn_unanswered.severity default -> critical"`+"\n"+
			"tcpsentry: warning: reloaded: these changes need a restart and are not applied config="+path+` changes="workers 2 -> 3"`+"\n")
	want := rf.cfg.Detectors
	want.FailedConnections, want.Fold = 3, 2*time.Minute
	want.Disabled[detectors.TypeSynUnanswered], want.Severity[detectors.TypeSynUnanswered] = true, detectors.SeverityCritical
	if r.cfg != want {
		t.Errorf("in force %+v\nwant %+v", r.cfg, want)
	}
	step("i: [lo]\nworkers: 3\nwrkers: 1\n", "tcpsentry: error: reload failed, the settings in force stay error="+strconv.Quote(path+`:3: unknown key "wrkers"`)+"\n")
	if r.cfg != want {
		t.Errorf("a bad file changed the settings: %+v", r.cfg)
	}
	// The command line still wins: --nats off stays.
	step("i: [lo]\nworkers: 2\nnats: nats://192.0.2.1:4222\n", "tcpsentry: reloaded config="+path+` changed="failed-connections 3 -> 10, fold 2m -> 1m, syn_unanswered.enabled false -> true, syn_unanswered.severity critical -> default"`+"\n")
}

// TestRunSIGHUP: a running 'tcpsentry run -i lo' takes a new severity and
// switch for connection_refused on SIGHUP without a restart. Needs root.
func TestRunSIGHUP(t *testing.T) {
	needRoot(t)
	path := writeFile(t, "tcpsentry.yaml", "workers: 2\ndetectors:\n  failed_connection_rate:\n    enabled: false\n")
	p := startRun(t, "-i", "lo", "--config", path)
	if !strings.Contains(p.Stderr(), "tcpsentry: settings from a config file config="+path+"\n") {
		t.Errorf("start lines:\n%s", p.Stderr())
	}
	refuse := func(port string) {
		t.Helper()
		if err := exec.Command("bash", "-c", "echo > /dev/tcp/127.0.0.1/"+port).Run(); err == nil {
			t.Fatalf("port %s accepted a connection", port)
		}
		if !p.waitOutput(`"port":` + port) {
			t.Fatalf("no event about port %s; stdout:\n%s\nstderr:\n%s", port, p.Stdout(), p.Stderr())
		}
	}
	refuse("7213")
	if err := os.WriteFile(path, []byte("workers: 3\ndetectors:\n  connection_refused:\n    severity: critical\n  failed_connection_rate:\n    enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := "tcpsentry: reloaded config=" + path + ` changed="connection_refused.severity default -> critical"` + "\n"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Stderr(), want) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Stderr(), want) || !strings.Contains(p.Stderr(), "these changes need a restart and are not applied config="+path+` changes="workers 2 -> 3"`+"\n") {
		t.Fatalf("no reload line; stderr:\n%s", p.Stderr())
	}
	refuse("7214")
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.Stderr())
	}
	var sev []string
	for _, line := range strings.Split(strings.TrimSpace(string(p.Stdout())), "\n") {
		for _, port := range []string{"7213", "7214"} {
			if strings.Contains(line, `"port":`+port) {
				s := regexp.MustCompile(`"tcpsentry":\{"schema":1,"severity":"(\w+)"`).FindStringSubmatch(line)
				if s == nil {
					t.Fatalf("no severity in %s", line)
				}
				sev = append(sev, port+" "+s[1])
			}
		}
	}
	if strings.Join(sev, ", ") != "7213 notice, 7214 critical" {
		t.Fatalf("severities %q; want the refusal before the reload a notice, the one after critical", sev)
	}
}
