package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// Close says which side ends a connection after its last exchange.
type Close string

const (
	CloseClient Close = "client" // client FIN first (the default)
	CloseServer Close = "server" // server FIN first, after its last response
	CloseReset  Close = "reset"  // client closes with SO_LINGER 0: a RST ends the finished exchange
	// CloseServerReset: the server answers the last request, then closes
	// with SO_LINGER {1, 0}: a RST instead of a FIN ends the connection.
	CloseServerReset Close = "server-reset"
)

// Dial is one client connection of Connect.
type Dial struct {
	To   netip.AddrPort // server address, e.g. netip.AddrPortFrom(netlab.ServerV4, 8080)
	From uint16         // fixed client source port; 0 = ephemeral

	// Exchanges request/response rounds on the connection (0: connect,
	// then close at once). Each request is Request bytes (at least the
	// request line, ~16 bytes) and asks a Listen server for Response
	// bytes. Delay waits after the handshake before the first request
	// (a client slow to talk); Pause waits between rounds (a keep-alive
	// connection's idle time).
	Exchanges, Request, Response int
	Delay, Pause                 time.Duration
	Close                        Close

	// Timeout bounds the connect in the client program; 0 = 10 s.
	// UserTimeout sets TCP_USER_TIMEOUT, which also bounds a connect, in
	// the kernel: it gives up before a retransmission due after it. The
	// lab's client retransmits SYNs 1 s apart (tcp_syn_linear_timeouts),
	// so UserTimeout 3.5 s sends SYNs at 0, 1, 2 and 3 s only, however
	// loaded the machine (a SYN_SENT socket gives up silently, no RST).
	// SynRetries sets TCP_SYNCNT (0 = the kernel's default, 6); with
	// linear timeouts the kernel allows SynRetries +
	// tcp_syn_linear_timeouts retransmissions.
	Timeout, UserTimeout time.Duration
	SynRetries           int

	// IOTimeout bounds the exchanges and the close after the handshake
	// (a deadline on the socket); 0 = Timeout + Delay + the pauses + 30 s.
	// When it passes the client closes the socket (a FIN, or nothing if
	// the kernel has already given the connection up).
	IOTimeout time.Duration

	// At is when the dial starts, counted from the start of its Connect
	// call: one after another (the default), a dial waits until At if
	// the previous ones ended sooner (and at least the usual 20 ms gap);
	// with ConnectConfig.Parallel every dial starts at its own At.
	At time.Duration
}

func (d Dial) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 10 * time.Second
}

func (d Dial) ioTimeout() time.Duration {
	if d.IOTimeout > 0 {
		return d.IOTimeout
	}
	return d.timeout() + d.Delay + time.Duration(d.Exchanges)*d.Pause + 30*time.Second
}

// budget is how long a dial may take at most, from its start.
func (d Dial) budget() time.Duration {
	return d.timeout() + d.Delay + time.Duration(d.Exchanges)*d.Pause + d.ioTimeout()
}

// Result is what the client saw of one Dial.
type Result struct {
	Dial      Dial
	Local     netip.AddrPort // client address of an established connection
	Connected bool           // the handshake completed
	Refused   bool           // connect failed with ECONNREFUSED (RST/ACK)
	TimedOut  bool           // connect (or an exchange) timed out
	Err       string         // the first error, "" if none
	Received  int            // response bytes read
	Elapsed   time.Duration
}

// Connect runs dials one after another (20 ms apart, each ended on the
// wire before the next starts) in a helper process in the client
// namespace, and returns one Result per Dial. An error means the helper
// itself failed; failed connections are reported in their Result. It may be
// called from any goroutine; concurrent calls run concurrently.
func (l *Lab) Connect(dials ...Dial) ([]Result, error) {
	return l.ConnectWith(ConnectConfig{}, dials...)
}

// ConnectConfig tunes ConnectWith. The zero value is Connect's behaviour.
type ConnectConfig struct {
	// Side is the namespace the dials run in (Server: e.g. to dial
	// 127.0.0.1 inside the server namespace).
	Side Side
	// Parallel starts every dial in its own goroutine at its Dial.At
	// (all at once when At is 0), instead of one after another. The
	// helper is still pinned to one CPU.
	Parallel bool
}

// dialSpec is the helper's spec of mode "dial".
type dialSpec struct {
	Parallel bool
	Dials    []Dial
}

// ConnectWith is Connect with a ConnectConfig. It may be called from any
// goroutine.
func (l *Lab) ConnectWith(cfg ConnectConfig, dials ...Dial) ([]Result, error) {
	budget := 30 * time.Second
	var longest time.Duration
	for _, d := range dials {
		budget += d.budget() + connGap
		longest = max(longest, d.At+d.budget())
	}
	if cfg.Parallel {
		budget = 30*time.Second + longest
	} else if n := len(dials); n > 0 {
		budget += dials[n-1].At
	}
	spec, err := json.Marshal(dialSpec{Parallel: cfg.Parallel, Dials: dials})
	if err != nil {
		return nil, err
	}
	cmd, err := l.helper(cfg.Side, "dial", spec)
	if err != nil {
		return nil, err
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	p, err := l.start(cmd)
	if err != nil {
		return nil, fmt.Errorf("netlab: connect: %w", err)
	}
	if err := p.Wait(budget); err != nil {
		return nil, fmt.Errorf("netlab: connect helper: %v: %s", err, p.Stderr())
	}
	var res []Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("netlab: connect helper output %q: %w", stdout.String(), err)
	}
	return res, nil
}

