package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is run's --metrics-addr default: loopback, so nothing is
// exposed unless asked for.
const DefaultAddr = "127.0.0.1:9717"

// Server serves /metrics.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Listen binds addr and serves m on /metrics until Close. A bind error
// names the address and says why in a few words.
func Listen(addr string, m *Metrics) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", addr, listenError(err))
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	s := &Server{
		ln:   ln,
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return s, nil
}

// listenError is the reason in words, without the operation and address.
func listenError(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "address already in use (another tcpsentry running?)"
	case errors.Is(err, syscall.EACCES):
		return "permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no interface of this host has that address"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// Addr is the bound address (with the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the metrics page's URL.
func (s *Server) URL() string { return "http://" + s.Addr() + "/metrics" }

// Close stops serving, letting a scrape under way finish for a second.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
