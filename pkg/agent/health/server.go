package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Check reports why the agent is not ready, or nil when it is. Checks run on
// every /readyz request, so they must be cheap (read a flag, ask a client
// for its connection state) and never block on the network.
type Check func(ctx context.Context) error

type namedCheck struct {
	name  string
	check Check
}

// checkTimeout bounds one /readyz request: kubelet's default probe timeout
// is 1s, and a probe that hangs is worse than one that fails.
const checkTimeout = 900 * time.Millisecond

// Server serves /healthz, /readyz and /metrics.
type Server struct {
	addr    string
	metrics *Metrics
	log     zerolog.Logger

	mu     sync.RWMutex
	checks []namedCheck
}

// NewServer serves on addr (for example ":8080"); m may be nil, in which
// case /metrics answers 404.
func NewServer(addr string, m *Metrics, log zerolog.Logger) *Server {
	return &Server{addr: addr, metrics: m, log: log.With().Str("component", "health").Logger()}
}

// AddReadyCheck adds a readiness condition; /readyz fails while any fails.
func (s *Server) AddReadyCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name: name, check: c})
}

// Handler is the server's mux, exposed for tests and for embedding.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Alive means the process can answer HTTP; anything more would make
		// the kubelet restart a pod that is merely waiting for NATS.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if reg := s.metrics.Registry(); reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	s.mu.RLock()
	checks := append([]namedCheck(nil), s.checks...)
	s.mu.RUnlock()

	var b strings.Builder
	ready := true
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			ready = false
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
			continue
		}
		fmt.Fprintf(&b, "[+]%s ok\n", c.name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
		b.WriteString("readyz check failed\n")
	} else {
		b.WriteString("readyz check passed\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

// Run serves until ctx is cancelled, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("health server: listen on %s: %w", s.addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (tests use port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("serving /healthz, /readyz and /metrics")
	select {
	case err := <-errc:
		return fmt.Errorf("health server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("health server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("health server: %w", err)
	}
	return nil
}

// Flag is a readiness condition another component sets once, such as "the
// agent key is loaded" or "informer caches have synced".
type Flag struct {
	ok       atomic.Bool
	notReady string
}

// NewFlag starts unset; notReady is what /readyz says until Set(true).
func NewFlag(notReady string) *Flag { return &Flag{notReady: notReady} }

// Set marks the condition met (true) or lost (false).
func (f *Flag) Set(ok bool) { f.ok.Store(ok) }

// Check is the flag as a readiness Check.
func (f *Flag) Check(context.Context) error {
	if f.ok.Load() {
		return nil
	}
	return errors.New(f.notReady)
}
