// Package broker runs the embedded NATS server (with JetStream) that
// tcpsentry run uses when no --nats is given, so that one command works
// on one machine. It listens on loopback only.
package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultListen is where the embedded broker listens.
const DefaultListen = "127.0.0.1:4222"

// Config configures the embedded broker.
type Config struct {
	// Listen is host:port (default DefaultListen; port 0 picks one).
	Listen string
	// DataDir is where JetStream keeps the stream (under jetstream/).
	DataDir string
	// Users, when set, requires user/password (tests of authentication).
	User, Password string
	// Token, when set, requires this token.
	Token string
}

// Broker is a running embedded NATS server.
type Broker struct {
	srv *server.Server
	log *errLog
}

// DefaultDataDir is /var/lib/tcpsentry for root and ./tcpsentry-data
// otherwise.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/tcpsentry"
	}
	return "tcpsentry-data"
}

// Start starts the broker and waits until it takes connections. Errors
// are one line and say what to change.
func Start(cfg Config) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--broker-listen %q: want host:port, e.g. 127.0.0.1:4222", cfg.Listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--broker-listen %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %s", cfg.DataDir, pathErr(err))
	}
	// JetStream writes here; find out now, with a clear message, rather
	// than from a server log line.
	probe := filepath.Join(cfg.DataDir, ".tcpsentry-write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return nil, fmt.Errorf("--data-dir %s is not writable: %s", cfg.DataDir, pathErr(err))
	}
	os.Remove(probe)
	if port != server.RANDOM_PORT {
		// The server only logs a failed listen; ask the kernel first.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			return nil, fmt.Errorf("the embedded NATS broker cannot listen on %s (%s): another NATS server or tcpsentry runs there; publish to it with --nats nats://%s, or choose another --broker-listen", cfg.Listen, listenErr(err), cfg.Listen)
		}
		ln.Close()
	}
	opts := &server.Options{
		ServerName:            "tcpsentry",
		Host:                  host,
		Port:                  port,
		JetStream:             true,
		StoreDir:              cfg.DataDir,
		NoSigs:                true,
		NoSystemAccount:       true,
		DisableShortFirstPing: true,
		Username:              cfg.User,
		Password:              cfg.Password,
		Authorization:         cfg.Token,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS broker: %v", err)
	}
	l := &errLog{}
	srv.SetLoggerV2(l, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		msg := l.first()
		if msg == "" {
			msg = "not ready after 10 s"
		}
		return nil, fmt.Errorf("the embedded NATS broker did not start: %s", msg)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		msg := l.first()
		return nil, fmt.Errorf("the embedded NATS broker started without JetStream (store %s): %s", cfg.DataDir, msg)
	}
	return &Broker{srv: srv, log: l}, nil
}

// ClientURL is the URL clients connect to.
func (b *Broker) ClientURL() string { return b.srv.ClientURL() }

// InProcessConn connects to the broker without a socket (nats.go's
// InProcessServer option uses it).
func (b *Broker) InProcessConn() (net.Conn, error) { return b.srv.InProcessConn() }

// Shutdown stops the broker; the stream stays on disk.
func (b *Broker) Shutdown() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

func pathErr(err error) string {
	switch {
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	case errors.Is(err, os.ErrExist):
		return "exists and is not a directory"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func listenErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// errLog keeps the server's errors so that a failed start can say why;
// everything else it says is left out (tcpsentry logs its own states).
type errLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) < 16 {
		l.msgs = append(l.msgs, fmt.Sprintf(format, v...))
	}
}

func (l *errLog) first() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) == 0 {
		return ""
	}
	return l.msgs[0]
}

func (l *errLog) Noticef(string, ...any)         {}
func (l *errLog) Warnf(string, ...any)           {}
func (l *errLog) Debugf(string, ...any)          {}
func (l *errLog) Tracef(string, ...any)          {}
func (l *errLog) Fatalf(format string, v ...any) { l.add(format, v...) }
func (l *errLog) Errorf(format string, v ...any) { l.add(format, v...) }
