package main

import (
	"flag"
	"fmt"
	"math/bits"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/config"
	"github.com/tcpsentry/tcpsentry/cmd/tcpsentry/sensor"
	"github.com/tcpsentry/tcpsentry/detectors"
	"github.com/tcpsentry/tcpsentry/flowtable"
	"github.com/tcpsentry/tcpsentry/ring"
	"github.com/tcpsentry/tcpsentry/ring/filter"
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

// snaplenFlag is --snaplen: bytes of each frame to capture; 0 means
// whole frames, as tcpdump's -s 0 does.
type snaplenFlag struct{ p *int }

func (f snaplenFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}
func (f snaplenFlag) Get() any { return *f.p }
func (f snaplenFlag) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a number: %q", v)
	}
	if n == 0 {
		n = ring.MaxFrameLen
	}
	if n < ring.MinSnaplen || n > ring.MaxFrameLen {
		return fmt.Errorf("must be 0 (whole frames) or between %d and %d, not %d", ring.MinSnaplen, ring.MaxFrameLen, n)
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

// strFlag is a string flag whose value is checked in Set, like intFlag:
// a bad value in a file then names its line, and 'config check' sees it.
type strFlag struct {
	p     *string
	check func(string) error
}

func (f strFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}
func (f strFlag) Get() any { return *f.p }
func (f strFlag) Set(v string) error {
	if err := f.check(v); err != nil {
		return err
	}
	*f.p = v
	return nil
}

// checkSensorName: the name is the <sensor> token of the NATS subjects
// (natspub's rule), so it is checked whether or not NATS is used.
func checkSensorName(v string) error {
	if v == "" || strings.ContainsAny(v, ".*> \t\r\n") {
		return fmt.Errorf("%q cannot be a NATS subject token: use letters, digits, '-' or '_' (no '.', '*', '>' or spaces)", v)
	}
	return nil
}

// checkFilter compiles a capture filter for Ethernet, as the ring will;
// a link-type specific failure (raw IP) is still the ring's, at start.
func checkFilter(v string) error {
	if _, err := filter.Compile(v, uint16(ring.LinkTypeEthernet), filter.Options{KernelVLAN: true}); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "filter: "))
	}
	return nil
}

// checkCPUList checks the syntax of --cpus; whether the CPUs are
// available depends on the machine and is checked at start.
func checkCPUList(v string) error {
	if v == "" {
		return nil
	}
	_, err := parseCPUs(v)
	return err
}

// checkNATSMode checks --nats-mode (natsFlags.publishMode parses it).
func checkNATSMode(v string) error {
	_, err := (&natsFlags{mode: v}).publishMode()
	return err
}

// natsURLCheck checks --nats: one of keywords, or server URLs, comma-
// separated, as the NATS client reads them (scheme nats, tls, ws or wss,
// nats:// when left out). Whether a server answers is for the start.
func natsURLCheck(keywords ...string) func(string) error {
	return func(v string) error {
		s := strings.TrimSpace(v)
		if s == "" || slices.Contains(keywords, s) {
			return nil
		}
		hint := "say nats://HOST:4222, several comma-separated"
		if len(keywords) > 0 {
			hint += "; or " + strings.Join(keywords, " or ")
		}
		web, plain := false, false
		for _, u := range strings.Split(s, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			full := u
			if !strings.Contains(full, "://") {
				full = "nats://" + full
			}
			p, err := url.Parse(full)
			if err != nil || p.Hostname() == "" {
				return fmt.Errorf("not a NATS server URL: %q (%s)", u, hint)
			}
			switch p.Scheme {
			case "nats", "tls":
				plain = true
			case "ws", "wss":
				web = true
			default:
				return fmt.Errorf("not a NATS server URL: %q: the scheme is nats, tls, ws or wss", u)
			}
			if port := p.Port(); port != "" {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					return fmt.Errorf("not a NATS server URL: %q: bad port", u)
				}
			}
		}
		if web && plain {
			return fmt.Errorf("mixes websocket (ws, wss) and plain (nats, tls) URLs, which the NATS client refuses: %q", s)
		}
		return nil
	}
}

