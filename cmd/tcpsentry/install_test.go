package main

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
)

const unitPath = "../../deploy/tcpsentry.service"

func TestBuildVersion(t *testing.T) {
	const rev = "4f2a9c1e3b7d8a6f5e4d3c2b1a0f9e8d7c6b5a49"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-11-22T10:00:00Z"}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"", nil, devVersion},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, devVersion},
		// go install ...@v0.2.0: the module version, no VCS stamp.
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, "v0.2.0"},
		// go build in a checkout: Go derives a pseudo-version.
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261122100000-4f2a9c1e3b7d+dirty"}, Settings: vcs("true")}, "v0.0.0-20261122100000-4f2a9c1e3b7d+dirty"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, devVersion + "+4f2a9c1e3b7d.dirty"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}, Settings: vcs("false")}, "v0.2.0+4f2a9c1e3b7d"},
		{"1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}, Settings: vcs("false")}, "1.2.3+4f2a9c1e3b7d"},
		{"1.2.3+build5", &debug.BuildInfo{Settings: vcs("true")}, "1.2.3+build5.4f2a9c1e3b7d.dirty"},
	} {
		if got := buildVersion(tc.ldflags, tc.bi); got != tc.want {
			t.Errorf("buildVersion(%q, %+v) = %q, want %q", tc.ldflags, tc.bi, got, tc.want)
		}
	}
}

// TestInstall runs make install into a temporary PREFIX and checks that
// the binary is static (no cgo, no interpreter, no shared libraries) and
// that --version names what go build stamped into it; then a build with
// -ldflags -X main.version, and make install-systemd into a DESTDIR.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tcpsentry")
	}
	if _, err := exec.LookPath("make"); err != nil {
		netlab.Unavailable(t, "make not found")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", "../..", "install", "PREFIX=/usr", "DESTDIR="+dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	exe := filepath.Join(dest, "usr", "bin", "tcpsentry")
	checkStatic(t, exe)
	bi, err := buildinfo.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if want := "tcpsentry " + buildVersion("", bi); lines[0] != want {
		t.Errorf("--version first line %q, want %q", lines[0], want)
	}
	// make install stamps the commit (-buildvcs=auto, over a GOFLAGS
	// that turns it off) when the tree is a git checkout.
	head, gitErr := exec.Command("git", "-C", "../..", "rev-parse", "HEAD").Output()
	rev, _, modified := vcsInfo(bi)
	switch {
	case gitErr == nil && rev != strings.TrimSpace(string(head)):
		t.Errorf("make install in a checkout at %s stamped commit %q", strings.TrimSpace(string(head)), rev)
	case rev != "":
		if !strings.Contains(string(out), "  commit "+rev) || modified != strings.Contains(string(out), "modified") {
			t.Errorf("--version does not name commit %s (modified %v):\n%s", rev, modified, out)
		}
	default:
		t.Logf("not a git checkout (%v): --version says %q", gitErr, lines[0])
	}
	if !strings.Contains(string(out), "CGO_ENABLED=0") {
		t.Errorf("--version:\n%s\nwant CGO_ENABLED=0", out)
	}
	// go install picks up cmd/tcpsentry/default.pgo (-pgo=auto).
	if !strings.Contains(string(out), ", PGO=default.pgo") {
		t.Errorf("--version:\n%s\nwant PGO=default.pgo: make install built without the profile", out)
	}
	if v, err := exec.Command(exe, "version").Output(); err != nil || string(v) != string(out) {
		t.Errorf("version and --version differ: %q, %q (%v)", v, out, err)
	}

	ld := buildStatic(t, "-ldflags", "-X main.version=9.8.7")
	out, err = exec.Command(ld, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "tcpsentry 9.8.7") {
		t.Errorf("-X main.version=9.8.7: --version %q (%v)", out, err)
	}

	cmd = exec.Command("make", "-s", "-C", "../..", "install-systemd", "PREFIX=/opt/tcpsentry", "DESTDIR="+dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install-systemd: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc", "systemd", "system", "tcpsentry.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/opt/tcpsentry/bin/tcpsentry run ") {
		t.Errorf("installed unit:\n%s", unit)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc", "tcpsentry", "tcpsentry.env")); err != nil {
		t.Error(err)
	}
}

// checkStatic checks that exe needs no dynamic loader and no library.
func checkStatic(t *testing.T, exe string) {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not static", exe, p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs %v", exe, libs)
	}
}

// unitFile is a systemd unit: section -> key -> the values of every
// assignment, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

