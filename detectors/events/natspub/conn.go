// Package natspub sends the sensor's events to NATS: JetStream publish
// with server-side deduplication, or plain core publish, from a bounded
// buffer that rides out broker outages. It is the only package of
// tcpsentry that imports the NATS client.
package natspub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is where the embedded broker listens and where clients look
// when no --nats is given.
const DefaultURL = "nats://127.0.0.1:4222"

// Options says how to reach a NATS server and who to be there. At most one
// of Creds, NKey, User/Password and Token is used, as a server accepts one.
type Options struct {
	// URLs is one or more server URLs, comma-separated.
	URLs string
	// Name is the client name the server shows (connz).
	Name string
	// Creds is a JWT credentials file (decentralised auth).
	Creds string
	// NKey is an nkey seed file.
	NKey           string
	User, Password string
	Token          string
	// TLSCA verifies the server; TLSCert and TLSKey are the client's
	// certificate for servers that require one.
	TLSCA, TLSCert, TLSKey string
	// Wait keeps trying when no server answers at start, instead of
	// failing (the connection starts as reconnecting).
	Wait bool
	// InProcess, when set, connects to an embedded server in this process
	// without a socket (nats-server's *server.Server provides it).
	InProcess interface {
		InProcessConn() (net.Conn, error)
	}
	// ReconnectWait is the pause between reconnect attempts (default 1 s;
	// the client adds jitter).
	ReconnectWait time.Duration
}

// Connect connects as o says. The connection reconnects for ever; it
// buffers nothing itself while disconnected (the Publisher holds what has
// to wait). A failure at start is one line that says which of address,
// TLS or credentials is wrong.
func Connect(o Options) (*nats.Conn, error) {
	urls := o.URLs
	if urls == "" {
		urls = DefaultURL
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // publishing while disconnected fails at once
		nats.ReconnectWait(orDefault(o.ReconnectWait, time.Second)),
		nats.Timeout(5 * time.Second),
	}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	if o.Wait {
		opts = append(opts, nats.RetryOnFailedConnect(true))
	}
	auth := 0
	if o.Creds != "" {
		auth++
		if _, err := os.Stat(o.Creds); err != nil {
			return nil, fmt.Errorf("--nats-creds %s: %s", o.Creds, fileErr(err))
		}
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKey != "" {
		auth++
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %v", o.NKey, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" || o.Password != "" {
		auth++
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		auth++
		opts = append(opts, nats.Token(o.Token))
	}
	if auth > 1 {
		return nil, errors.New("give one way to authenticate to NATS: --nats-creds, --nats-nkey, --nats-user/--nats-password or --nats-token")
	}
	if o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != "" {
		tc, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, explain(urls, err)
	}
	return nc, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func tlsConfig(o Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("--nats-tls-ca %s: %s", o.TLSCA, fileErr(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--nats-tls-ca %s: no PEM certificate in it", o.TLSCA)
		}
		tc.RootCAs = pool
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if o.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--nats-tls-cert/--nats-tls-key: %v", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func fileErr(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// explain turns a failed first connect into one line that says which
// part is wrong.
func explain(urls string, err error) error {
	msg := err.Error()
	lower := strings.ToLower(msg)
	var ne net.Error
	switch {
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(lower, "authorization violation") ||
		strings.Contains(lower, "authentication"):
		return fmt.Errorf("NATS at %s refused the credentials (authorization violation): check --nats-user/--nats-password, --nats-token, --nats-nkey or --nats-creds", urls)
	case errors.Is(err, nats.ErrSecureConnRequired):
		return fmt.Errorf("NATS at %s requires TLS: use a tls:// URL or --nats-tls-ca", urls)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("NATS at %s does not offer TLS, but TLS was asked for (--nats-tls-* or tls://)", urls)
	case strings.Contains(lower, "x509") || strings.Contains(lower, "tls:") || strings.Contains(lower, "certificate"):
		return fmt.Errorf("NATS at %s: TLS handshake failed: %v", urls, err)
	case errors.Is(err, nats.ErrNoServers) || errors.As(err, &ne) || strings.Contains(lower, "connection refused"):
		return fmt.Errorf("NATS at %s is unreachable (%v); start it, fix --nats, or add --nats-wait to keep retrying", urls, err)
	}
	return fmt.Errorf("NATS at %s: %v", urls, err)
}
