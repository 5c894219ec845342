package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/sandbox"
)

// openEdge opens the public listener: a TCP listener wrapped in an
// edge.Listener, which admits connections (--max-conns, --max-conns-per-ip,
// --allow-source, PROXY protocol) and completes their TLS handshake under
// --handshake-timeout before net/http sees them (HTTP/2 connections as
// *tls.Conn, HTTP/1 ones as a plaintext view that lingers when closed
// after an answer; see package edge); then the net/http server over it,
// serving the receiver through the admin's instrumentation.
func (s *Server) openEdge(ctx context.Context, _ io.Writer) error {
	c, e := s.cfg, s.cfg.Edge
	stages, err := c.Cluster.stages(s.audit, s.log)
	if err != nil {
		return err
	}
	var allowSet edge.SourceSet // a nil interface unless --im-egress: a typed nil would fail closed
	if s.egress != nil {
		allowSet = s.egress
	}
	tlsConfig := s.tls.ServerConfig()
	if e.HTTP2Off {
		tlsConfig = edge.WithoutHTTP2(tlsConfig)
	}
	inner, err := net.Listen("tcp", c.Server.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.Server.Listen, err)
	}
	ln, err := edge.New(inner, edge.Options{
		TLSConfig:        tlsConfig,
		HandshakeTimeout: e.HandshakeTimeout,
		MaxConns:         e.MaxConns,
		MaxConnsPerIP:    e.MaxConnsPerIP,
		AllowSources:     e.AllowSource,
		AllowSet:         allowSet,
		Stages:           stages, // PROXY v2 first, so the checks after it see the client behind the balancer
		Audit:            s.audit,
		Logger:           s.log,
	})
	if err != nil {
		inner.Close()
		return fmt.Errorf("starting the edge listener: %w", err)
	}
	s.onClose(func() { ln.Close() })
	s.edge = ln
	srv := s.httpServer(ctx, s.admin.instrument(s.recv))
	configureEdgeServer(srv, c)
	s.front = &edgeServer{std: srv, ln: ln}
	s.logEdge()
	return nil
}

// logEdge writes the listener's limits at start.
func (s *Server) logEdge() {
	c, e := s.cfg.Server, s.cfg.Edge
	allow := "any"
	switch {
	case s.egress != nil:
		allow = fmt.Sprintf("IM egress list (%d networks) and %v", s.egress.Status().Entries, e.AllowSource)
	case len(e.AllowSource) > 0:
		allow = fmt.Sprint(e.AllowSource)
	}
	s.log.Info("edge limits", "handshake_timeout", e.HandshakeTimeout.String(), "max_conns", e.MaxConns,
		"max_conns_per_ip", e.MaxConnsPerIP, "allow_source", allow, "http2", !e.HTTP2Off,
		"http2_max_streams", e.HTTP2MaxStreams, "read_header_timeout", c.ReadHeaderTO.String(),
		"read_timeout", c.ReadTimeout.String(), "write_timeout", c.WriteTimeout.String(),
		"idle_timeout", c.IdleTimeout.String(), "max_header_bytes", c.MaxHeaderBytes, "max_body", s.cfg.IM.MaxBody)
}

// configureEdgeServer applies the edge limits that live on http.Server:
// HTTP/2 on or off and its limits, and the hooks through which the edge
// listener audits the requests net/http refuses on its own.
func configureEdgeServer(srv *http.Server, cfg Config) {
	e := cfg.Edge
	if e.HTTP2Off {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		srv.Protocols = p
	} else {
		srv.HTTP2 = &http.HTTP2Config{
			MaxConcurrentStreams: e.HTTP2MaxStreams,
			MaxReadFrameSize:     e.HTTP2MaxFrame,
			// A peer that stops reading is dropped like an HTTP/1 one.
			WriteByteTimeout: cfg.Server.WriteTimeout,
		}
	}
	srv.Handler = edge.Observe(srv.Handler)
	if prev := srv.ConnContext; prev != nil {
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return edge.ConnContext(prev(ctx, c), c)
		}
	} else {
		srv.ConnContext = edge.ConnContext
	}
	if prev := srv.ConnState; prev != nil {
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			edge.ConnState(c, s)
			prev(c, s)
		}
	} else {
		srv.ConnState = edge.ConnState
	}
}

// edgeServer serves the edge listener's connections with net/http (HTTP/1
// and HTTP/2), with the handler, timeouts and audit hooks
// configureEdgeServer set.
type edgeServer struct {
	ln  net.Listener // the edge listener
	std *http.Server
}

// serve serves the listener until shutdown; it returns
// http.ErrServerClosed then.
func (e *edgeServer) serve() error { return e.std.Serve(e.ln) }

// shutdown stops accepting, closes idle connections and waits for the
// requests in progress, or for ctx.
func (e *edgeServer) shutdown(ctx context.Context) error { return e.std.Shutdown(ctx) }

// close closes every connection at once.
func (e *edgeServer) close() { e.std.Close() }

// applySandbox confines the process with Landlock (unless --no-sandbox)
// once every listener and long-lived file is open: from then on it reads
// only the files the configuration names (certificates, keys, CA bundles,
// CRLs, allow-list; their directories, so rotation by rename works) and
// writes only its state, outbox, ACME storage and audit-log paths. The
// start log says which mode is active and why.
func applySandbox(cfg Config, logger *slog.Logger) error {
	if cfg.Edge.NoSandbox {
		logger.Warn("sandbox", "mode", sandbox.ModeOff, "reason", "--no-sandbox given")
		return nil
	}
	o := sandbox.Options{WriteDirs: []string{cfg.State.Dir, cfg.State.spoolDir()}}
	o.ReadFiles = append(o.ReadFiles, cfg.TLS.readablePaths()...)
	// SIGHUP re-reads the configuration file and the secrets it names.
	for _, f := range []string{cfg.File, cfg.IM.TokenFile, cfg.Delivery.SecretFile, cfg.Cluster.PasswordFile, cfg.Egress.KeyFile} {
		if f != "" {
			o.ReadFiles = append(o.ReadFiles, f)
		}
	}
	o.WriteDirs = append(o.WriteDirs, cfg.ACME.writablePaths()...)
	for _, f := range []string{cfg.Logs.AuditLog, cfg.Logs.AccessLog} {
		if f != "" {
			o.AppendFiles = append(o.AppendFiles, f)
		}
	}
	if cfg.Server.PIDFile != "" {
		// Removing the file at exit needs its directory: give the pid file
		// a directory of its own (systemd's RuntimeDirectory=).
		o.WriteDirs = append(o.WriteDirs, filepath.Dir(cfg.Server.PIDFile))
	}
	res, err := sandbox.Apply(o)
	if err != nil {
		return fmt.Errorf("confining the process (run with --no-sandbox to start without it): %w", err)
	}
	if res.Mode != sandbox.ModeLandlock {
		logger.Warn("sandbox", "mode", res.Mode, "reason", res.Reason)
		return nil
	}
	logger.Info("sandbox", "mode", res.Mode, "landlock_abi", res.ABI, "reason", res.Reason,
		"read", res.Read, "write", res.Write)
	return nil
}