// words is every value of key, split at spaces.
func (u unitFile) words(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// TestSystemdUnit checks deploy/tcpsentry.service: the keys least
// privilege rests on, then systemd-analyze verify on a copy whose
// ExecStart is a built binary (verify wants it to exist), and the
// exposure score of systemd-analyze security.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitPath)
	want := map[string]string{
		"User": "tcpsentry", "Group": "tcpsentry",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"StateDirectory": "tcpsentry", "ConfigurationDirectory": "tcpsentry",
		"EnvironmentFile": "/etc/tcpsentry/tcpsentry.env", "Restart": "on-failure",
	}
	for k, v := range want {
		if got := u["Service"][k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		got := u.words("Service", k)
		slices.Sort(got)
		if !slices.Equal(got, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
			t.Errorf("[Service] %s = %q, want CAP_NET_RAW CAP_NET_ADMIN", k, got)
		}
	}
	exec0 := u["Service"]["ExecStart"]
	if len(exec0) != 1 || !strings.HasPrefix(exec0[0], "/usr/local/bin/tcpsentry run --data-dir /var/lib/tcpsentry ") || !strings.HasSuffix(exec0[0], " $TCPSENTRY_ARGS") {
		t.Errorf("ExecStart = %q", exec0)
	}
	if fam := u.words("Service", "RestrictAddressFamilies"); !slices.Contains(fam, "AF_PACKET") || !slices.Contains(fam, "AF_INET") || !slices.Contains(fam, "AF_NETLINK") {
		t.Errorf("RestrictAddressFamilies = %q: capture needs AF_PACKET, the offload check AF_INET, the interface lookup AF_NETLINK", fam)
	}
	if got := u["Service"]["ExecReload"]; len(got) != 1 || got[0] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload = %q, want SIGHUP (tcpsentry run reloads its config file on it)", got)
	}
	env, err := os.ReadFile("../../deploy/tcpsentry.env")
	if err != nil || !regexp.MustCompile(`(?m)^TCPSENTRY_ARGS=.*-i `).Match(env) {
		t.Errorf("deploy/tcpsentry.env does not set TCPSENTRY_ARGS with -i (%v):\n%s", err, env)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		netlab.Unavailable(t, "systemd-analyze not found (Debian package systemd); the unit was only parsed")
	}
	exe := buildStatic(t)
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "tcpsentry.service")
	if err := os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/tcpsentry", exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	// verify also reports on units it loads as dependencies; only ours
	// matters here.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "tcpsentry") {
			ours = append(ours, line)
		}
	}
	if len(ours) > 0 || (err != nil && len(strings.TrimSpace(string(out))) == 0) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", copyPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for tcpsentry.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	// 2.0 with systemd 252: the network access capture needs is most of it.
	if score, _ := strconv.ParseFloat(string(m[1]), 64); score > 3 {
		t.Errorf("systemd-analyze security: exposure %.1f, want at most 3.0:\n%s", score, out)
	}
}

// TestUnitSyscalls runs a static tcpsentry under strace through a
// capture, a refused connection, the embedded broker and a stop, and
// checks that every system call it makes is allowed by the unit's
// SystemCallFilter and every socket family by RestrictAddressFamilies:
// a call the filter denies would fail (EPERM) only in production.
func TestUnitSyscalls(t *testing.T) {
	needRoot(t)
	strace, err := exec.LookPath("strace")
	if err != nil {
		netlab.Unavailable(t, "strace not found")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		netlab.Unavailable(t, "systemd-analyze not found (Debian package systemd)")
	}
	u := parseUnit(t, unitPath)
	allowed := map[string]bool{}
	var expand func(string)
	expand = func(name string) {
		if !strings.HasPrefix(name, "@") {
			allowed[name] = true
			return
		}
		out, err := exec.Command(analyze, "syscall-filter", "--no-pager", name).Output()
		if err != nil {
			t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
		}
		for _, line := range strings.Split(string(out), "\n")[1:] {
			if f := strings.TrimSpace(line); f != "" && !strings.HasPrefix(f, "#") {
				expand(f)
			}
		}
	}
	filter := u["Service"]["SystemCallFilter"]
	if len(filter) != 1 || strings.HasPrefix(filter[0], "~") {
		t.Fatalf("SystemCallFilter = %q: this test expects one allow list", filter)
	}
	for _, f := range strings.Fields(filter[0]) {
		expand(f)
	}
	families := u.words("Service", "RestrictAddressFamilies")

	exe := buildStatic(t)
	dir := worldReadableDir(t)
	trace := filepath.Join(dir, "strace.out")
	const port = 7227
	p := startProc(t, []string{strace, "-f", "-qq", "-o", trace, exe, "run", "-i", "lo", "--workers", "2", "--user", "nobody",
		"--filter", fmt.Sprintf("tcp port %d", port), "--nats", "embedded", "--broker-listen", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, "store"), "--events-file", "-", "--metrics-addr", "127.0.0.1:0"}, nil)
	refuse(t, port)
	refusedEvent(t, p, port)
	// Stop tcpsentry, not strace (which would leave it running).
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(kids)))
	if err != nil || pid == 0 {
		t.Fatalf("tcpsentry under strace: %q %v", kids, err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after SIGTERM:\n%s", p.Stderr())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after SIGTERM:\n%s", code, p.Stderr())
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`^\d+\s+([a-z0-9_]+)\(`)
	sock := regexp.MustCompile(`^\d+\s+socket\((AF_[A-Z0-9]+)`)
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := call.FindStringSubmatch(line); m != nil && !seen[m[1]] {
			seen[m[1]] = true
			if !allowed[m[1]] {
				t.Errorf("system call %s is not in SystemCallFilter=%s: %s", m[1], filter[0], line)
			}
		}
		if m := sock.FindStringSubmatch(line); m != nil && !slices.Contains(families, m[1]) {
			t.Errorf("socket family %s is not in RestrictAddressFamilies: %s", m[1], line)
		}
	}
	for _, c := range []string{"socket", "setsockopt", "mmap", "sched_setaffinity", "setresuid", "openat"} {
		if !seen[c] {
			t.Errorf("the trace has no %s call: did the run happen?\n%s", c, p.Stderr())
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", p.Stderr())
	}
}
