package egress_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/egress"
)

// A Source feeds the edge listener's dynamic allow-list. The first fetch
// is awaited for a bounded time; without a list the listener starts
// anyway and admits only the static list's peers (here none: nobody) until
// the list arrives.
func ExampleSource() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	src, err := egress.New(egress.Options{
		AppID:      1400000000,
		Identifier: "administrator",
		SecretKey:  []byte(os.Getenv("IMEDGE_IM_SECRET_KEY")),
		Region:     "singapore",
		Logger:     logger,
	})
	if err != nil {
		logger.Error("im egress list", "err", err)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { src.Run(ctx) })
	defer wg.Wait() // after stop: Run returns when ctx ends
	defer stop()

	wctx, cancel := context.WithTimeout(ctx, egress.DefaultStartWait)
	if err := src.WaitReady(wctx); err != nil {
		logger.Warn("listening without IM's egress list; not ready until it arrives", "err", err)
	}
	cancel()

	inner, err := net.Listen("tcp", ":8443")
	if err != nil {
		return
	}
	ln, err := edge.New(inner, edge.Options{
		TLSConfig: &tls.Config{ /* from tlsconf */ },
		AllowSet:  src, // with AllowSources empty: IM's egress list only
		Logger:    logger,
	})
	if err != nil {
		return
	}
	defer ln.Close()
	// … serve ln with an http.Server; report src.Status() in /status,
	// metrics and readiness.
}
