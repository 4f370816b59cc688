package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/config"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
)

// intFlag is an int flag with bounds, so that a file's value is checked
// where it is set and its error names the line.
type intFlag struct {
	p        *int
	min, max int
}

func (f intFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}
func (f intFlag) Get() any { return *f.p }
func (f intFlag) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a number: %q", v)
	}
	if n < f.min || n > f.max {
		return fmt.Errorf("must be between %d and %d, not %d", f.min, f.max, n)
	}
	*f.p = n
	return nil
}

// durFlag is a duration flag with bounds.
type durFlag struct {
	p        *time.Duration
	min, max time.Duration
}

func (f durFlag) String() string {
	if f.p == nil {
		return "0s"
	}
	return shortDuration(*f.p)
}
func (f durFlag) Get() any { return *f.p }
func (f durFlag) Set(v string) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a duration: %q (say 500ms, 10s or 5m)", v)
	}
	if d < f.min || d > f.max {
		return fmt.Errorf("must be between %s and %s, not %s", shortDuration(f.min), shortDuration(f.max), shortDuration(d))
	}
	*f.p = d
	return nil
}

// shortDuration writes 1m rather than time.Duration's 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// bytesFlag is a positive byte count with K, M, G suffixes (sizeFlag's).
type bytesFlag struct {
	p        *int64
	min, max int64
}

func (f bytesFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.FormatInt(*f.p, 10)
}
func (f bytesFlag) Get() any { return *f.p }
func (f bytesFlag) Set(v string) error {
	var s sizeFlag
	if err := s.Set(v); err != nil {
		return err
	}
	if n := int64(s); n < f.min || n > f.max {
		return fmt.Errorf("must be between %d and %d, not %d", f.min, f.max, n)
	}
	*f.p = int64(s)
	return nil
}

// The detector thresholds, by flag: the type whose entry the file puts
// them under (TypeNone: top level), and whether SIGHUP applies them.
type tuning struct {
	name   string
	owner  detectors.Type
	reload bool
}

// tunings lists the flags registerTuning adds, in file order.
var tunings = []tuning{
	{"syn-retransmits", detectors.TypeSynUnanswered, true},
	{"request-retransmits", detectors.TypeRequestUnanswered, true},
	{"large-ack-distance", detectors.TypeInvalidAck, true},
	{"failed-connections", detectors.TypeFailedConnectionRate, true},
	{"failed-window", detectors.TypeFailedConnectionRate, true},
	{"rst-endings", detectors.TypeRstStorm, true},
	{"rst-window", detectors.TypeRstStorm, true},
	{"rst-share", detectors.TypeRstStorm, true},
	{"ts-fold", detectors.TypeTSRegression, true},
	{"fold", detectors.TypeNone, true},
	{"timeout-half-open", detectors.TypeNone, false},
	{"timeout-established", detectors.TypeNone, false},
	{"timeout-closed", detectors.TypeNone, false},
	{"handshake-timeout", detectors.TypeNone, false},
}

