package metrics_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/metrics"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable/decode"
)

// withNonTCP returns a shipped Ethernet capture with frames appended that
// do not decode to TCP: ARP (not_ip), UDP (not_tcp) and a runt
// (truncated_l2), n of each.
func withNonTCP(t *testing.T, name string, n int) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, r.LinkType()); err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
		last = ci.Timestamp
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		b := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(b.Bytes())
	}
	ethARP, ethIP := *eth, *eth
	ethARP.EthernetType, ethIP.EthernetType = layers.EthernetTypeARP, layers.EthernetTypeIPv4
	arp := ser(&ethARP, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: eth.SrcMAC, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 2}})
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	udpL := &layers.UDP{SrcPort: 5353, DstPort: 53}
	_ = udpL.SetNetworkLayerForChecksum(ip)
	udp := ser(&ethIP, ip, udpL, gopacket.Payload("x"))
	runt := []byte{1, 2, 3, 4, 5, 6}
	for i := range n {
		for j, fr := range [][]byte{arp, udp, runt} {
			ts := last.Add(time.Duration(3*i+j+1) * time.Millisecond)
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(fr), Length: len(fr)}, fr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.Bytes()
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// values returns name's samples whose labels include want ("k=v"), keyed
// by their remaining labels ("k=v,k=v").
func values(fams map[string]*dto.MetricFamily, name string, want ...string) map[string]float64 {
	out := map[string]float64{}
	fam := fams[name]
	if fam == nil {
		return out
	}
next:
	for _, m := range fam.GetMetric() {
		var rest []string
		matched := 0
		for _, l := range m.GetLabel() {
			kv := l.GetName() + "=" + l.GetValue()
			if strings.Contains(strings.Join(want, "\x00")+"\x00", kv+"\x00") {
				matched++
			} else {
				rest = append(rest, kv)
			}
		}
		if matched != len(want) {
			continue next
		}
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out[strings.Join(rest, ",")] = v
	}
	return out
}

func total(fams map[string]*dto.MetricFamily, name string, want ...string) uint64 {
	var n float64
	for _, v := range values(fams, name, want...) {
		n += v
	}
	return uint64(n)
}

// TestScrapeMatchesReplay: after a replay, every figure on /metrics is
// exactly the replay's Summary.
func TestScrapeMatchesReplay(t *testing.T) {
	data := withNonTCP(t, "../../../testdata/refused_rate.pcap", 3)
	var obs sensor.Observer
	m := metrics.New("9.9.9-test", &obs)
	srv, err := metrics.Listen("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if fams := scrape(t, srv.URL()); total(fams, "tcpsentry_sensor_running") != 0 || len(values(fams, "tcpsentry_packets_total")) != 0 {
		t.Fatal("figures before the start")
	}
	sum, err := sensor.Replay(context.Background(), bytes.NewReader(data), sensor.Config{Workers: 2, Flows: 1000, Observer: &obs}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.EventsTotal() == 0 || sum.DecodeFailures() != 9 {
		t.Fatalf("replay: %d events, %d decode failures", sum.EventsTotal(), sum.DecodeFailures())
	}
	fams := scrape(t, srv.URL())
	checkSummary(t, fams, &sum, "replay")
	if v := values(fams, "tcpsentry_build_info", "version=9.9.9-test"); v[""] != 1 {
		t.Errorf("build_info: %v", v)
	}
	for _, name := range []string{"tcpsentry_kernel_drops_total", "tcpsentry_nats_connected", "tcpsentry_nats_publish_latency_seconds"} {
		if fams[name] != nil {
			t.Errorf("%s in a replay without NATS", name)
		}
	}
	if n := total(fams, "tcpsentry_events_dropped_total", "why=buffer_full"); n != 0 {
		t.Errorf("buffer_full %d without NATS", n)
	}
	if total(fams, "tcpsentry_sensor_running") != 0 {
		t.Error("running after the end")
	}
	// Names, units and help follow Prometheus' conventions.
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// checkSummary compares the counters on /metrics with a Summary.
func checkSummary(t *testing.T, fams map[string]*dto.MetricFamily, sum *sensor.Summary, iface string) {
	t.Helper()
	eq := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: /metrics says %d, the summary %d", what, got, want)
		}
	}
	eq("packets", total(fams, "tcpsentry_packets_total", "interface="+iface), sum.Packets)
	eq("bytes", total(fams, "tcpsentry_bytes_total", "interface="+iface), sum.Bytes)
	for w, n := range sum.PerWorker {
		eq("packets of worker "+strconv.Itoa(w), total(fams, "tcpsentry_packets_total", "worker="+strconv.Itoa(w)), n)
	}
	eq("flows created", total(fams, "tcpsentry_flows_created_total"), sum.Flows.Created)
	eq("evicted idle", total(fams, "tcpsentry_flows_evicted_total", "why=idle"), sum.Flows.EvictedIdle)
	eq("evicted full", total(fams, "tcpsentry_flows_evicted_total", "why=full"), sum.Flows.EvictedFull)
	eq("reused", total(fams, "tcpsentry_flows_evicted_total", "why=reused"), sum.Flows.Reused)
	eq("flushed", total(fams, "tcpsentry_flows_evicted_total", "why=flush"), sum.Flows.Flushed)
	eq("flow table capacity", total(fams, "tcpsentry_flow_table_capacity"), uint64(1000))
	eq("flows active at the end", total(fams, "tcpsentry_flow_table_active"), 0)
	eq("flow table peak", total(fams, "tcpsentry_flow_table_peak"), uint64(sum.Flows.Peak))
	if sum.Flows.Created > 0 && sum.Flows.Peak == 0 {
		t.Errorf("%d flows created, none held", sum.Flows.Created)
	}
	for r := decode.Reason(1); r < decode.NumReasons; r++ {
		eq("decode "+r.String(), total(fams, "tcpsentry_decode_failures_total", "reason="+r.String()), sum.Drops[r])
	}
	eq("decode failures", total(fams, "tcpsentry_decode_failures_total"), sum.DecodeFailures())
	for ty := detectors.Type(1); ty < detectors.NumTypes; ty++ {
		eq("events "+ty.String(), total(fams, "tcpsentry_events_total", "type="+ty.String()), sum.Events[ty])
		eq("folded "+ty.String(), total(fams, "tcpsentry_events_folded_total", "type="+ty.String()), sum.Folded[ty])
		eq("rate-limited "+ty.String(), total(fams, "tcpsentry_events_rate_limited_total", "type="+ty.String()), sum.RateLimited[ty])
	}
	eq("events", total(fams, "tcpsentry_events_total"), sum.EventsTotal())
	eq("ring_full", total(fams, "tcpsentry_events_dropped_total", "why=ring_full"), sum.EventsLost)
	eq("late", total(fams, "tcpsentry_events_late_total"), sum.Late)
	if len(values(fams, "tcpsentry_packets_total")) != sum.Workers {
		t.Errorf("packets_total series: %v", values(fams, "tcpsentry_packets_total"))
	}
}

// TestListenBusy: a taken address is an error naming it and the reason.
func TestListenBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var obs sensor.Observer
	_, err = metrics.Listen(ln.Addr().String(), metrics.New("x", &obs))
	want := ln.Addr().String() + ": address already in use"
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v; want one line starting %q", err, want)
	}
}
