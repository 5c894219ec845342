package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/certs"
)

// adminServer is the admin listener (health, readiness, metrics, status),
// bound by openAdmin and served by serve. A nil srv means the listener is
// off: the callback handler is then not instrumented.
type adminServer struct {
	srv *admin.Server
	ln  net.Listener
	log *slog.Logger
}

// openAdmin binds the admin listener when one is configured, so that a
// taken port stops imedge at start.
func (s *Server) openAdmin(context.Context, io.Writer) error {
	s.admin = &adminServer{log: s.log}
	ac := s.cfg.Admin
	if !ac.enabled() {
		s.log.Info("admin listener off (--admin-listen \"\")")
		return nil
	}
	o := admin.Options{
		Version: versionString(), PID: os.Getpid(), TLS: s.tls, Outbox: s.box, Dispatchers: s.dispatchers(),
		Receiver: s.recv, Dedupe: s.seen, Audit: s.audit, Delivery: s.timer,
		Pprof: ac.Pprof, Logger: s.log, Redis: s.state.redisStats(), Settings: s.effectiveSettings,
		Decide:    s.decide.svc,
		OutboxAPI: s.outboxAPI(),
	}
	if l, ok := s.limit.(admin.Limiter); ok {
		o.Limiter = l
	}
	if s.egress != nil { // a nil interface, not a typed nil, when off
		o.Egress = s.egress
	}
	srv, err := admin.New(o)
	if err != nil {
		return err
	}
	var tc *tls.Config
	if ac.mTLS() {
		if tc, err = adminTLSConfig(ac); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return fmt.Errorf("--admin-listen: %w (set --admin-listen \"\" to turn the admin listener off)", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	s.onClose(func() { ln.Close() })
	s.admin.srv, s.admin.ln = srv, ln
	s.log.Info("admin listening", "addr", ln.Addr().String(), "mtls", tc != nil, "pprof", ac.Pprof)
	return nil
}

// serve serves the admin listener in a goroutine added to wg until ctx
// ends. Nothing to do when the listener is off.
func (a *adminServer) serve(ctx context.Context, wg *sync.WaitGroup) {
	if a.srv == nil {
		return
	}
	wg.Go(func() {
		if err := a.srv.Serve(ctx, a.ln); err != nil {
			a.log.Error("admin listener stopped", "err", err)
		}
	})
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
