package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/imedge/imedge/certs"
)

// DefaultACMECA is the ACME directory used when Options.ACMECA is empty:
// Let's Encrypt's production endpoint.
const DefaultACMECA = certmagic.LetsEncryptProductionCA

// acmeTLS1 is the ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
const acmeTLS1 = "acme-tls/1"

// acmeManager is the ACME side of a Source: it obtains and renews the
// server certificate with certmagic's ACMEIssuer, TLS-ALPN-01 only. It is
// created by New and started by StartACME, once the listener that answers
// the validation exists.
type acmeManager struct {
	domains []string
	email   string
	ca      string
	storage string
	roots   *x509.CertPool // trusted roots for the ACME server's HTTPS

	magic   atomic.Pointer[certmagic.Config] // nil until StartACME
	started atomic.Bool
	cancel  context.CancelFunc // ends the obtain loop; set by StartACME, guarded by Source.mu
	wg      sync.WaitGroup     // the obtain loop
	alpn    *tls.Config        // handed to acme-tls/1 ClientHellos; never mutated

	mu       sync.Mutex // guards attempts and lastErr
	attempts int
	lastErr  string
}

// ACME obtain loop timing: each attempt is bounded, and failures are
// retried with doubling delays (2m, 4m, … 1h), which keeps a failing setup
// under Let's Encrypt's limit of 5 failed validations per hour.
const (
	acmeAttemptTimeout = 10 * time.Minute
	acmeRetryMin       = 2 * time.Minute
	acmeRetryMax       = time.Hour
)

// newACME validates the ACME options and prepares the storage directory and
// trusted roots. It makes no network call.
func newACME(o *Options) (*acmeManager, error) {
	if o.CertFile != "" || o.KeyFile != "" {
		return nil, fmt.Errorf("configuring ACME: %w", ErrACMEWithCertFiles)
	}
	m := &acmeManager{email: o.ACMEEmail, ca: o.ACMECA, storage: o.ACMEStorage}
	if m.ca == "" {
		m.ca = DefaultACMECA
	}
	if !strings.HasPrefix(m.ca, "https://") {
		return nil, fmt.Errorf("configuring ACME directory %q: %w", m.ca, ErrACMEBadCA)
	}
	for _, d := range o.ACMEDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if err := checkACMEDomain(d); err != nil {
			return nil, err
		}
		if !slices.Contains(m.domains, d) {
			m.domains = append(m.domains, d)
		}
	}
	if m.storage == "" {
		return nil, fmt.Errorf("configuring ACME storage: %w: ACMEStorage is empty", ErrMissingFile)
	}
	if err := os.MkdirAll(m.storage, 0o700); err != nil {
		return nil, &certs.FileError{Path: m.storage, Op: "creating ACME storage", Err: err}
	}
	// The directory holds account and certificate keys: owner only, even if
	// it existed with a wider mode.
	if err := os.Chmod(m.storage, 0o700); err != nil {
		return nil, &certs.FileError{Path: m.storage, Op: "restricting ACME storage", Err: err}
	}
	if o.ACMERootsFile != "" {
		pool, _, err := certs.LoadPool(o.ACMERootsFile)
		if err != nil {
			return nil, err
		}
		m.roots = pool
	} else {
		// Load the system roots now, while every file is still readable: the
		// first ACME request may come after a sandbox is in place.
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("loading system roots for the ACME server: %w", err)
		}
		m.roots = pool
	}
	return m, nil
}

// checkACMEDomain accepts a DNS name of letters, digits, hyphens and dots
// (a leading "*." for a wildcard is refused: TLS-ALPN-01 cannot validate
// it).
func checkACMEDomain(d string) error {
	bad := func(why string) error {
		return fmt.Errorf("checking ACME domain %q: %w: %s", d, ErrACMEBadDomain, why)
	}
	switch {
	case d == "":
		return bad("empty")
	case len(d) > 253:
		return bad("longer than 253 bytes")
	case strings.HasPrefix(d, "*"):
		return bad("wildcards need DNS-01, which imedge does not do")
	case net.ParseIP(d) != nil:
		return bad("an IP address, not a DNS name")
	case strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, ".."):
		return bad("empty label")
	}
	for _, r := range d {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '.' {
			return bad("only letters, digits, '-' and '.' are allowed")
		}
	}
	return nil
}

// ACMEEnabled reports whether the Source obtains its server certificate
// through ACME (Options.ACMEDomains is set).
func (s *Source) ACMEEnabled() bool { return s.acme != nil }

