package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

// adminDeps are the parts of a running server the admin listener reports on.
type adminDeps struct {
	tls        *tlsconf.Source
	outbox     *forward.Outbox
	dispatcher *forward.Dispatcher
	receiver   *receiver.Handler
	seen       *dedupe.Set
	limiter    receiver.Limiter // nil when rate limiting is off
	audit      *audit.Logger
	delivery   *admin.DeliveryTimer    // nil: no delivery latency histogram
	redis      func() admin.RedisStats // nil: no --redis-url
}

// adminServer is the running admin listener (health, readiness, metrics,
// status). Its goroutine is added to the WaitGroup given to startAdmin and
// ends when that context ends. A nil srv means the listener is off: the
// callback handler is then not instrumented.
type adminServer struct{ srv *admin.Server }

// timeDeliveries wraps the deliverer so the admin listener can report
// delivery latency.
func timeDeliveries(d forward.Deliverer) *admin.DeliveryTimer { return admin.NewDeliveryTimer(d) }

// startAdmin starts the admin listener when one is configured. It binds
// before returning, so a taken port stops imedge at start.
func startAdmin(ctx context.Context, wg *sync.WaitGroup, cfg Config, deps adminDeps, logger *slog.Logger) (*adminServer, error) {
	ac := cfg.Admin
	if !ac.enabled() {
		logger.Info("admin listener off (--admin-listen \"\")")
		return &adminServer{}, nil
	}
	o := admin.Options{
		Version: versionString(), TLS: deps.tls, Outbox: deps.outbox, Dispatcher: deps.dispatcher,
		Receiver: deps.receiver, Dedupe: deps.seen, Audit: deps.audit, Delivery: deps.delivery,
		Pprof: ac.Pprof, Logger: logger, Redis: deps.redis,
	}
	if l, ok := deps.limiter.(admin.Limiter); ok {
		o.Limiter = l
	}
	srv, err := admin.New(o)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if ac.mTLS() {
		if tc, err = adminTLSConfig(ac); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen: %w (set --admin-listen \"\" to turn the admin listener off)", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	logger.Info("admin listening", "addr", ln.Addr().String(), "mtls", tc != nil, "pprof", ac.Pprof)
	wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			logger.Error("admin listener stopped", "err", err)
		}
	})
	return &adminServer{srv: srv}, nil
}

// adminTLSConfig loads the admin listener's certificate and client CAs: only
// clients with a certificate from those CAs get past the handshake.
func adminTLSConfig(ac adminConfig) (*tls.Config, error) {
	cert, err := certs.LoadKeyPair(ac.CertFile, ac.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-cert/--admin-key: %w", err)
	}
	pool, _, err := certs.LoadPool(ac.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--admin-client-ca: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// instrument wraps the callback handler to record request metrics.
func (a *adminServer) instrument(h http.Handler) http.Handler {
	if a == nil || a.srv == nil {
		return h
	}
	return a.srv.Instrument(h)
}

// setDraining marks the server as draining: /readyz answers 503 from now on.
func (a *adminServer) setDraining() {
	if a != nil && a.srv != nil {
		a.srv.SetDraining()
	}
}