// MustConnect is Connect that fails the test when the helper fails (not
// when a connection fails). Test goroutine only.
func (l *Lab) MustConnect(dials ...Dial) []Result {
	l.t.Helper()
	res, err := l.Connect(dials...)
	if err != nil {
		l.t.Fatal(err)
	}
	return res
}

// Refused dials a port nothing listens on and checks that the server's
// RST/ACK refused it.
func (l *Lab) Refused(to netip.AddrPort, from uint16) Result {
	l.t.Helper()
	r := l.MustConnect(Dial{To: to, From: from})[0]
	if !r.Refused {
		l.t.Fatalf("netlab: dial %v from port %d: want connection refused, got %+v", to, from, r)
	}
	return r
}

// UnansweredTimeout is the TCP_USER_TIMEOUT of Unanswered: the first SYN
// and 3 retransmissions, 1 s apart.
const UnansweredTimeout = 3500 * time.Millisecond

// Unanswered Drops to's port in the server namespace, dials it with
// UserTimeout UnansweredTimeout (SYNs at 0, 1, 2, 3 s, given up at 3.5 s)
// and checks that the connect timed out.
func (l *Lab) Unanswered(to netip.AddrPort, from uint16) Result {
	l.t.Helper()
	l.Drop(int(to.Port()))
	r := l.MustConnect(Dial{To: to, From: from, UserTimeout: UnansweredTimeout})[0]
	if !r.TimedOut || r.Connected {
		l.t.Fatalf("netlab: dial %v from port %d: want connect timeout, got %+v", to, from, r)
	}
	return r
}

// ListenConfig tunes Listen. The zero value is a plain server.
type ListenConfig struct {
	// DeferAccept sets TCP_DEFER_ACCEPT (whole seconds): the server keeps
	// a handshake in SYN_RECV, re-sending its SYN/ACK, until data arrives.
	DeferAccept time.Duration
	// NoAccept never calls accept(2): completed handshakes pile up in the
	// accept queue (shrink it with Sysctl(Server, "net.core.somaxconn", N)
	// before Listen).
	NoAccept bool
	// AcceptDelay makes a slow server: it waits AcceptDelay before each
	// accept(2), so that completed handshakes wait in the accept queue.
	AcceptDelay time.Duration
	// AcceptMax, when > 0, stops accepting after that many connections
	// (later handshakes pile up in the accept queue, as with NoAccept).
	AcceptMax int
}

// Listener is a server in the server namespace, listening on [::]:Port
// (IPv4 and IPv6). It answers each request of a Dial with the bytes asked
// for, and closes when the client does, or first when told so
// (CloseServer).
type Listener struct {
	Port     int
	proc     *Proc
	accepted atomic.Int64
}

// Listen starts a Listener on port and returns once it listens.
func (l *Lab) Listen(port int, cfg ListenConfig) *Listener {
	l.t.Helper()
	spec, err := json.Marshal(serveSpec{Port: port, DeferAccept: int(cfg.DeferAccept / time.Second), NoAccept: cfg.NoAccept, AcceptDelay: cfg.AcceptDelay, AcceptMax: cfg.AcceptMax})
	if err != nil {
		l.t.Fatal(err)
	}
	cmd, err := l.helper(Server, "serve", spec)
	if err != nil {
		l.t.Fatal(err)
	}
	ln := &Listener{Port: port}
	ready := make(chan struct{})
	cmd.Stdout = &lineWriter{fn: func(line string) {
		f := strings.Fields(line)
		if len(f) == 0 {
			return
		}
		switch f[0] {
		case "ready":
			close(ready)
		case "accept":
			ln.accepted.Add(1)
		}
	}}
	p, err := l.start(cmd)
	if err != nil {
		l.t.Fatalf("netlab: listen %d: %v", port, err)
	}
	ln.proc = p
	select {
	case <-ready:
	case <-p.done:
		l.t.Fatalf("netlab: listen %d: helper exited: %v: %s", port, p.err, p.Stderr())
	case <-time.After(10 * time.Second):
		l.t.Fatalf("netlab: listen %d: not ready after 10 s: %s", port, p.Stderr())
	}
	return ln
}

// Accepted returns how many connections the listener has accepted.
func (ln *Listener) Accepted() int { return int(ln.accepted.Load()) }

// Close stops the listener (connections still open are reset by the
// kernel as the process exits).
func (ln *Listener) Close() error { return ln.proc.Stop() }

// helper builds the command that runs this binary as a helper in side s.
func (l *Lab) helper(s Side, mode string, spec []byte) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("netlab: cannot find the test binary to re-run: %w", err)
	}
	args := []string{"netns", "exec", l.NS(s)}
	if l.pin {
		args = append(args, "taskset", "-c", pinCPU())
	}
	args = append(args, exe)
	cmd := exec.CommandContext(context.Background(), "ip", args...)
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envSpec+"="+string(spec))
	return cmd, nil
}

// pinCPU returns the first CPU this process may run on (CPU 0 unless a
// cpuset says otherwise), for taskset -c.
func pinCPU() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "0"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			v = strings.TrimSpace(v)
			if i := strings.IndexAny(v, "-,"); i >= 0 {
				v = v[:i]
			}
			if v != "" {
				return v
			}
		}
	}
	return "0"
}
