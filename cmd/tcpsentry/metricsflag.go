package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/metrics"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
)

// registerMetrics adds --metrics-addr with its default for the command.
func registerMetrics(fs *flag.FlagSet, addr *string, def string) {
	*addr = def
	fs.Var(strFlag{addr, listenCheck(metrics.DefaultAddr, "off")}, "metrics-addr", "serve Prometheus metrics on http://`ADDR`/metrics ('off' or '' for none)")
}

// metricsOut is the running metrics endpoint; nil when it is off.
type metricsOut struct {
	m   *metrics.Metrics
	srv *metrics.Server
}

// serveMetrics starts the endpoint on addr for the sensor cfg will run
// and hooks NATS latencies into ef; nil when addr is off. A bind error is
// one line on stderr and false.
func serveMetrics(addr string, cfg *sensor.Config, ef *eventFlags, stderr io.Writer) (*metricsOut, bool) {
	addr = strings.TrimSpace(addr)
	if addr == "" || addr == "off" {
		return nil, true
	}
	cfg.Observer = &sensor.Observer{}
	m := metrics.New(versionString(), cfg.Observer)
	srv, err := metrics.Listen(addr, m)
	if err != nil {
		fmt.Fprintf(stderr, "tcpsentry: --metrics-addr %v\n", err)
		return nil, false
	}
	ef.ackLatency = m.AckLatency
	return &metricsOut{m: m, srv: srv}, true
}

// setNATS adds the publisher's metrics, when there is one.
func (o *metricsOut) setNATS(out *eventOut) {
	if o != nil && out.pub != nil {
		o.m.SetNATS(out.pub)
	}
}

// url is the metrics page, "" when off.
func (o *metricsOut) url() string {
	if o == nil {
		return ""
	}
	return o.srv.URL()
}

func (o *metricsOut) close() {
	if o != nil {
		_ = o.srv.Close()
	}
}

// testHoldMetrics, set by tests, runs at the end of a replay while the
// metrics endpoint still serves.
var testHoldMetrics func(url string, sum *sensor.Summary)
