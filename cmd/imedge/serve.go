package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, help, err := parseServeConfig(args, getenv, stderr)
	if help {
		return nil
	}
	if err != nil {
		return err
	}
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := newLogger(stderr, cfg.LogFormat, level)

	var dev *devEnv
	if cfg.Dev {
		if dev, err = setUpDev(ctx, &cfg, stdout, logger); err != nil {
			return err
		}
		defer dev.Close()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return serve(ctx, cfg, logger, stderr, func(addr string) {
		if dev != nil {
			dev.PrintWelcome(addr)
		}
	})
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

// outboxSink adapts the durable outbox to receiver.Sink.
type outboxSink struct {
	box *forward.Outbox
}

func (s outboxSink) Accept(ctx context.Context, ev receiver.Event) error {
	err := s.box.Append(ctx, forward.Event{
		Destination: forward.DefaultDestination, // routes (issue 17.4) pick per command
		ID:          ev.ID, AppID: ev.AppID, Command: ev.Command, ClientIP: ev.ClientIP, OptPlatform: ev.OptPlatform,
		Identity: ev.Identity, CertSHA256: ev.CertSHA256, RequestID: ev.RequestID, ReceivedAt: ev.ReceivedAt, Body: ev.Body,
		BodyJSON: true, // the receiver accepts only valid JSON (FuzzBody checks it)
	})
	if errors.Is(err, forward.ErrFull) {
		return fmt.Errorf("%w: %w", receiver.ErrSinkFull, err)
	}
	// No Dispatcher.Notify: the event becomes deliverable when the outbox's
	// applier has stored it, and the outbox wakes the dispatcher then; a
	// wake-up per callback here only cost a context switch.
	return err
}

// serve runs the receiver until ctx ends, then drains. ready is called with
// the bound address once the listener is open.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, stderr io.Writer, ready func(addr string)) error {
	// Audit stream: its own file or stderr, never mixed into the operational
	// logger's handler.
	var auditW io.Writer = stderr
	var auditFile *audit.File
	if cfg.AuditLog != "" {
		f, err := audit.OpenFile(cfg.AuditLog)
		if err != nil {
			return fmt.Errorf("--audit-log: %w", err)
		}
		defer f.Close()
		auditW, auditFile = f, f
	}
	aud := audit.New(auditW, audit.Options{Interval: cfg.AuditInterval, Burst: cfg.AuditBurst})
	defer aud.Flush(true)

	ca, err := tlsconf.ParseClientAuth(cfg.ClientAuth)
	if err != nil {
		return err
	}
	gcPercent, memoryLimit, restoreMemory := applyMemorySettings(cfg)
	defer restoreMemory()
	maxProcs, restoreProcs := applyMaxProcs(cfg)
	defer restoreProcs()
	tlsOpts := tlsconf.Options{
		CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, ClientCAFile: cfg.ClientCAFile,
		ClientCRLFiles: cfg.ClientCRLFiles, CRLFailClosed: cfg.CRLFailClosed, ClientAuth: ca,
		AllowedClients: cfg.AllowClients, AllowedClientsFile: cfg.AllowClientsFile, ServerName: cfg.ServerName, Curves: cfg.Curves, Audit: aud, Logger: logger,
	}
	cfg.ACME.apply(&tlsOpts)
	src, err := tlsconf.New(ctx, tlsOpts)
	if err != nil {
		return err
	}
	defer src.Close()

	box, err := forward.OpenOutbox(forward.OutboxOptions{
		Dir: cfg.spoolDir(), MaxEvents: cfg.OutboxMaxEvents, MaxBytes: cfg.OutboxMaxBytes,
		RememberFor: cfg.DedupeWindow, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("opening outbox: %w", err)
	}
	defer box.Close()

	client, err := forward.NewClient(forward.ClientOptions{
		URL: cfg.ForwardURL, CAFile: cfg.ForwardCA, CertFile: cfg.ForwardCert, KeyFile: cfg.ForwardKey,
		Timeout: cfg.ForwardTimeout, SigningSecret: cfg.ForwardSecret, MaxConns: cfg.ForwardConcurrency,
	})
	if err != nil {
		return err
	}
	timed := timeDeliveries(client) // delivery latency for the admin metrics
	disp, err := forward.NewDispatcher(forward.DispatcherOptions{
		Outbox: box, Deliverer: withBatching(timed, client, cfg.ForwardBatch), BatchSize: cfg.ForwardBatch, BatchWait: cfg.ForwardBatchWait,
		Concurrency: cfg.ForwardConcurrency,
		BackoffBase: cfg.RetryBase, BackoffMax: cfg.RetryMax, MaxAttempts: cfg.MaxAttempts, MaxAge: cfg.MaxAge,
		Logger: logger,
	})
	if err != nil {
		return err
	}

	seen, err := dedupe.New(dedupe.Options{Size: cfg.DedupeSize, TTL: cfg.DedupeWindow})
	if err != nil {
		return err
	}
	reloaded := 0
	if err := box.AcceptedSince(time.Now().Add(-cfg.DedupeWindow), func(id string, at time.Time) {
		seen.Load(id, at)
		reloaded++
	}); err != nil {
		return fmt.Errorf("reloading dedupe keys from the outbox: %w", err)
	}

	var limiter receiver.Limiter
	if cfg.Rate > 0 {
		l, err := receiver.NewClientLimiter(receiver.LimiterOptions{
			Rate: cfg.Rate, Burst: cfg.Burst, IPv6Prefix: cfg.RateIPv6Prefix,
			MaxKeys: cfg.RateMaxKeys, Exempt: cfg.RateLimitExempt,
		})
		if err != nil {
			return err
		}
		limiter = l
	}
	shared, err := cfg.Cluster.openShared(cfg, seen, limiter, logger)
	if err != nil {
		return err
	}
	defer shared.close()
	h, err := receiver.New(receiver.Options{
		AppID: cfg.SdkAppid, Path: cfg.Path, MaxBody: cfg.MaxBody, MaxAccountBytes: cfg.MaxAccountBytes,
		Token: cfg.Token, SignWindow: cfg.SignWindow, RequireClientCert: cfg.ClientAuth == "require",
		Sink: outboxSink{box: box}, Seen: shared.seen, Limiter: shared.limiter, Audit: aud, Logger: logger,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopBG(); wg.Wait() }()
	adm, err := startAdmin(bg, &wg, cfg, adminDeps{tls: src, outbox: box, dispatcher: disp, receiver: h,
		seen: seen, limiter: limiter, audit: aud, delivery: timed, redis: shared.redisStats()}, logger)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           adm.instrument(h),
		ReadHeaderTimeout: cfg.ReadHeaderTO,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	configureEdgeServer(srv, cfg)
	ln, err := listenEdge(cfg, src.ServerConfig(), aud, logger)
	if err != nil {
		return err
	}
	front := newEdgeServer(srv, cfg, ln, logger)
	if err := applySandbox(cfg, logger); err != nil {
		ln.Close()
		return err
	}
	if err := cfg.ACME.start(bg, src, ln); err != nil {
		ln.Close()
		return err
	}
	st := src.Status()
	logger.Info("listening", "addr", ln.Addr().String(), "path", cfg.Path, "sdkappid", cfg.SdkAppid,
		"client_auth", cfg.ClientAuth, "token", tokenState(cfg), "forward_url", redactURL(cfg.ForwardURL),
		"outbox", cfg.spoolDir(), "dedupe_keys_reloaded", reloaded, "server_cert_sha256", st.ServerCert.SHA256,
		"gc_percent", gcPercent, "memory_limit", memoryLimit, "max_procs", maxProcs)
	if cfg.ClientAuth == "none" {
		logger.Warn("client certificates are NOT required: only the IM token authenticates callers")
	}

	wg.Go(func() {
		if err := disp.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("delivery workers stopped", "err", err)
		}
	})
	if cfg.ReloadInterval > 0 {
		wg.Go(func() { src.Watch(bg, cfg.ReloadInterval) })
	}
	if cfg.AuditInterval > 0 {
		wg.Go(func() {
			t := time.NewTicker(cfg.AuditInterval)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					aud.Flush(false)
				}
			}
		})
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	wg.Go(func() {
		for {
			select {
			case <-bg.Done():
				return
			case s := <-sigs:
				handleSignal(bg, s, src, auditFile, logger)
			}
		}
	})

	errc := make(chan error, 1)
	go func() { errc <- front.serve() }()
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	adm.setDraining()
	logger.Info("draining", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	shutErr := front.shutdown(sctx)
	if shutErr != nil {
		front.close()
		shutErr = fmt.Errorf("shutting down: %w", shutErr)
	}
	<-errc
	stopBG()
	wg.Wait()
	stats, _ := box.Stats()
	logger.Info("stopped", "pending_events", stats.Pending, "dead_letters", stats.Dead)
	return shutErr
}

func handleSignal(ctx context.Context, s os.Signal, src *tlsconf.Source, auditFile *audit.File, logger *slog.Logger) {
	switch s {
	case syscall.SIGHUP:
		if src.Reload(ctx) != nil {
			return // tlsconf logged the failure and keeps serving the previous material
		}
		logger.Info("reloaded", "server_cert_sha256", src.Status().ServerCert.SHA256)
	case syscall.SIGUSR1:
		if auditFile == nil {
			return
		}
		if err := auditFile.Reopen(); err != nil {
			logger.Error("reopening audit log", "err", err)
			return
		}
		logger.Info("audit log reopened")
	}
}

func tokenState(c Config) string {
	if len(c.Token) == 0 {
		return "off"
	}
	return "on (" + c.TokenSource + ")"
}

// redactURL drops userinfo and query from u for logs.
func redactURL(u string) string {
	if i := strings.Index(u, "?"); i >= 0 {
		u = u[:i] + "?…"
	}
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			u = u[:j+3] + "…@" + u[i+1:]
		}
	}
	return u
}