// StartACME starts obtaining and renewing the server certificate for
// Options.ACMEDomains, in the background: it returns at once and never
// waits for the ACME server, so a CA that is down or slow cannot hold up
// the start. A goroutine owned by the Source loads the certificate from
// Options.ACMEStorage or obtains it (certmagic's ManageSync, each attempt
// bounded to 10 minutes), retrying failures after 2, 4, 8… minutes (at
// most an hour apart) until it succeeds; Close, or the end of ctx, stops
// it and waits for it. Once obtained, certmagic's cache maintenance renews
// it (when a third of its lifetime is left, or as the CA's ARI says).
// Until a certificate is available, ordinary handshakes fail; progress and
// errors are logged and reported in Status.
//
// listenAddr is the address the TLS listener serving this Source is bound
// to (net.Listener.Addr().String()). TLS-ALPN-01 is answered by that
// listener through ServerConfig; certmagic is told the same address so
// that it finds it in use and never opens a challenge listener of its own.
// HTTP-01 is disabled. StartACME must be called at most once, and only on
// a Source with ACME configured (ErrACMENotConfigured otherwise).
func (s *Source) StartACME(ctx context.Context, listenAddr string) error {
	if s.acme == nil {
		return ErrACMENotConfigured
	}
	host, portStr, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return fmt.Errorf("parsing ACME listen address %q: %w", listenAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("parsing ACME listen address %q: port %q", listenAddr, portStr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.acme.started.CompareAndSwap(false, true) {
		return ErrACMEStarted
	}
	m := s.acme
	zlog := zap.New(newSlogCore(s.log.Handler(), "certmagic"))
	name := s.opts.ServerName
	if name == "" {
		name = m.domains[0]
	}
	magic := certmagic.New(s.cache, certmagic.Config{
		DefaultServerName:  name,
		FallbackServerName: name,
		Storage:            &certmagic.FileStorage{Path: m.storage},
		Logger:             zlog,
		// Stapling stays on: certmagic only contacts a responder that the
		// issued certificate names, and staples what it gets.
		Issuers: []certmagic.Issuer{}, // replaced below, before any use
	})
	issuer := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                   m.ca,
		Email:                m.email,
		Agreed:               true,
		DisableHTTPChallenge: true,
		ListenHost:           host,
		AltTLSALPNPort:       port,
		TrustedRoots:         m.roots,
		Logger:               zlog.Named("acme"),
	})
	magic.Issuers = []certmagic.Issuer{issuer}
	m.magic.Store(magic)
	s.magic.Store(magic)

	actx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	m.wg.Go(func() { s.acmeLoop(actx, magic) })
	s.log.Info("acme certificate management started",
		slog.Any("domains", m.domains), slog.String("ca", m.ca),
		slog.String("storage", m.storage), slog.String("challenge", "tls-alpn-01"),
		slog.String("listen", listenAddr))
	return nil
}

// acmeLoop obtains (or loads) the certificates until it succeeds or ctx
// ends.
func (s *Source) acmeLoop(ctx context.Context, magic *certmagic.Config) {
	m := s.acme
	delay := acmeRetryMin
	for {
		actx, cancel := context.WithTimeout(ctx, acmeAttemptTimeout)
		err := magic.ManageSync(actx, m.domains)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.attempts++
		m.lastErr = ""
		if err != nil {
			m.lastErr = err.Error()
		}
		m.mu.Unlock()
		if err == nil {
			_, leaf := s.acmeStatus()
			attrs := []any{slog.Any("domains", m.domains)}
			if leaf != nil {
				attrs = append(attrs, slog.String("server_cert_sha256", certs.CertFingerprint(leaf)),
					slog.Time("server_cert_not_after", leaf.NotAfter), slog.String("issuer", leaf.Issuer.String()))
			}
			s.log.Info("acme certificate ready", attrs...)
			return
		}
		s.log.Warn("acme certificate not obtained; will retry", slog.Any("err", err),
			slog.Any("domains", m.domains), slog.Duration("retry_in", delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, acmeRetryMax)
	}
}

// acmeGetCertificate serves the ACME-managed certificate (or, for an
// acme-tls/1 hello, certmagic's challenge certificate).
func (s *Source) acmeGetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	magic := s.acme.magic.Load()
	if magic == nil {
		return nil, ErrACMENotStarted
	}
	return magic.GetCertificate(hello)
}

// isACMEHello reports whether hello is a TLS-ALPN-01 validation attempt:
// its ALPN list is exactly ["acme-tls/1"] and it names a server (RFC 8737
// requires SNI; without it certmagic would serve the ordinary certificate).
func isACMEHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLS1 && hello.ServerName != ""
}

// acmeChallengeConfig returns the configuration for acme-tls/1 hellos: no
// client certificate is requested (the ACME server has none), session
// tickets are off (nothing from this path may be resumed elsewhere), and
// the only protocol is acme-tls/1, which net/http does not serve: the
// server closes such a connection after the handshake, so no request on it
// ever reaches the handler. The certificate served is certmagic's
// challenge certificate; without an active challenge the handshake fails.
func (s *Source) acmeChallengeConfig() *tls.Config {
	return s.acme.alpn
}

func (s *Source) newACMEChallengeConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12Suites(),
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if !isACMEHello(hello) { // defensive: only challenge certificates on this path
				return nil, ErrACMENotStarted
			}
			return s.challengeCert(hello)
		},
		ClientAuth:             tls.NoClientCert,
		SessionTicketsDisabled: true,
		NextProtos:             []string{acmeTLS1},
		Time:                   s.opts.Now,
	}
}

// acmeStatus reports the managed certificate, if any, and the ACME
// settings.
func (s *Source) acmeStatus() (*ACMEStatus, *x509.Certificate) {
	m := s.acme
	st := &ACMEStatus{Domains: append([]string(nil), m.domains...), CA: m.ca, Storage: m.storage, Started: m.started.Load()}
	var leaf *x509.Certificate
	for _, c := range s.cache.AllMatchingCertificates(m.domains[0]) {
		if c.Leaf == nil {
			continue
		}
		if leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter) {
			leaf = c.Leaf
		}
	}
	st.Obtained = leaf != nil
	m.mu.Lock()
	st.Attempts, st.LastError = m.attempts, m.lastErr
	m.mu.Unlock()
	return st, leaf
}

// ACMEStatus describes ACME management in a Status.
type ACMEStatus struct {
	Domains   []string `json:"domains"`              // names the certificate is obtained for
	CA        string   `json:"ca"`                   // ACME directory URL
	Storage   string   `json:"storage"`              // directory holding the account and certificates
	Started   bool     `json:"started"`              // StartACME was called
	Obtained  bool     `json:"obtained"`             // a certificate is in use (ServerCert describes it)
	Attempts  int      `json:"attempts"`             // obtain attempts finished so far
	LastError string   `json:"last_error,omitempty"` // why the last attempt failed; empty after a success
}
