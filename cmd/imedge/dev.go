package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/imedge/imedge/certs"
)

// devAppID is the SDKAppID dev mode uses when --sdkappid is not given.
const devAppID = "1400000000"

// devEnv is what --dev set up: a PKI on disk and a built-in internal sink
// that prints each delivered event.
type devEnv struct {
	dir     string
	appID   string
	path    string
	out     io.Writer
	sink    *http.Server
	sinkErr chan error
	mu      sync.Mutex // serialises writes to out
}

// devFiles are the PKI files dev mode keeps under its directory.
type devFiles struct {
	CA, CAKey, Cert, Key, ClientCert, ClientKey string
}

func devPaths(dir string) devFiles {
	j := func(n string) string { return filepath.Join(dir, n) }
	return devFiles{
		CA: j("ca.pem"), CAKey: j("ca-key.pem"),
		Cert: j("server.pem"), Key: j("server-key.pem"),
		ClientCert: j("client.pem"), ClientKey: j("client-key.pem"),
	}
}

// setUpDev creates (or reuses) the dev PKI, starts the built-in sink and
// fills the unset parts of cfg to use them.
func setUpDev(ctx context.Context, cfg *Config, out io.Writer, logger *slog.Logger) (*devEnv, error) {
	if err := os.MkdirAll(cfg.DevDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating dev directory: %w", err)
	}
	p := devPaths(cfg.DevDir)
	created, err := ensureDevPKI(p, time.Now())
	if err != nil {
		return nil, fmt.Errorf("creating dev PKI in %s: %w", cfg.DevDir, err)
	}
	logger.Warn("DEV MODE: throwaway certificates, never use on a network", "dir", cfg.DevDir, "created", created)

	d := &devEnv{dir: cfg.DevDir, out: out, sinkErr: make(chan error, 1)}
	if cfg.Delivery.URL == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("starting the dev sink: %w", err)
		}
		d.sink = &http.Server{Handler: http.HandlerFunc(d.serveSink), ReadHeaderTimeout: 5 * time.Second,
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
		go func() { d.sinkErr <- d.sink.Serve(ln) }()
		cfg.Delivery.URL = "http://" + ln.Addr().String() + "/events"
	}
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&cfg.TLS.CertFile, p.Cert)
	set(&cfg.TLS.KeyFile, p.Key)
	set(&cfg.TLS.ClientCAFile, p.CA)
	set(&cfg.IM.SdkAppid, devAppID)
	if cfg.State.dirSource != "state-dir" {
		// Dev state lives with the dev PKI, never in the system's state
		// directory.
		cfg.State.Dir, cfg.State.dirSource = filepath.Join(cfg.DevDir, "state"), "dev"
		cfg.ACME.setStateDir(cfg.State.Dir)
	}
	d.appID, d.path = cfg.IM.SdkAppid, cfg.Server.Path
	return d, nil
}

// ensureDevPKI reuses the files when they all load and stay valid for at
// least a day, and otherwise makes a new CA, server and client certificate.
func ensureDevPKI(p devFiles, now time.Time) (created bool, err error) {
	if devPKIUsable(p, now) {
		return false, nil
	}
	ca, err := certs.NewCA(certs.Request{CommonName: "imedge dev CA", NotAfter: now.AddDate(0, 0, 30)})
	if err != nil {
		return false, err
	}
	srv, err := ca.Issue(certs.Request{CommonName: "localhost", Usage: certs.UsageServer,
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	if err != nil {
		return false, err
	}
	cli, err := ca.Issue(certs.Request{CommonName: "tencent-im-dev-client", Usage: certs.UsageClient})
	if err != nil {
		return false, err
	}
	caIss := &certs.Issued{Cert: ca.Cert, Key: ca.Key}
	for _, w := range []struct {
		iss       *certs.Issued
		cert, key string
	}{{caIss, p.CA, p.CAKey}, {srv, p.Cert, p.Key}, {cli, p.ClientCert, p.ClientKey}} {
		if err := certs.WriteIssued(w.iss, w.cert, w.key); err != nil {
			return false, err
		}
	}
	return true, nil
}

func devPKIUsable(p devFiles, now time.Time) bool {
	pool, _, err := certs.LoadPool(p.CA)
	if err != nil {
		return false
	}
	for _, pair := range [][2]string{{p.CA, p.CAKey}, {p.Cert, p.Key}, {p.ClientCert, p.ClientKey}} {
		kp, err := certs.LoadKeyPair(pair[0], pair[1])
		if err != nil || now.Add(24*time.Hour).After(kp.Leaf.NotAfter) {
			return false
		}
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return false
		}
	}
	return true
}

// serveSink is the built-in internal service: it prints each event.
func (d *devEnv) serveSink(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	fmt.Fprintf(d.out, "dev sink: event %s from ClientIP %s (%s): %s\n",
		r.Header.Get("X-Imedge-Event-Id"), r.Header.Get("X-Imedge-Client-Ip"), r.Header.Get("X-Imedge-Client-Identity"), body)
	d.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// PrintWelcome prints a curl command that sends a valid callback.
func (d *devEnv) PrintWelcome(addr string) {
	_, port, _ := net.SplitHostPort(addr)
	p := devPaths(d.dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, `
imedge is listening on https://127.0.0.1:%s%s (dev mode). Send a callback with:

curl --cacert %s --cert %s --key %s \
  'https://127.0.0.1:%s%s?SdkAppid=%s&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI' \
  -H 'Content-Type: application/json' \
  --data '{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"id","To_Account":"id1"},{"From_Account":"id","To_Account":"id2"}]}'

`, port, d.path, p.CA, p.ClientCert, p.ClientKey, port, d.path, d.appID)
}

// Close stops the built-in sink.
func (d *devEnv) Close() {
	if d.sink == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.sink.Shutdown(ctx)
	if err := <-d.sinkErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(d.out, "dev sink: %v\n", err)
	}
}
