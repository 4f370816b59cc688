package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/privdrop"
)

func TestPlanPrivileges(t *testing.T) {
	users := map[string]privdrop.User{
		"root":      {Name: "root"},
		"tcpsentry": {Name: "tcpsentry", UID: 998, GID: 997},
		"nobody":    {Name: "nobody", UID: 65534, GID: 65534},
	}
	with := func(names ...string) func(string) (privdrop.User, error) {
		return func(n string) (privdrop.User, error) {
			for _, m := range names {
				if m == n {
					return users[n], nil
				}
			}
			return privdrop.User{}, privdrop.ErrNoUser
		}
	}
	all := with("root", "tcpsentry", "nobody")
	for _, tc := range []struct {
		name   string
		flag   userFlag
		euid   int
		lookup func(string) (privdrop.User, error)
		to     string // user switched to, "" none
		warn   string // in the warning, "" none
		err    string
	}{
		{"root, default user exists", userFlag{}, 0, all, "tcpsentry", "", ""},
		{"root, no default user", userFlag{}, 0, with("root", "nobody"), "", "running as root: there is no user tcpsentry", ""},
		{"root, --user nobody", userFlag{"nobody", true}, 0, all, "nobody", "", ""},
		{"root, --user ''", userFlag{"", true}, 0, all, "", "", ""},
		{"root, --user root", userFlag{"root", true}, 0, with("root"), "", "", ""},
		{"root, --user unknown", userFlag{"nosuch", true}, 0, all, "", "", "--user nosuch: no such user"},
		{"non-root, default", userFlag{}, 1000, all, "", "", ""},
		{"non-root, --user itself", userFlag{"tcpsentry", true}, 998, all, "", "", ""},
		{"non-root, --user other", userFlag{"nobody", true}, 998, all, "", "", "--user nobody: switching users needs root, and tcpsentry runs as uid 998"},
	} {
		p, err := planPrivileges(tc.flag, tc.euid, tc.lookup)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		to := ""
		if p.to != nil {
			to = p.to.Name
		}
		if to != tc.to || (tc.warn == "") != (p.warn == "") || !strings.Contains(p.warn, tc.warn) {
			t.Errorf("%s: switch to %q, warning %q; want %q, %q", tc.name, to, p.warn, tc.to, tc.warn)
		}
	}
}

// TestRunUnknownUser: a --user that does not exist is one line, before
// any socket is opened.
func TestRunUnknownUser(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"run", "-i", "lo", "--nats", "off", "--user", "tcpsentry-no-such-user"}, &out, &errb)
	if want := "tcpsentry: --user tcpsentry-no-such-user: no such user\n"; code != 1 || errb.String() != want {
		t.Fatalf("exit %d, stderr %q; want 1, %q", code, errb.String(), want)
	}
}

// buildStatic builds tcpsentry as make install does (CGO_ENABLED=0) into
// a new directory every user may read.
func buildStatic(t *testing.T, extra ...string) string {
	t.Helper()
	dir := worldReadableDir(t)
	exe := filepath.Join(dir, "tcpsentry")
	cmd := exec.Command("go", append(append([]string{"build", "-o", exe}, extra...), ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// worldReadableDir is a temporary directory other users can enter
// (t.TempDir's parent is private).
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tcpsentry-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// threadCreds reads the Uid, Gid, Groups and capability lines of every
// thread of pid.
func threadCreds(t *testing.T, pid int) map[string]map[string]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	out := map[string]map[string]string{}
	for _, path := range tasks {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended
		}
		m := map[string]string{}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			switch k {
			case "Uid", "Gid", "Groups", "CapEff", "CapPrm", "CapAmb", "CapInh":
				if ok {
					m[k] = strings.Join(strings.Fields(v), " ")
				}
			}
		}
		out[filepath.Base(filepath.Dir(path))] = m
	}
	return out
}

// checkThreads checks that every thread of pid runs as uid/gid with only
// gid as group and the effective capabilities capEff.
func checkThreads(t *testing.T, pid, uid, gid int, capEff string) {
	t.Helper()
	threads := threadCreds(t, pid)
	if len(threads) < 3 {
		t.Errorf("only %d threads: the workers are not running?", len(threads))
	}
	u, g := strconv.Itoa(uid), strconv.Itoa(gid)
	want := map[string]string{
		"Uid": strings.Join([]string{u, u, u, u}, " "), "Gid": strings.Join([]string{g, g, g, g}, " "),
		"Groups": g, "CapEff": capEff,
	}
	if capEff == "0000000000000000" {
		want["CapPrm"], want["CapAmb"], want["CapInh"] = capEff, capEff, capEff
	}
	for tid, m := range threads {
		for k, v := range want {
			if m[k] != v {
				t.Errorf("thread %s: %s %q, want %q", tid, k, m[k], v)
			}
		}
	}
}

