package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// NATS is what the metrics read of the event publisher
// (*natspub.Publisher).
type NATS interface {
	Stats() natspub.Stats
	Connected() bool
}

// Metrics is the registry of one sensor's metrics.
type Metrics struct {
	reg     *prometheus.Registry
	obs     *sensor.Observer
	nats    atomic.Pointer[NATS]
	latency prometheus.Histogram
}

// New returns the metrics of the sensor obs observes; version is
// tcpsentry_build_info's label.
func New(version string, obs *sensor.Observer) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		obs: obs,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tcpsentry_nats_publish_latency_seconds",
			Help:    "Time from publishing an event to JetStream to taking its acknowledgement (JetStream mode only).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tcpsentry_build_info",
			Help:        "Always 1; the version label is the running tcpsentry's.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }),
		(*collector)(m),
	)
	return m
}

// Registry is the registry to serve (Handler serves it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetNATS adds the publisher's metrics; without it there are none.
func (m *Metrics) SetNATS(n NATS) { m.nats.Store(&n) }

// AckLatency records one event's publish latency; it is
// natspub.Config.AckLatency.
func (m *Metrics) AckLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tcpsentry_"+name, help, labels, nil)
}

var (
	dRunning      = desc("sensor_running", "1 while the sensor captures or replays, 0 before and after.")
	dPackets      = desc("packets_total", "Frames received by the workers (replay: interface=\"replay\").", "interface", "worker")
	dBytes        = desc("bytes_total", "Bytes of those frames as on the wire.", "interface", "worker")
	dKPackets     = desc("kernel_packets_total", "Packets the kernel's capture saw (PACKET_STATISTICS, read once a second; drops included).", "interface")
	dKDrops       = desc("kernel_drops_total", "Packets the kernel dropped because the ring was full: the workers fell behind.", "interface")
	dKFreezes     = desc("kernel_queue_freezes_total", "Times the kernel found the ring full (queue frozen).", "interface")
	dKErrors      = desc("socket_errors_total", "Capture socket errors reported by poll (e.g. the interface went down).", "interface")
	dDecode       = desc("decode_failures_total", "Frames not decoded to a TCP segment, by reason (not_ip and not_tcp are not errors).", "reason")
	dOptMalformed = desc("tcp_option_malformed_total", "TCP segments with a malformed option (still tracked).")
	dActive       = desc("flow_table_active", "Connections in the worker's flow table.", "worker")
	dCapacity     = desc("flow_table_capacity", "Connections the worker's flow table holds.", "worker")
	dPeak         = desc("flow_table_peak", "The most connections the worker's flow table held at once since the start.", "worker")
	dCreated      = desc("flows_created_total", "Connections created in the worker's flow table.", "worker")
	dEvicted      = desc("flows_evicted_total", "Connections that left the flow table: idle (timed out), full (oldest evicted to make room), reused (a new SYN took the 4-tuple), flush (end of capture).", "worker", "why")
	dEvents       = desc("events_total", "Events written, by type (event.action).", "type")
	dFolded       = desc("events_folded_total", "Repeats folded into events (tcpsentry.count), by type.", "type")
	dLimited      = desc("events_rate_limited_total", "Events not written because their type was over its rate limit (--event-rate, --event-burst), by type.", "type")
	dDropped      = desc("events_dropped_total", "Events lost: ring_full (a worker's event batches were all in use), buffer_full (the NATS buffer was full and dropped its oldest).", "why")
	dLate         = desc("events_late_total", "Facts and events the correlator handled out of order because its queue was full.")
	dConnected    = desc("nats_connected", "1 while connected to the NATS broker, 0 when not.")
	dPublished    = desc("nats_published_total", "Events the broker took (JetStream: acknowledged).")
	dPubErrors    = desc("nats_publish_errors_total", "Failed publishes and acknowledgements (retried).")
	dRejected     = desc("nats_rejected_total", "Events the broker refused (dropped).")
	dResent       = desc("nats_resent_total", "Publishes repeated after a failure or reconnect.")
	dPending      = desc("nats_pending", "Events held for the broker: waiting or unacknowledged.")
)

// collector reads the snapshot at scrape time.
type collector Metrics

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dRunning, dPackets, dBytes, dKPackets, dKDrops, dKFreezes, dKErrors,
		dDecode, dOptMalformed, dActive, dCapacity, dPeak, dCreated, dEvicted, dEvents, dFolded, dLimited, dDropped, dLate,
		dConnected, dPublished, dPubErrors, dRejected, dResent, dPending} {
		ch <- d
	}
	c.latency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s := c.obs.Snapshot()
	running := 0.0
	if s.Running {
		running = 1
	}
	gauge(dRunning, running)
	var drops [decode.NumReasons]uint64
	var optMalformed, lost uint64
	for i, w := range s.Workers {
		wl := strconv.Itoa(i)
		for j, n := range w.Iface {
			counter(dPackets, n.Packets, s.Interfaces[j], wl)
			counter(dBytes, n.Bytes, s.Interfaces[j], wl)
		}
		for r, n := range w.Drops {
			drops[r] += n
		}
		optMalformed += w.OptMalformed
		lost += w.EventsLost
		gauge(dActive, float64(w.Flows.Active), wl)
		gauge(dCapacity, float64(w.FlowsCapacity), wl)
		gauge(dPeak, float64(w.Flows.Peak), wl)
		counter(dCreated, w.Flows.Created, wl)
		counter(dEvicted, w.Flows.EvictedIdle, wl, flowtable.EvictIdle.String())
		counter(dEvicted, w.Flows.EvictedFull, wl, flowtable.EvictFull.String())
		counter(dEvicted, w.Flows.Reused, wl, flowtable.EvictReused.String())
		counter(dEvicted, w.Flows.Flushed, wl, flowtable.EvictFlush.String())
	}
	for i, k := range s.Kernel {
		counter(dKPackets, k.Packets, s.Interfaces[i])
		counter(dKDrops, k.Drops, s.Interfaces[i])
		counter(dKFreezes, k.Freezes, s.Interfaces[i])
		counter(dKErrors, k.Errors, s.Interfaces[i])
	}
	for r := decode.Reason(1); r < decode.NumReasons; r++ {
		counter(dDecode, drops[r], r.String())
	}
	counter(dOptMalformed, optMalformed)
	for t := detectors.Type(1); t < detectors.NumTypes; t++ {
		counter(dEvents, s.Events[t], t.String())
		counter(dFolded, s.Folded[t], t.String())
		counter(dLimited, s.RateLimited[t], t.String())
	}
	counter(dLate, s.Late)
	counter(dDropped, lost, "ring_full")
	var ns natspub.Stats
	np := c.nats.Load()
	if np != nil {
		n := *np
		ns = n.Stats()
		connected := 0.0
		if n.Connected() {
			connected = 1
		}
		gauge(dConnected, connected)
		counter(dPublished, ns.Published)
		counter(dPubErrors, ns.Failures)
		counter(dRejected, ns.Rejected)
		counter(dResent, ns.Resent)
		gauge(dPending, float64(ns.Pending))
		c.latency.Collect(ch)
	}
	// Without NATS there is no buffer to overflow: a constant 0 keeps
	// one alert rule for every setup.
	counter(dDropped, ns.Dropped, "buffer_full")
}