// listenCheck checks a listen address, host:port, as net.Listen takes
// it; "" is the default (or none), and so is off when given. Whether it
// can be bound is for the start.
func listenCheck(example, off string) func(string) error {
	return func(v string) error {
		s := strings.TrimSpace(v)
		if s == "" || off != "" && s == off {
			return nil
		}
		want := "want host:port, e.g. " + example
		if off != "" {
			want += ", or " + off
		}
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("%s, not %q", want, v)
		}
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("bad port in %q (0 to 65535)", v)
		}
		return nil
	}
}

// blockSizeFlag is --ring-block-size: a size (sizeFlag's suffixes) that
// TPACKET_V3 takes, the ring's own check (ring/live_linux.go).
type blockSizeFlag struct{ p *int }

func (f blockSizeFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}
func (f blockSizeFlag) Get() any { return *f.p }
func (f blockSizeFlag) Set(v string) error {
	var s sizeFlag
	if err := s.Set(v); err != nil {
		return err
	}
	n, page := int(s), os.Getpagesize()
	if n < page || bits.OnesCount(uint(n)) != 1 || n > 1<<30 {
		return fmt.Errorf("must be a power of two between the page size (%d) and 1 GiB, not %d", page, n)
	}
	*f.p = n
	return nil
}

// frameSizeFlag is --ring-frame-size, tp_frame_size: a multiple of
// TPACKET_ALIGNMENT (16), room for the frame header. That it fits in a
// block is checkRing's, once both are known.
type frameSizeFlag struct{ p *int }

func (f frameSizeFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}
func (f frameSizeFlag) Get() any { return *f.p }
func (f frameSizeFlag) Set(v string) error {
	var s sizeFlag
	if err := s.Set(v); err != nil {
		return err
	}
	if n := int(s); n < 128 || n%16 != 0 || n > 1<<30 {
		return fmt.Errorf("must be a multiple of 16, at least 128 and at most the block size, not %d", n)
	}
	*f.p = int(s)
	return nil
}

// checkRing checks what no single flag's Set can: that a frame fits in
// a block. With f, the file the values came from, the error names the
// line of whichever of the two the file sets.
func checkRing(r *runFlags, f *config.File) error {
	frame, block := r.lcfg.FrameSize, r.lcfg.BlockSize
	if frame <= block {
		return nil
	}
	if f != nil {
		if key, line, ok := f.Where("ring-frame-size"); ok {
			return &config.Error{File: f.Path, Line: line, Key: key, Msg: fmt.Sprintf("must be at most the block size (ring-block-size %d), not %d", block, frame)}
		}
		if key, line, ok := f.Where("ring-block-size"); ok {
			return &config.Error{File: f.Path, Line: line, Key: key, Msg: fmt.Sprintf("must be at least the frame size (ring-frame-size %d), not %d", frame, block)}
		}
	}
	return fmt.Errorf("--ring-frame-size %d must be at most --ring-block-size %d", frame, block)
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
	{"event-rate", detectors.TypeNone, true},
	{"event-burst", detectors.TypeNone, true},
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
	fs.Var(intFlag{&d.EventRate, 1, 10_000_000}, "event-rate", "at most `N` events of one type are written a second (capture time) once --event-burst is spent: a flood from many sources, each its own client so that nothing folds, is cut there and the events over it counted (rate-limited); each type has its own budget")
	fs.Var(intFlag{&d.EventBurst, 1, 100_000_000}, "event-burst", "at most `N` events of one type are written at once, before --event-rate applies")
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
			{Title: "Capture", Flags: []string{"i", "filter", "netns", "no-promisc", "workers", "cpus", "snaplen", "ring-block-size", "ring-blocks", "ring-frame-size", "ring-timeout"}},
			{Title: "Sensor", Flags: []string{"sensor", "flows", "quiet"}},
			{Title: "Logs", Flags: []string{"log-format", "log-level", "status-interval"}},
			{Title: "Flow table", Flags: []string{"timeout-half-open", "timeout-established", "timeout-closed", "handshake-timeout"}},
			{Title: "Events", Flags: []string{"nats", "nats-mode", "nats-wait", "nats-creds", "nats-nkey", "nats-user", "nats-password", "nats-token", "nats-tls-ca", "nats-tls-cert", "nats-tls-key",
				"broker-listen", "data-dir", "events-file", "events-buffer", "events-max-age", "events-max-bytes"}},
			{Title: "Folding and rate limit (applied on SIGHUP)", Flags: []string{"fold", "event-rate", "event-burst"}},
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