// refuse makes a connection attempt to a closed loopback port.
func refuse(t *testing.T, port int) {
	t.Helper()
	if out, err := exec.Command("bash", "-c", fmt.Sprintf("echo > /dev/tcp/127.0.0.1/%d", port)).CombinedOutput(); err == nil {
		t.Fatalf("port %d accepted a connection (%s): something listens there", port, out)
	}
}

// refusedEvent waits for the connection_refused event about port and
// returns its observer.version.
func refusedEvent(t *testing.T, p *sensorProc, port int) string {
	t.Helper()
	if !p.waitOutput(fmt.Sprintf(`"port":%d`, port)) {
		t.Fatalf("no event about port %d within 10 s; stdout:\n%s\nstderr:\n%s", port, p.Stdout(), p.Stderr())
	}
	for _, line := range strings.Split(string(p.Stdout()), "\n") {
		var e struct {
			Event    struct{ Action string }
			Observer struct{ Version string }
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Event.Action == "connection_refused" && strings.Contains(line, fmt.Sprintf(`"port":%d`, port)) {
			return e.Observer.Version
		}
	}
	t.Fatalf("no connection_refused event about port %d:\n%s", port, p.Stdout())
	return ""
}

// stopClean sends SIGTERM and checks exit 0 and the summary.
func stopClean(t *testing.T, p *sensorProc) {
	t.Helper()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.Stderr())
	}
	if !strings.Contains(p.Stderr(), "tcpsentry run -i lo\n") || !strings.Contains(p.Stderr(), "  kernel    lo: ") {
		t.Fatalf("no summary:\n%s", p.Stderr())
	}
}

