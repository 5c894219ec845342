package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/sandbox"
)

// listenEdge opens the public listener: a TCP listener wrapped in an
// edge.Listener, which admits connections (--max-conns, --max-conns-per-ip,
// --allow-source) and completes their TLS handshake under
// --handshake-timeout before http.Server sees them. Connections it returns
// have completed their handshake with tlsConfig: a *tls.Conn for HTTP/2, a
// plaintext view with a ConnectionState method for HTTP/1 (see package
// edge), which lingers when closed after an answer.
func listenEdge(cfg Config, tlsConfig *tls.Config, aud *audit.Logger, logger *slog.Logger) (net.Listener, error) {
	e := cfg.Edge
	sources, err := e.sources()
	if err != nil {
		return nil, err
	}
	if e.HTTP2Off {
		tlsConfig = edge.WithoutHTTP2(tlsConfig)
	}
	inner, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	ln, err := edge.New(inner, edge.Options{
		TLSConfig:        tlsConfig,
		HandshakeTimeout: e.handshakeTimeout(),
		MaxConns:         e.maxConns(),
		MaxConnsPerIP:    e.maxConnsPerIP(),
		AllowSources:     sources,
		// PROXY protocol v2 (issue 9) slots in here, as the first Stage, so
		// that the source allow-list, the per-address cap and the audit
		// records see the client behind the balancer.
		Stages: cfg.Cluster.stages(aud, logger),
		Audit:  aud,
		Logger: logger,
	})
	if err != nil {
		inner.Close()
		return nil, fmt.Errorf("starting the edge listener: %w", err)
	}
	allow := "any"
	if len(sources) > 0 {
		allow = fmt.Sprint(sources)
	}
	logger.Info("edge limits", "handshake_timeout", e.handshakeTimeout().String(), "max_conns", e.maxConns(),
		"max_conns_per_ip", e.maxConnsPerIP(), "allow_source", allow, "http2", !e.HTTP2Off,
		"http2_max_streams", e.http2MaxStreams(), "read_header_timeout", cfg.ReadHeaderTO.String(),
		"read_timeout", cfg.ReadTimeout.String(), "write_timeout", cfg.WriteTimeout.String(),
		"idle_timeout", cfg.IdleTimeout.String(), "max_header_bytes", cfg.MaxHeaderBytes, "max_body", cfg.MaxBody)
	return ln, nil
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
			MaxConcurrentStreams: e.http2MaxStreams(),
			MaxReadFrameSize:     e.http2MaxFrame(),
			// A peer that stops reading is dropped like an HTTP/1 one.
			WriteByteTimeout: cfg.WriteTimeout,
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

// newEdgeServer wraps srv, already set up by configureEdgeServer, to
// serve ln.
func newEdgeServer(srv *http.Server, _ Config, ln net.Listener, _ *slog.Logger) *edgeServer {
	return &edgeServer{std: srv, ln: ln}
}

// serve serves the listener until shutdown; it returns
// http.ErrServerClosed then.
func (e *edgeServer) serve() error { return e.std.Serve(e.ln) }

// shutdown stops accepting, closes idle connections and waits for the
// requests in progress, or for ctx.
func (e *edgeServer) shutdown(ctx context.Context) error { return e.std.Shutdown(ctx) }

// close closes every connection at once.
func (e *edgeServer) close() { e.std.Close() }

// sandboxPaths is implemented by feature groups of Config (ACME, admin)
// that read or write files after start; applySandbox grants them.
type sandboxReadPaths interface{ readablePaths() []string }
type sandboxWritePaths interface{ writablePaths() []string }

// applySandbox confines the process with Landlock (unless --no-sandbox)
// once every listener and long-lived file is open: from then on it reads
// only its certificate, key, client CA and CRL files (their directories, so
// rotation by rename works) and writes only its state, outbox and audit-log
// paths. The start log says which mode is active and why.
func applySandbox(cfg Config, logger *slog.Logger) error {
	if cfg.Edge.NoSandbox {
		logger.Warn("sandbox", "mode", sandbox.ModeOff, "reason", "--no-sandbox given")
		return nil
	}
	o := sandbox.Options{WriteDirs: []string{cfg.StateDir, cfg.spoolDir()}}
	for _, f := range append([]string{cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile, cfg.AllowClientsFile}, cfg.ClientCRLFiles...) {
		if f != "" {
			o.ReadFiles = append(o.ReadFiles, f)
		}
	}
	if cfg.AuditLog != "" {
		o.AppendFiles = append(o.AppendFiles, cfg.AuditLog)
	}
	for _, group := range []any{cfg.ACME, cfg.Admin} {
		if g, ok := group.(sandboxReadPaths); ok {
			o.ReadFiles = append(o.ReadFiles, g.readablePaths()...)
		}
		if g, ok := group.(sandboxWritePaths); ok {
			o.WriteDirs = append(o.WriteDirs, g.writablePaths()...)
		}
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
