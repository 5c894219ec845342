// Command benchsink is the counting internal service of scripts/bench.sh:
// it answers every POST with IM's OK reply (so that a proxy in front of it,
// such as nginx in the comparison, answers IM correctly) and counts requests
// and events; GET /count reports the counts. It is a benchmark fixture, not
// part of imedge: the shipped binary does not contain it.
//
// It also serves as the decision service of the benchmark's decide
// scenario: its OK reply is an "allow", GET /stall?on=1 makes every POST
// wait (until its client gives up, at most a minute) and GET /stall?on=0
// ends that, and with --tls-cert and --tls-key it serves HTTPS, so that
// `imedge load` can call it directly for the baseline.
//
// Usage: benchsink [--listen 127.0.0.1:0] [--tls-cert F --tls-key F]. It
// prints "sink listening on ADDR" once it listens and runs until SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// batchHeader is the header a batched delivery carries with its event
// count (forward.HeaderBatchSize).
const batchHeader = "X-Imedge-Batch-Size"

// countingSink counts requests and events; see the package documentation.
type countingSink struct {
	requests, events atomic.Int64
	stalled          atomic.Bool
	waiting          atomic.Int64 // POSTs held by a stall
}

var okReply = []byte(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)

func (s *countingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/count" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"requests":%d,"events":%d}`+"\n", s.requests.Load(), s.events.Load())
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/stall" {
		s.stalled.Store(r.URL.Query().Get("on") == "1")
		fmt.Fprintf(w, `{"stalled":%t}`+"\n", s.stalled.Load())
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if s.stalled.Load() {
		// The body is read: the server now notices a client that gives up.
		s.waiting.Add(1)
		defer s.waiting.Add(-1)
		t := time.NewTimer(time.Minute)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
	}
	n := int64(1)
	if v := r.Header.Get(batchHeader); v != "" {
		if k, err := strconv.ParseInt(v, 10, 64); err == nil && k > 0 {
			n = k
		}
	}
	s.requests.Add(1)
	s.events.Add(n)
	w.Header()["Content-Type"] = []string{"application/json"}
	_, _ = w.Write(okReply)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchsink: %v\n", err)
		os.Exit(1)
	}
}

// run serves the counting sink until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchsink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback)")
	certFile := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	keyFile := fs.String("tls-key", "", "private key of --tls-cert (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{Handler: &countingSink{}, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() {
		if *certFile != "" {
			errc <- srv.ServeTLS(ln, *certFile, *keyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	fmt.Fprintf(stdout, "sink listening on %s\n", ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
