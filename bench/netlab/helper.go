package netlab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of a helper process: the mode and its JSON spec.
const (
	envHelper = "NETLAB_HELPER"
	envSpec   = "NETLAB_SPEC"
)

// Main must be the first call of TestMain in every package that uses a Lab
// (and of main in a command that does):
//
//	func TestMain(m *testing.M) {
//		netlab.Main()
//		os.Exit(m.Run())
//	}
//
// The lab starts its socket endpoints by running the same binary again
// inside a namespace (`ip netns exec NS taskset -c 0 BINARY`) with
// NETLAB_HELPER set; Main then runs that helper and exits instead of
// returning. Otherwise Main returns at once.
func Main() {
	mode := os.Getenv(envHelper)
	if mode == "" {
		mainCalled.Store(true)
		return
	}
	spec := []byte(os.Getenv(envSpec))
	var err error
	switch mode {
	case "serve":
		var cfg serveSpec
		if err = json.Unmarshal(spec, &cfg); err == nil {
			err = serve(cfg)
		}
	case "dial":
		var ds dialSpec
		if err = json.Unmarshal(spec, &ds); err == nil {
			err = dialAll(ds)
		}
	case "craft":
		var cs craftSpec
		if err = json.Unmarshal(spec, &cs); err == nil {
			err = craft(cs)
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab helper %s: %v\n", mode, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// The request line of the lab's protocol: "TSN <response-bytes> <mode>",
// padded with dots to the request size and ended by "\n". mode is one of
// closeKeep (another request follows) or a Close name.
const closeKeep = "keep"

type serveSpec struct {
	Port        int
	DeferAccept int // seconds
	NoAccept    bool
	AcceptDelay time.Duration
	AcceptMax   int
}

// serve listens on [::]:Port (IPv4 and IPv6), prints "ready", then one
// line "accept REMOTE" per accepted connection, and answers each request
// line with the bytes it asks for until the client closes, or closes first
// when the request says "server". It runs until SIGTERM.
func serve(cfg serveSpec) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		if cfg.DeferAccept <= 0 {
			return nil
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, cfg.DeferAccept)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("::", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-term
		os.Exit(0)
	}()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	say("ready %s", ln.Addr())
	if cfg.NoAccept {
		select {} // completed handshakes stay in the accept queue
	}
	for n := 0; cfg.AcceptMax == 0 || n < cfg.AcceptMax; n++ {
		time.Sleep(cfg.AcceptDelay)
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		say("accept %s", c.RemoteAddr())
		go answer(c)
	}
	select {} // AcceptMax reached: accept no more
}

func answer(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return // EOF (client FIN) or reset: close
		}
		f := strings.Fields(strings.TrimRight(line, ".\n"))
		if len(f) != 3 || f[0] != "TSN" {
			return
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			return
		}
		if _, err := c.Write(payload(n)); err != nil {
			return
		}
		switch Close(f[2]) {
		case CloseServer:
			return
		case CloseServerReset:
			_ = c.(*net.TCPConn).SetLinger(0) // close sends RST
			return
		}
	}
}

// payload returns n bytes of a printable repeating pattern.
func payload(n int) []byte {
	const pat = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = pat[i%len(pat)]
	}
	return b
}

// request builds one request line asking for resp bytes, at least size
// bytes long.
func request(size, resp int, mode string) []byte {
	b := []byte(fmt.Sprintf("TSN %d %s ", resp, mode))
	for len(b) < size-1 {
		b = append(b, '.')
	}
	return append(b, '\n')
}

// connGap separates the connections of one Connect call, so that each one
// has ended on the wire before the next begins.
const connGap = 20 * time.Millisecond

func dialAll(ds dialSpec) error {
	start := time.Now()
	res := make([]Result, len(ds.Dials))
	var wg sync.WaitGroup
	for i, d := range ds.Dials {
		if ds.Parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Until(start.Add(d.At)))
				res[i] = dialOne(d)
			}()
			continue
		}
		if i > 0 {
			time.Sleep(connGap)
		}
		time.Sleep(time.Until(start.Add(d.At)))
		res[i] = dialOne(d)
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(res)
}

func dialOne(d Dial) (r Result) {
	r.Dial = d
	network := "tcp4"
	if d.To.Addr().Is6() {
		network = "tcp6"
	}
	dl := net.Dialer{
		Timeout: d.timeout(),
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if d.SynRetries > 0 {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_SYNCNT, d.SynRetries)
				}
				if serr == nil && d.UserTimeout > 0 {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.UserTimeout/time.Millisecond))
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	if d.From != 0 {
		dl.LocalAddr = &net.TCPAddr{Port: int(d.From)}
	}
	start := time.Now()
	c, err := dl.Dial(network, d.To.String())
	defer func() { r.Elapsed = time.Since(start) }()
	if err != nil {
		r.setErr(err)
		return r
	}
	tc := c.(*net.TCPConn)
	defer tc.Close()
	r.Local = tc.LocalAddr().(*net.TCPAddr).AddrPort()
	r.Connected = true
	_ = tc.SetDeadline(time.Now().Add(d.ioTimeout()))
	if d.Delay > 0 {
		time.Sleep(d.Delay)
	}

	closeMode := d.Close
	if closeMode == "" {
		closeMode = CloseClient
	}
	for i := 0; i < d.Exchanges; i++ {
		if i > 0 && d.Pause > 0 {
			time.Sleep(d.Pause)
		}
		mode := closeKeep
		if i == d.Exchanges-1 {
			mode = string(closeMode)
		}
		if _, err := tc.Write(request(d.Request, d.Response, mode)); err != nil {
			r.setErr(err)
			return r
		}
		n, err := io.ReadFull(tc, make([]byte, d.Response))
		r.Received += n
		if err != nil {
			r.setErr(err)
			return r
		}
	}
	switch {
	case closeMode == CloseReset:
		_ = tc.SetLinger(0) // close sends RST
	case closeMode == CloseServer && d.Exchanges > 0:
		// The server closes first: wait for its FIN, then close.
		if _, err := io.Copy(io.Discard, tc); err != nil {
			r.setErr(err)
		}
	case closeMode == CloseServerReset && d.Exchanges > 0:
		// The server resets: wait for its RST (a FIN would be an error).
		_, err := io.Copy(io.Discard, tc)
		if !errors.Is(err, syscall.ECONNRESET) {
			r.setErr(fmt.Errorf("want a reset from the server, got %v", err))
		}
	default:
		// FIN first, then wait for the server's FIN, so that the
		// connection has ended on the wire when Connect moves on.
		if err := tc.CloseWrite(); err != nil {
			r.setErr(err)
			return r
		}
		if _, err := io.Copy(io.Discard, tc); err != nil {
			r.setErr(err)
		}
	}
	return r
}

func (r *Result) setErr(err error) {
	r.Err = err.Error()
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		r.Refused = true
	case errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		r.TimedOut = true
	}
}