// TestRunDropsToUser runs `tcpsentry run -i lo --user nobody` as root, as
// a static binary (capabilities cleared with AllThreadsSyscall) and as
// this cgo-linked test binary (the C library switches the threads), and
// checks from /proc that every thread runs as nobody without
// capabilities while capture goes on. With the embedded broker, the store
// (a new one, and one left by a run as root) is handed to nobody first.
func TestRunDropsToUser(t *testing.T) {
	needRoot(t)
	nobody, err := privdrop.Lookup("nobody")
	if err != nil {
		netlab.Unavailable(t, "user nobody: %v", err)
	}
	static := buildStatic(t)
	ver, err := exec.Command(static, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	wantVersion := strings.TrimPrefix(strings.SplitN(string(ver), "\n", 2)[0], "tcpsentry ")
	for i, tc := range []struct{ name, exe string }{{"static", static}, {"test-binary", os.Args[0]}} {
		t.Run(tc.name, func(t *testing.T) {
			port := 7221 + i
			p := startRunExe(t, tc.exe, nil, "-i", "lo", "--workers", "2", "--user", "nobody", "--filter", fmt.Sprintf("tcp port %d", port))
			if want := fmt.Sprintf("tcpsentry: sockets open; now running as another user, without capabilities user=nobody uid=%d gid=%d\n", nobody.UID, nobody.GID); !strings.Contains(p.Stderr(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
			}
			refuse(t, port)
			v := refusedEvent(t, p, port)
			if tc.exe == static && v != wantVersion {
				t.Errorf("observer.version %q, --version says %q", v, wantVersion)
			}
			checkThreads(t, p.cmd.Process.Pid, nobody.UID, nobody.GID, "0000000000000000")
			stopClean(t, p)
		})
	}
	t.Run("embedded-broker", func(t *testing.T) {
		dir := worldReadableDir(t)
		// A store left by a run as root, and one that does not exist yet.
		old := filepath.Join(dir, "old")
		if err := os.MkdirAll(filepath.Join(old, "jetstream", "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(old, "jetstream", "x", "f"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		for i, store := range []string{old, filepath.Join(dir, "new", "store")} {
			port := 7223 + i
			p := startRunExe(t, static, nil, "-i", "lo", "--workers", "2", "--user", "nobody", "--filter", fmt.Sprintf("tcp port %d", port),
				"--nats", "embedded", "--broker-listen", "127.0.0.1:0", "--data-dir", store, "--events-file", "-")
			refuse(t, port)
			refusedEvent(t, p, port)
			checkThreads(t, p.cmd.Process.Pid, nobody.UID, nobody.GID, "0000000000000000")
			stopClean(t, p)
			if !strings.Contains(p.Stderr(), "  nats      1 published") {
				t.Errorf("%s: the broker did not take the event:\n%s", store, p.Stderr())
			}
			n := 0
			err := filepath.WalkDir(store, func(path string, _ os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				n++
				if uid := owner(path); uid != nobody.UID {
					return fmt.Errorf("%s is uid %d's", path, uid)
				}
				return nil
			})
			if err != nil || n < 3 {
				t.Errorf("%s: %v (%d files)", store, err, n)
			}
		}
		// Something that is not a store is not chowned: one clear line.
		foreign := filepath.Join(dir, "foreign")
		if err := os.MkdirAll(filepath.Join(foreign, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(static, "run", "-i", "lo", "--metrics-addr", "off", "--user", "nobody", "--broker-listen", "127.0.0.1:0", "--data-dir", foreign).CombinedOutput()
		want := fmt.Sprintf("tcpsentry: --data-dir %s holds more than a tcpsentry store and is not user nobody's, who runs the broker once the sockets are open: chown -R nobody %s", foreign, foreign)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.HasPrefix(string(out), want) {
			t.Errorf("foreign data dir: %v\n%s\nwant %s", err, out, want)
		}
	})
}

// TestRunFileCapabilities runs a static binary with file capabilities
// (setcap cap_net_raw,cap_net_admin+ep) as user nobody: it captures, and
// clears its capabilities on every thread once the sockets are open.
// Without them it says which capability is missing.
func TestRunFileCapabilities(t *testing.T) {
	needRoot(t)
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		netlab.Unavailable(t, "setcap not found (Debian package libcap2-bin)")
	}
	nobody, err := privdrop.Lookup("nobody")
	if err != nil {
		netlab.Unavailable(t, "user nobody: %v", err)
	}
	exe := buildStatic(t)
	var st syscall.Statfs_t
	if err := syscall.Statfs(exe, &st); err == nil && st.Flags&0x2 != 0 { // ST_NOSUID: file capabilities are ignored
		netlab.Unavailable(t, "%s is on a nosuid file system", exe)
	}
	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nobody.UID), Gid: uint32(nobody.GID), Groups: []uint32{uint32(nobody.GID)}}}

	cmd := exec.Command(exe, "run", "-i", "lo", "--nats", "off")
	cmd.SysProcAttr = asNobody
	out, err := cmd.CombinedOutput()
	want := "tcpsentry: capturing needs the CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode): run as root, or grant them with 'setcap cap_net_raw,cap_net_admin+ep " + exe + "'\n"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || string(out) != want {
		t.Fatalf("without capabilities: %v\n%s\nwant %s", err, out, want)
	}

	if out, err := exec.Command(setcap, "cap_net_raw,cap_net_admin+ep", exe).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	const port = 7225
	p := startRunExe(t, exe, asNobody, "-i", "lo", "--workers", "2", "--filter", fmt.Sprintf("tcp port %d", port))
	if strings.Contains(p.Stderr(), "warning") {
		t.Errorf("warnings:\n%s", p.Stderr())
	}
	refuse(t, port)
	refusedEvent(t, p, port)
	checkThreads(t, p.cmd.Process.Pid, nobody.UID, nobody.GID, "0000000000000000")
	stopClean(t, p)
}

// TestRunFileCapabilitiesCgo shows the limit of a binary linked with cgo:
// run with file capabilities as a user, it cannot clear them on every
// thread, so it keeps them and says so in one warning.
func TestRunFileCapabilitiesCgo(t *testing.T) {
	needRoot(t)
	setcap, err := exec.LookPath("setcap")
	if err != nil {
		netlab.Unavailable(t, "setcap not found (Debian package libcap2-bin)")
	}
	bi, err := buildinfo.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	cgo := false
	for _, s := range bi.Settings {
		cgo = cgo || s.Key == "CGO_ENABLED" && s.Value == "1"
	}
	if !cgo {
		t.Skip("this test binary is not linked with cgo")
	}
	nobody, err := privdrop.Lookup("nobody")
	if err != nil {
		netlab.Unavailable(t, "user nobody: %v", err)
	}
	exe := filepath.Join(worldReadableDir(t), "tcpsentry.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(setcap, "cap_net_raw,cap_net_admin+ep", exe).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	const port = 7226
	p := startRunExe(t, exe, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nobody.UID), Gid: uint32(nobody.GID), Groups: []uint32{uint32(nobody.GID)}}},
		"-i", "lo", "--workers", "2", "--filter", fmt.Sprintf("tcp port %d", port))
	if want := "tcpsentry: warning: keeping the capabilities after the sockets are open error=" + strconv.Quote(privdrop.ErrCgo.Error()) + "\n"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
	refuse(t, port)
	refusedEvent(t, p, port)
	checkThreads(t, p.cmd.Process.Pid, nobody.UID, nobody.GID, "0000000000003000") // CAP_NET_ADMIN (12), CAP_NET_RAW (13)
	stopClean(t, p)
}
