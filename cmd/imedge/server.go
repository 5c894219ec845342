package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/egress"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

// Server is one `imedge serve`: the public listener and everything behind
// it, built from a validated Config by NewServer and run by Run. Its fields
// read in the order a callback meets them.
type Server struct {
	cfg     Config
	catalog *catalog.Catalog // the IM callback commands imedge knows
	log     *slog.Logger
	level   *slog.LevelVar // the operational log's level

	front  *edgeServer     // edge listener (admission, source allow-list, TLS handshake) and the HTTP servers
	egress *egress.Source  // IM's egress list for the source allow-list; nil without --im-egress
	tls    *tlsconf.Source // server certificate and client-certificate verification
	recv   *receiver.Handler
	seen   *dedupe.Set      // the local dedupe window (also the fail-open fallback for Redis)
	limit  receiver.Limiter // the local per-ClientIP limiter; nil when --rate 0
	state  sharedState      // dedupe and limiter as the receiver sees them: local or on Redis
	box    *forward.Outbox
	decide decidePath               // before-callbacks: decision services and their limiter
	dests  []*destination           // the default destination first, then the routes
	timer  *admin.DeliveryHistogram // delivery latency for the admin metrics

	admin     *adminServer // beside the data path: health, metrics, /status
	adminCred string       // the local credential of a plain-HTTP admin listener (credential.go)
	audit     *audit.Logger
	auditFile *audit.File // nil when the audit log is stderr
	accessLog *audit.File // nil without --access-log

	edge   *edge.Listener // the public listener, for SIGHUP's --allow-source
	reload *configReload  // nil: SIGHUP reloads the TLS files only

	reloaded int      // dedupe keys reloaded from the outbox at start
	closers  []func() // undo what NewServer opened, run in reverse
}

