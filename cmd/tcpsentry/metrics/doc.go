// Package metrics serves a running sensor's counters in the Prometheus
// text format on /metrics. Its collector reads a sensor.Observer snapshot
// (and the NATS publisher's counters) when scraped, so the workers do
// nothing for it but copy their counters once per batch; docs/operations.md
// lists the metrics. It is the only importer of client_golang; the CLI
// wires it.
package metrics
