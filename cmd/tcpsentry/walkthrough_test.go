package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpsentry/tcpsentry/bench/netlab"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/privdrop"
)

// TestOperatorWalkthrough is the operator's path through README and
// docs/operations.md in one run: make install (a static binary), setcap,
// run it as an unprivileged user from a config file, scrape the metrics,
// lower a threshold in the file, SIGHUP, and see the effect in both the
// events and the metrics, with no flow dropped and no restart.
func TestOperatorWalkthrough(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"make", "setcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			netlab.Unavailable(t, "%s not found", tool)
		}
	}
	nobody, err := privdrop.Lookup("nobody")
	if err != nil {
		netlab.Unavailable(t, "user nobody: %v", err)
	}
	dir := worldReadableDir(t)
	if out, err := exec.Command("make", "-s", "-C", "../..", "install", "PREFIX=/usr", "DESTDIR="+dir).CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	exe := filepath.Join(dir, "usr", "bin", "tcpsentry")
	var st syscall.Statfs_t
	if err := syscall.Statfs(exe, &st); err == nil && st.Flags&0x2 != 0 { // ST_NOSUID: file capabilities are ignored
		netlab.Unavailable(t, "%s is on a nosuid file system", exe)
	}
	if out, err := exec.Command("setcap", "cap_net_raw,cap_net_admin+ep", exe).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	const portA, portB = 7228, 7229
	conf := filepath.Join(dir, "tcpsentry.yaml")
	write := func(failed int) {
		t.Helper()
		text := fmt.Sprintf(`i: [lo]
workers: 2
filter: tcp port %d or tcp port %d
nats: "off"
events-file: "-"
metrics-addr: %s
log-format: text
detectors:
  failed_connection_rate:
    failed-connections: %d
`, portA, portB, metricsAddr, failed)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(10)
	if out, err := exec.Command(exe, "config", "check", conf).CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(nobody.UID), Gid: uint32(nobody.GID), Groups: []uint32{uint32(nobody.GID)}}}
	p := startProc(t, []string{exe, "run", "--config", conf}, asNobody)
	checkThreads(t, p.cmd.Process.Pid, nobody.UID, nobody.GID, "0000000000000000")

	url := "http://" + metricsAddr + "/metrics"
	// metric polls the endpoint until name{labels} reaches want.
	metric := func(want float64, name string, labels ...string) {
		t.Helper()
		var got float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got, _ = promSum(promScrape(t, url), name, labels...); got == want {
				return
			}
		}
		t.Fatalf("%s%v = %v on %s, want %v\nstderr:\n%s", name, labels, got, url, want, p.Stderr())
	}

	// Three refusals: below the threshold of 10, no rate event. Repeats
	// to one port fold into its first event (tcpsentry.count): one
	// written, two folded, all three counted as failures by then.
	for range 3 {
		refuse(t, portA)
	}
	metric(1, "tcpsentry_events_total", "type=connection_refused")
	metric(2, "tcpsentry_events_folded_total", "type=connection_refused")
	metric(0, "tcpsentry_events_total", "type=failed_connection_rate")
	metric(0, "tcpsentry_flows_evicted_total", "why=full")

	// The operator lowers the threshold to 3 and reloads.
	write(3)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloaded := "tcpsentry: reloaded config=" + conf + ` changed="failed-connections 10 -> 3"` + "\n"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Stderr(), reloaded) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Stderr(), reloaded) {
		t.Fatalf("no reload line %q; stderr:\n%s", reloaded, p.Stderr())
	}
	for range 3 {
		refuse(t, portB)
	}
	if !p.waitOutput(`"action":"failed_connection_rate"`) {
		t.Fatalf("no failed_connection_rate after the reload; stdout:\n%s\nstderr:\n%s", p.Stdout(), p.Stderr())
	}
	metric(2, "tcpsentry_events_total", "type=connection_refused")
	metric(4, "tcpsentry_events_folded_total", "type=connection_refused")
	metric(1, "tcpsentry_events_total", "type=failed_connection_rate")
	if strings.Count(string(p.Stdout()), `"action":"failed_connection_rate"`) != 1 ||
		!strings.Contains(string(p.Stdout()), fmt.Sprintf(`"port":%d`, portB)) {
		t.Fatalf("events:\n%s", p.Stdout())
	}
	stopClean(t, p)
}