// NewServer builds the server from cfg, which Validate accepted. The parts
// are built from the inside out, each handed to the one in front of it:
// the audit log every part writes to, the TLS material, the outbox and its
// delivery, the dedupe window and limits, the decision path, the receiver,
// IM's egress list, the admin listener beside them, and last the public
// listener, so that nothing listens before everything behind it works. On error everything opened is closed.
func NewServer(ctx context.Context, cfg Config, logger *slog.Logger, level *slog.LevelVar, stderr io.Writer) (*Server, error) {
	s := &Server{cfg: cfg, log: logger, level: level, catalog: catalog.New()}
	for _, open := range []func(context.Context, io.Writer) error{
		s.openAudit, s.openTLS, s.openOutbox, s.openDelivery, s.openDedupe, s.openLimits,
		s.openDecide, s.openReceiver, s.openEgress, s.openCredential, s.openAdmin, s.openEdge,
	} {
		if err := open(ctx, stderr); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close releases what NewServer opened. Run calls it; a Server that never
// ran must be closed by its builder.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func (s *Server) onClose(f func()) { s.closers = append(s.closers, f) }

// openAudit opens the audit stream: its own file, or stderr, never mixed
// into the operational logger's handler.
func (s *Server) openAudit(_ context.Context, stderr io.Writer) error {
	w := stderr
	if path := s.cfg.Logs.AuditLog; path != "" {
		f, err := audit.OpenFile(path)
		if err != nil {
			return fmt.Errorf("--audit-log: %w", err)
		}
		s.onClose(func() { f.Close() })
		w, s.auditFile = f, f
	}
	s.audit = audit.New(w, audit.Options{Interval: s.cfg.Logs.AuditInterval, Burst: s.cfg.Logs.AuditBurst})
	s.onClose(func() { s.audit.Flush(true) })
	if path := s.cfg.Logs.AccessLog; path != "" {
		f, err := audit.OpenFile(path) // append-only, 0600, reopened on SIGUSR1
		if err != nil {
			return fmt.Errorf("--access-log: %w", err)
		}
		s.onClose(func() { f.Close() })
		s.accessLog = f
	}
	return nil
}

// accessLogger is the receiver's access log, or nil without --access-log.
func (s *Server) accessLogger() *slog.Logger {
	if s.accessLog == nil {
		return nil
	}
	return slog.New(slog.NewJSONHandler(s.accessLog, &slog.HandlerOptions{ReplaceAttr: durationsAsStrings}))
}

// openTLS loads the server certificate and the client-certificate checks.
func (s *Server) openTLS(ctx context.Context, _ io.Writer) error {
	src, err := tlsconf.New(ctx, s.cfg.TLS.options(s.cfg, &tlsconf.Options{Audit: s.audit, Logger: s.log}))
	if err != nil {
		return err
	}
	s.onClose(src.Close)
	s.tls = src
	return nil
}

// openDedupe builds the dedupe window and reloads it with the ids the
// outbox accepted within it, so a restart does not forward a retry twice.
func (s *Server) openDedupe(context.Context, io.Writer) error {
	st := s.cfg.State
	seen, err := dedupe.New(dedupe.Options{Size: st.DedupeSize, TTL: st.DedupeWindow})
	if err != nil {
		return err
	}
	err = s.box.AcceptedSince(time.Now().Add(-st.DedupeWindow), func(id string, at time.Time) {
		seen.Load(id, at)
		s.reloaded++
	})
	if err != nil {
		return fmt.Errorf("reloading dedupe keys from the outbox: %w", err)
	}
	s.seen = seen
	return nil
}

// openLimits builds the per-ClientIP limiter and, with --redis-url, the
// shared dedupe and limits that fall back to the local ones.
func (s *Server) openLimits(context.Context, io.Writer) error {
	if s.cfg.Limits.Rate > 0 {
		l, err := receiver.NewClientLimiter(s.cfg.Limits.options())
		if err != nil {
			return err
		}
		s.limit = l
	}
	shared, err := s.cfg.Cluster.openShared(s.cfg, s.seen, s.limit, s.log)
	if err != nil {
		return err
	}
	s.onClose(shared.close)
	s.state = shared
	return nil
}

// openReceiver builds the callback handler in front of the outbox.
func (s *Server) openReceiver(context.Context, io.Writer) error {
	im := s.cfg.IM
	h, err := receiver.New(receiver.Options{
		AppID: im.SdkAppid, Path: s.cfg.Server.Path, MaxBody: im.MaxBody, MaxAccountBytes: im.MaxAccountBytes,
		Token: im.Token, SignWindow: im.SignWindow, RequireClientCert: s.cfg.TLS.ClientAuth == "require",
		Catalog: s.catalog, Commands: im.Commands, UnknownCommands: receiver.UnknownPolicy(im.UnknownCommands),
		Validation: receiver.ValidationMode(im.Validation), AccessLog: s.accessLogger(),
		Sink: outboxSink{box: s.box, routes: s.cfg.Delivery}, Seen: s.state.seen, Limiter: s.state.limiter, Audit: s.audit, Logger: s.log,
		Decider: s.decide.svc, DecideLimiter: s.decide.limit,
	})
	if err != nil {
		return err
	}
	s.recv = h
	return nil
}

// Run serves until ctx ends, then drains: requests in flight finish within
// --shutdown-timeout and pending events stay in the outbox. ready, if not
// nil, is called with the bound address once imedge listens. Run closes the
// server when it returns.
func (s *Server) Run(ctx context.Context, ready func(addr string)) error {
	defer s.Close()
	if err := applySandbox(s.cfg, s.log); err != nil {
		return err
	}
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopBG(); wg.Wait() }()
	if err := s.cfg.ACME.start(bg, s.tls, s.front.ln); err != nil {
		return err
	}
	s.admin.serve(bg, &wg)
	s.logListening()
	s.logReloadOff()
	s.startBackground(bg, &wg)

	errc := make(chan error, 1)
	go func() { errc <- s.front.serve() }()
	if pf := s.cfg.Server.PIDFile; pf != "" {
		if err := writePIDFile(pf); err != nil {
			s.front.close()
			<-errc
			return err
		}
		defer func() {
			if err := os.Remove(pf); err != nil {
				s.log.Warn("removing --pid-file", "err", err)
			}
		}()
	}
	if ready != nil {
		ready(s.front.ln.Addr().String())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return s.drain(ctx, errc, stopBG, &wg)
}

// logListening writes the start line: what is served, from where, how.
func (s *Server) logListening() {
	c := s.cfg
	st := s.tls.Status()
	s.log.Info("listening", "version", versionString(), "addr", s.front.ln.Addr().String(), "path", c.Server.Path,
		"sdkappid", c.IM.SdkAppid, "client_auth", c.TLS.ClientAuth, "token", c.IM.tokenState(),
		"forward_url", redactURL(c.Delivery.URL), "routes", len(c.Delivery.Routes), "state_dir", c.State.Dir, "state_dir_from", c.State.dirSource,
		"outbox", c.State.spoolDir(), "dedupe_keys_reloaded", s.reloaded,
		"server_cert_sha256", st.ServerCert.SHA256, "gomaxprocs", runtime.GOMAXPROCS(0))
	if c.TLS.ClientAuth == "none" {
		s.log.Warn("client certificates are NOT required: only the IM token authenticates callers")
		if !c.Egress.On && len(c.Edge.AllowSource) == 0 {
			s.log.Warn("token only and any address may connect: a captured callback URL can be replayed with any body within --sign-window; admit only IM with --im-egress or --allow-source")
		}
	}
}

// startBackground starts the goroutines that live as long as the server:
// delivery, certificate watching, audit flushing and signal handling.
func (s *Server) startBackground(bg context.Context, wg *sync.WaitGroup) {
	s.runDelivery(bg, wg)
	if s.egress != nil {
		wg.Go(func() { s.egress.Run(bg) })
	}
	if iv := s.cfg.TLS.ReloadInterval; iv > 0 {
		wg.Go(func() { s.tls.Watch(bg, iv) })
	}
	if iv := s.cfg.Logs.AuditInterval; iv > 0 {
		wg.Go(func() { every(bg, iv, func() { s.audit.Flush(false) }) })
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	wg.Go(func() {
		defer signal.Stop(sigs)
		for {
			select {
			case <-bg.Done():
				return
			case sig := <-sigs:
				s.handleSignal(bg, sig)
			}
		}
	})
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// drain stops accepting, lets requests in flight finish, then stops the
// background work.
func (s *Server) drain(ctx context.Context, errc <-chan error, stopBG func(), wg *sync.WaitGroup) error {
	s.admin.setDraining()
	s.log.Info("draining", "timeout", s.cfg.Server.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Server.ShutdownTimeout)
	defer cancel()
	err := s.front.shutdown(sctx)
	if err != nil {
		s.front.close()
		err = fmt.Errorf("shutting down: %w", err)
	}
	<-errc
	stopBG()
	wg.Wait()
	stats, _ := s.box.Stats()
	s.log.Info("stopped", "pending_events", stats.Pending, "dead_letters", stats.Dead)
	return err
}

// handleSignal reloads on SIGHUP and reopens the audit log on SIGUSR1.
func (s *Server) handleSignal(ctx context.Context, sig os.Signal) {
	switch sig {
	case syscall.SIGHUP:
		if s.tls.Reload(ctx) == nil { // on failure tlsconf logged it and keeps the previous material
			s.log.Info("reloaded", "server_cert_sha256", s.tls.Status().ServerCert.SHA256)
		}
		s.reloadConfig(ctx)
	case syscall.SIGUSR1:
		for name, f := range map[string]*audit.File{"audit log": s.auditFile, "access log": s.accessLog} {
			if f == nil {
				continue
			}
			if err := f.Reopen(); err != nil {
				s.log.Error("reopening "+name, "err", err)
				continue
			}
			s.log.Info(name + " reopened")
		}
	}
}

// httpServer is the net/http server for the callback handler, with every
// timeout set.
func (s *Server) httpServer(ctx context.Context, h http.Handler) *http.Server {
	c := s.cfg.Server
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTO,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
}
