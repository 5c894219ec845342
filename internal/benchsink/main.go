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
// With --proxy URL it is instead the scenario's go-floor: a proxy built
// from net/http's server and client alone that relays each POST (body and
// query string) to URL and the reply back, with no check of any kind. It
// shows what a before-callback costs on Go's standard HTTP stack before
// imedge does any of its work, next to nginx doing the same blind relay.
// --client-ca makes it require a client certificate, as imedge and nginx
// do in the benchmark.
//
// Usage: benchsink [--listen 127.0.0.1:0] [--tls-cert F --tls-key F
// [--client-ca F]] [--proxy URL]. It prints "sink listening on ADDR" once
// it listens and runs until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// maxRelay bounds the bodies the go-floor relays, either way; IM's
// callbacks are far smaller.
const maxRelay = 64 << 10

// relayTimeout bounds one relayed call, as --decide-timeout's default
// bounds imedge's.
const relayTimeout = 1500 * time.Millisecond

// relay is the go-floor proxy; see the package documentation.
type relay struct {
	target string // absolute URL without a query
	client *http.Client
}

func newRelay(target string) *relay {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 2 * time.Minute}
	return &relay{target: target, client: &http.Client{Transport: tr, Timeout: relayTimeout}}
}

func (p *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRelay+1))
	if err != nil || len(body) > maxRelay {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	target := p.target
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	req.Header["Content-Type"] = []string{"application/json"}
	resp, err := p.client.Do(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxRelay+1))
	if err != nil || len(reply) > maxRelay {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header()["Content-Type"] = []string{ct}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(reply)
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
	clientCA := fs.String("client-ca", "", "with --tls-cert: require a client certificate issued by a CA in this PEM file")
	proxy := fs.String("proxy", "", "be the go-floor: relay every POST to this http:// URL, with no checks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var handler http.Handler = &countingSink{}
	if *proxy != "" {
		u, err := url.Parse(*proxy)
		if err != nil || u.Scheme != "http" || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("--proxy %q: want an http:// URL without a query", *proxy)
		}
		handler = newRelay(*proxy)
	}
	var tlsConf *tls.Config
	if *clientCA != "" {
		if *certFile == "" {
			return errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		pem, err := os.ReadFile(*clientCA)
		if err != nil {
			return fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--client-ca %s: no PEM certificate in it", *clientCA)
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: tlsConf, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute,
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