// registerTuning adds the detector thresholds and flow-table timeouts to
// fs (run and replay), bound to cfg and set to their defaults.
func registerTuning(fs *flag.FlagSet, cfg *sensor.Config) {
	d, t := &cfg.Detectors, &cfg.Table
	*d = d.Defaults()
	t.HalfOpen, t.Established, t.Closed, t.Handshake = flowtable.DefaultHalfOpen, flowtable.DefaultEstablished, flowtable.DefaultClosed, flowtable.DefaultHandshake
	fs.Var(intFlag{&d.SynRetransmits, 1, 100}, "syn-retransmits", "syn_unanswered: report an unanswered SYN at its `N`th retransmission, without waiting for --handshake-timeout")
	fs.Var(intFlag{&d.RequestRetransmits, 1, 1000}, "request-retransmits", "request_unanswered: a data segment sent again `N` times and never acknowledged is reported at the connection's end")
	fs.Var(bytesFlag{&d.LargeAckDistance, 1, 1 << 31}, "large-ack-distance", "invalid_ack: an ACK more than this many `bytes` (K, M suffixes) outside what the peer sent blames a middlebox (seq_translation_middlebox); a nearer one, capture loss (ack_of_unseen_segment)")
	fs.Var(intFlag{&d.FailedConnections, 1, 1_000_000}, "failed-connections", "failed_connection_rate: `N` refused or unanswered attempts to one server:port within --failed-window raise it")
	fs.Var(durFlag{&d.FailedWindow, time.Second, time.Hour}, "failed-window", "failed_connection_rate: the `duration` of the sliding window of --failed-connections")
	fs.Var(intFlag{&d.RSTEndings, 1, 1_000_000}, "rst-endings", "rst_storm: `N` connections that one host:port ends with a RST within --rst-window raise it")
	fs.Var(durFlag{&d.RSTWindow, time.Second, time.Hour}, "rst-window", "rst_storm: the `duration` of the sliding window of --rst-endings")
	fs.Var(intFlag{&d.RSTShare, 1, 100}, "rst-share", "rst_storm: the least share, in `percent`, of the host:port's connection endings that RST endings must be")
	fs.Var(durFlag{&d.TSFold, time.Second, 24 * time.Hour}, "ts-fold", "ts_regression: repeats for one source and destination within this `duration` are folded into one report")
	fs.Var(durFlag{&d.Fold, time.Second, 24 * time.Hour}, "fold", "repeats of a per-connection event (same type, client address, server address and port) within this `duration` are folded into one report; aggregate events are folded per server the same way")
	fs.Var(durFlag{&t.HalfOpen, time.Second, 24 * time.Hour}, "timeout-half-open", "a connection in its handshake leaves the flow table when idle for this `duration`")
	fs.Var(durFlag{&t.Established, time.Second, 7 * 24 * time.Hour}, "timeout-established", "an established connection leaves the flow table when idle for this `duration`")
	fs.Var(durFlag{&t.Closed, time.Second, 24 * time.Hour}, "timeout-closed", "a connection that saw a FIN or RST leaves the flow table when idle for this `duration`")
	fs.Var(durFlag{&t.Handshake, 100 * time.Millisecond, 10 * time.Minute}, "handshake-timeout", "syn_unanswered: the `duration` a SYN may wait for an answer")
}

// configFlag registers --config; def is its default.
func configFlag(fs *flag.FlagSet, p *string, def string) {
	usage := "configuration file (YAML; 'tcpsentry config default' prints one); flags given here override it"
	if def != "" {
		usage += "; read if it exists, 'none' for no file"
	}
	fs.StringVar(p, "config", def, usage)
}

// layout is where the run flags go in a configuration file.
func layout() *config.Layout {
	l := &config.Layout{
		Skip:  []string{"config"},
		Lists: []string{"i"},
		Local: []string{"sensor", "data-dir"},
		Sections: []config.Section{
			{Title: "Capture", Flags: []string{"i", "filter", "netns", "no-promisc", "workers", "cpus", "ring-block-size", "ring-blocks", "ring-frame-size", "ring-timeout"}},
			{Title: "Sensor", Flags: []string{"sensor", "flows", "quiet"}},
			{Title: "Logs", Flags: []string{"log-format", "log-level", "status-interval"}},
			{Title: "Flow table", Flags: []string{"timeout-half-open", "timeout-established", "timeout-closed", "handshake-timeout"}},
			{Title: "Events", Flags: []string{"nats", "nats-mode", "nats-wait", "nats-creds", "nats-nkey", "nats-user", "nats-password", "nats-token", "nats-tls-ca", "nats-tls-cert", "nats-tls-key",
				"broker-listen", "data-dir", "events-file", "events-buffer", "events-max-age", "events-max-bytes"}},
			{Title: "Folding (applied on SIGHUP)", Flags: []string{"fold"}},
		},
	}
	for t := detectors.TypeNone + 1; t < detectors.NumTypes; t++ {
		d := config.Detector{Type: t}
		for _, tu := range tunings {
			if tu.owner == t {
				d.Flags = append(d.Flags, tu.name)
			}
		}
		l.Detectors = append(l.Detectors, d)
	}
	return l
}
