package main

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/broker"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// promSum is the sum of name's samples that carry every label of want
// ("k=v"), and how many there are.
func promSum(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, int) {
	var sum float64
	n := 0
	for _, m := range fams[name].GetMetric() {
		have := map[string]bool{}
		for _, l := range m.GetLabel() {
			have[l.GetName()+"="+l.GetValue()] = true
		}
		ok := true
		for _, w := range want {
			ok = ok && have[w]
		}
		if ok {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			n++
		}
	}
	return sum, n
}

func promScrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestReplayMetrics: `replay --metrics-addr` serves /metrics during the
// replay; scraped at its end (held open by the test), the packets, bytes,
// flows, decode failures and events by type are exactly the summary's,
// and the NATS figures are those of the broker that took the events.
func TestReplayMetrics(t *testing.T) {
	b := startBroker(t, broker.Config{})
	held := false
	testHoldMetrics = func(url string, sum *sensor.Summary) {
		held = true
		var fams map[string]*dto.MetricFamily
		// The replay waits for room, not for acknowledgements: the last
		// events may still be on their way.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			fams = promScrape(t, url)
			if p, _ := promSum(fams, "tcpsentry_nats_published_total"); uint64(p) == sum.EventsTotal() || time.Now().After(deadline) {
				break
			}
		}
		eq := func(what string, got float64, want uint64) {
			t.Helper()
			if uint64(got) != want || got != float64(uint64(got)) {
				t.Errorf("%s: /metrics says %v, the summary %d", what, got, want)
			}
		}
		v := func(name string, want ...string) float64 {
			s, _ := promSum(fams, name, want...)
			return s
		}
		eq("packets", v("tcpsentry_packets_total", "interface=replay"), sum.Packets)
		eq("bytes", v("tcpsentry_bytes_total", "interface=replay"), sum.Bytes)
		eq("flows created", v("tcpsentry_flows_created_total"), sum.Flows.Created)
		eq("flows flushed", v("tcpsentry_flows_evicted_total", "why=flush"), sum.Flows.Flushed)
		for r := decode.Reason(1); r < decode.NumReasons; r++ {
			eq("decode "+r.String(), v("tcpsentry_decode_failures_total", "reason="+r.String()), sum.Drops[r])
		}
		for ty := detectors.Type(1); ty < detectors.NumTypes; ty++ {
			eq("events "+ty.String(), v("tcpsentry_events_total", "type="+ty.String()), sum.Events[ty])
		}
		eq("NATS published", v("tcpsentry_nats_published_total"), sum.EventsTotal())
		eq("NATS latencies", v("tcpsentry_nats_publish_latency_seconds"), sum.EventsTotal())
		eq("NATS connected", v("tcpsentry_nats_connected"), 1)
		eq("NATS errors", v("tcpsentry_nats_publish_errors_total"), 0)
		eq("dropped", v("tcpsentry_events_dropped_total"), 0)
		eq("build info", v("tcpsentry_build_info", "version="+versionString()), 1)
		if _, n := promSum(fams, "tcpsentry_packets_total"); n != 2 {
			t.Errorf("%d packets_total series; want one per worker", n)
		}
	}
	defer func() { testHoldMetrics = nil }()
	var out, errb bytes.Buffer
	code := run([]string{"replay", "--workers", "2", "--metrics-addr", "127.0.0.1:0", "--nats", b.ClientURL(), "../../testdata/refused_rate.pcap"}, &out, &errb)
	if code != 0 || !held {
		t.Fatalf("exit %d, held %v: %s", code, held, errb.String())
	}
	if !strings.HasPrefix(errb.String(), "tcpsentry: metrics on http://127.0.0.1:") || !strings.Contains(errb.String(), "/metrics\n") {
		t.Fatalf("no start line naming the metrics URL:\n%s", errb.String())
	}
	if !strings.Contains(errb.String(), "20 created") {
		t.Fatalf("summary:\n%s", errb.String())
	}

	// Off by default in a replay.
	held = false
	out.Reset()
	errb.Reset()
	if code := run([]string{"replay", "../../testdata/demo.pcap"}, &out, &errb); code != 0 || held || strings.Contains(errb.String(), "metrics") {
		t.Fatalf("without --metrics-addr: exit %d, held %v:\n%s", code, held, errb.String())
	}
}

// TestMetricsAddrBusy: a taken --metrics-addr is one line naming the
// address and exit 1.
func TestMetricsAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errb bytes.Buffer
	code := run([]string{"replay", "--metrics-addr", ln.Addr().String(), "../../testdata/demo.pcap"}, &out, &errb)
	want := "tcpsentry: --metrics-addr " + ln.Addr().String() + ": address already in use (another tcpsentry running?)\n"
	if code != 1 || errb.String() != want || out.Len() != 0 {
		t.Fatalf("exit %d, stderr %q, %d bytes out; want exit 1 and %q", code, errb.String(), out.Len(), want)
	}
}

// TestRunMetrics: `run` serves live figures while it captures: the
// kernel's counters of the interface, the workers' packets, and the event
// of a refused connection.
func TestRunMetrics(t *testing.T) {
	needRoot(t)
	p := startRun(t, "-i", "lo", "--workers", "2", "--metrics-addr", "127.0.0.1:0")
	m := regexp.MustCompile(`(?m)^tcpsentry: serving metrics url=(http://\S+/metrics)$`).FindStringSubmatch(p.Stderr())
	if m == nil {
		t.Fatalf("no metrics line at start:\n%s", p.Stderr())
	}
	if out, err := exec.Command("bash", "-c", "echo > /dev/tcp/127.0.0.1/7211").CombinedOutput(); err == nil {
		t.Fatalf("port 7211 accepted a connection (%s): something listens there", out)
	}
	if !p.waitOutput(`"action":"connection_refused"`) {
		t.Fatalf("no connection_refused event within 10 s:\n%s", p.Stderr())
	}
	v := func(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
		s, _ := promSum(fams, name, want...)
		return s
	}
	var fams map[string]*dto.MetricFamily
	ok := false
	// The kernel's counters are read once a second.
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		fams = promScrape(t, m[1])
		ok = v(fams, "tcpsentry_kernel_packets_total", "interface=lo") >= 2 &&
			v(fams, "tcpsentry_packets_total", "interface=lo") >= 2 &&
			v(fams, "tcpsentry_events_total", "type=connection_refused") >= 1
	}
	if !ok {
		t.Fatalf("kernel packets %v, packets %v, connection_refused %v",
			v(fams, "tcpsentry_kernel_packets_total", "interface=lo"), v(fams, "tcpsentry_packets_total", "interface=lo"),
			v(fams, "tcpsentry_events_total", "type=connection_refused"))
	}
	if v(fams, "tcpsentry_sensor_running") != 1 || v(fams, "tcpsentry_flow_table_capacity") != 1_000_000 ||
		v(fams, "tcpsentry_flows_created_total") < 1 || v(fams, "tcpsentry_kernel_drops_total", "interface=lo") != 0 {
		t.Fatalf("running %v, capacity %v, created %v, kernel drops %v", v(fams, "tcpsentry_sensor_running"),
			v(fams, "tcpsentry_flow_table_capacity"), v(fams, "tcpsentry_flows_created_total"), v(fams, "tcpsentry_kernel_drops_total"))
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s", code, p.Stderr())
	}
}
