package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures [New]. TLS and Outbox are required; every other nil
// source leaves its part out of /status and /metrics.
type Options struct {
	// Version is reported by /status and imedge_build_info; empty means
	// "unknown".
	Version string
	// PID is the process id /status reports, so that an operator script
	// can tell which process an admin listener belongs to; zero leaves it
	// out.
	PID int
	// TLS is the callback listener's TLS material (readiness, /status,
	// certificate metrics). Required.
	TLS TLSSource
	// Outbox is the durable outbox (readiness, /status, outbox metrics).
	// Required.
	Outbox Outbox
	// Dispatchers, Receiver, Dedupe, Limiter and Audit are optional; Limiter
	// is nil when rate limiting is off.
	Dispatchers []Dispatcher // one per destination
	Receiver    Receiver
	Dedupe      Dedupe
	Limiter     Limiter
	Audit       Audit
	// Redis, when set, reports the shared state on Redis (imedge_redis_*).
	Redis func() RedisStats
	// Delivery, when set, has its delivery latency histogram exposed.
	Delivery *DeliveryHistogram
	// Egress, when set, reports IM's egress list (--im-egress): metrics
	// imedge_im_egress_*, readiness check im_egress, /status "im_egress".
	Egress Egress
	// Settings, when set, reports the configuration in force (setting name
	// to value) for /status's "config" member. Values must hold no secret
	// (imedge's settings name secret files, never secret values).
	Settings func() map[string]string
	// Decide, when set, has the decision path's metrics exposed
	// (imedge_decide_*) and its decision services' circuits in /status.
	Decide Decide
	// OutboxAPI, when set, serves the outbox operations under /outbox/ to
	// authenticated clients ([OutboxAPI]).
	OutboxAPI *OutboxAPI
	// Pprof mounts net/http/pprof under /debug/pprof/. Off by default: the
	// profiles reveal code paths and memory contents to whoever can reach
	// the admin listener.
	Pprof bool
	// ProbeEvery is how long the outbox write probe's result is reused, so
	// frequent /readyz and /metrics requests cost at most one small fsync
	// per period. Zero means 1 s; negative probes on every request.
	ProbeEvery time.Duration
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the admin endpoint: an http.Handler for the operator endpoints,
// the metrics registry behind /metrics, the callback middleware feeding it,
// and the draining flag. Create it with [New]; it is safe for concurrent
// use. It holds no goroutines of its own; [Server.Serve] runs one listener
// until its context ends.
type Server struct {
	o     Options
	start time.Time
	reg   *prometheus.Registry
	mux   *http.ServeMux
	inst  *instruments

	draining atomic.Bool

	probeMu  sync.Mutex // serialises outbox probes
	probeAt  time.Time  // when probeErr was measured; guarded by probeMu
	probeErr error      // guarded by probeMu
}

// New checks o and returns a Server with its registry populated: imedge's
// collectors, the callback middleware's instruments, the Go runtime and
// process collectors.
func New(o Options) (*Server, error) {
	if o.TLS == nil || o.Outbox == nil {
		return nil, fmt.Errorf("creating admin server: %w: TLS and Outbox are required", ErrInvalidOptions)
	}
	if o.OutboxAPI != nil {
		if err := o.OutboxAPI.check(); err != nil {
			return nil, fmt.Errorf("creating admin server: %w", err)
		}
	}
	if o.Version == "" {
		o.Version = "unknown"
	}
	if o.ProbeEvery == 0 {
		o.ProbeEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, start: o.Now(), reg: prometheus.NewRegistry(), inst: newInstruments(o.Now)}
	cs := append(s.collectors(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, c := range cs {
		if err := s.reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	s.mux = s.routes()
	return s, nil
}

// collectors returns imedge's own metric collectors for s's options (the
// Go runtime and process collectors are not among them): each call makes
// new collectors over the same sources and instruments.
func (s *Server) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{&collector{s: s, d: newDescs()}}
	cs = append(cs, s.inst.collectors()...)
	if s.o.Delivery != nil {
		cs = append(cs, s.o.Delivery.hist)
	}
	if s.o.Egress != nil {
		cs = append(cs, newEgressCollector(s.o.Egress))
	}
	if s.o.Decide != nil {
		cs = append(cs, newDecideCollector(s.o.Decide, s.o.Receiver))
	}
	return cs
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /status", s.serveStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            s.reg,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	s.outboxRoutes(mux)
	if s.o.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Handler returns the admin endpoints' handler.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		s.mux.ServeHTTP(w, r)
	})
}

// SetDraining marks the process as draining: /readyz answers 503 from now
// on. There is no way back; a drain ends with the process.
func (s *Server) SetDraining() {
	if !s.draining.Swap(true) {
		s.o.Logger.Info("admin: draining, /readyz now answers 503")
	}
}

// Serve answers admin requests on ln until ctx ends, then shuts down,
// giving requests in flight up to two seconds. It closes ln. It returns nil
// after ctx ended, or the error that stopped the listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	write := 10 * time.Second
	if s.o.Pprof {
		write = 70 * time.Second // CPU profiles and traces run up to a minute
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving admin endpoints: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}

func (s *Server) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "imedge admin endpoints:\n  /healthz  process alive\n  /readyz   ready for callbacks (JSON)\n  /metrics  Prometheus metrics\n  /status   status snapshot (JSON)")
	if s.o.OutboxAPI != nil {
		fmt.Fprintln(w, "  /outbox/  outbox operations (authenticated; see docs/outbox-api.md)")
	}
	if s.o.Pprof {
		fmt.Fprintln(w, "  /debug/pprof/  profiles")
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	rd := s.readiness()
	code := http.StatusOK
	if !rd.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rd)
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
