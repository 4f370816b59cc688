package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/tcpsentry/tcpsentry/detectors/events/natspub"
)

// natsFlags are the flags that say how to reach NATS, shared by run,
// replay and events.
type natsFlags struct {
	urls string
	mode string
	opts natspub.Options
}

// register adds the connection flags to fs; def is --nats's default and
// what it means is said in urlHelp; keywords are the values of --nats
// that are not URLs.
func (n *natsFlags) register(fs *flag.FlagSet, def, urlHelp string, keywords ...string) {
	n.urls = def
	fs.Var(strFlag{&n.urls, natsURLCheck(keywords...)}, "nats", urlHelp)
	fs.StringVar(&n.opts.Creds, "nats-creds", "", "NATS credentials file (JWT and nkey seed)")
	fs.StringVar(&n.opts.NKey, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&n.opts.User, "nats-user", "", "NATS user name")
	fs.StringVar(&n.opts.Password, "nats-password", "", "NATS password (visible in ps: prefer --nats-creds)")
	fs.StringVar(&n.opts.Token, "nats-token", "", "NATS authentication token")
	fs.StringVar(&n.opts.TLSCA, "nats-tls-ca", "", "CA certificate(s) to verify the NATS server (PEM)")
	fs.StringVar(&n.opts.TLSCert, "nats-tls-cert", "", "client certificate for NATS (PEM)")
	fs.StringVar(&n.opts.TLSKey, "nats-tls-key", "", "client key for NATS (PEM)")
}

// registerMode adds --nats-mode (publishers only).
func (n *natsFlags) registerMode(fs *flag.FlagSet) {
	n.mode = "jetstream"
	fs.Var(strFlag{&n.mode, checkNATSMode}, "nats-mode", "publish `mode`: jetstream (stored, acknowledged, deduplicated) or core (plain publish, nothing stored)")
}

// publishMode parses --nats-mode.
func (n *natsFlags) publishMode() (natspub.Mode, error) {
	switch strings.ToLower(n.mode) {
	case "", "jetstream", "js":
		return natspub.JetStream, nil
	case "core":
		return natspub.Core, nil
	}
	return 0, fmt.Errorf("must be jetstream or core, not %q", n.mode)
}
