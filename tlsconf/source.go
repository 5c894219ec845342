package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
)

// tls12Suites returns the TLS 1.2 cipher suites offered: ECDHE key exchange
// with AEAD ciphers only (no CBC, no RSA key exchange). TLS 1.3 suites are
// not configurable and are all AEAD. A function, so no package-level slice
// can be altered.
func tls12Suites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// Source owns the server's TLS configuration: the server certificate (held
// in a certmagic cache of its own), the client-CA bundle, client CRLs and
// the allow-list of client identities. Reload swaps all of them at once.
//
// A Source is safe for concurrent use: handshakes read the current material
// through an atomic pointer and take no lock; Reload calls are serialised.
// Create it with New and call Close when done.
type Source struct {
	opts  Options
	log   *slog.Logger
	audit *audit.Logger
	now   func() time.Time

	cache   *certmagic.Cache
	storage *memStorage
	magic   atomic.Pointer[certmagic.Config] // current generation, for certmagic maintenance
	cur     atomic.Pointer[state]            // current material; never mutated after Store

	mu       sync.Mutex // serialises Reload and Close; guards leafHash and closed
	leafHash string     // certmagic hash of the served certificate
	closed   bool
	done     chan struct{} // closed by Close; ends Watch

	okCount   atomic.Uint64
	failCount atomic.Uint64
	lastMu    sync.Mutex // guards last
	last      ReloadStatus

	acme *acmeManager // nil unless Options.ACMEDomains is set
	// challengeCert serves acme-tls/1 hellos; acmeGetCertificate unless a
	// test of this package replaces it before serving.
	challengeCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// state is one generation of loaded material. It is immutable once stored
// (apart from the warned flags of its CRL entries).
type state struct {
	inner      *tls.Config // template for handshakes; never handed out mutated
	mode       ClientAuth
	pool       *x509.CertPool
	cas        []*x509.Certificate
	crls       crlIndex
	crlList    []*crlEntry // file order, for Status
	allow      allowList
	failClosed bool
	leaf       *x509.Certificate // nil with ACME: the certmagic cache holds it
	loadedAt   time.Time
	sums       map[string][sha256.Size]byte // watched file → SHA-256 of the bytes loaded
	// verified remembers chains this generation built for client
	// certificates; see verifyChain. A Reload starts a new, empty one.
	verified *lru.Cache[[sha256.Size]byte, verifiedChain]
}

// New loads every file named by o, validates it and returns a Source
// serving it. Errors name the offending file (a *certs.FileError is in the
// chain) or option, and wrap the matching sentinel of this package. ctx
// bounds the load (OCSP stapling may reach the network when the server
// certificate names a responder); it is not retained.
//
// With Options.ACMEDomains set, the server certificate comes from ACME
// instead of files: New prepares the storage and makes no network call;
// call StartACME once the listener is open.
func New(ctx context.Context, o Options) (*Source, error) {
	var acme *acmeManager
	if len(o.ACMEDomains) > 0 {
		m, err := newACME(&o)
		if err != nil {
			return nil, err
		}
		acme = m
	} else {
		if o.CertFile == "" {
			return nil, fmt.Errorf("configuring server certificate: %w: CertFile is empty", ErrMissingFile)
		}
		if o.KeyFile == "" {
			return nil, fmt.Errorf("configuring server key: %w: KeyFile is empty", ErrMissingFile)
		}
	}
	if o.ClientAuth != ClientAuthRequire && o.ClientAuth != ClientAuthNone {
		return nil, fmt.Errorf("configuring client auth: %w: %d", ErrBadClientAuth, int(o.ClientAuth))
	}
	o.ClientCRLFiles = append([]string(nil), o.ClientCRLFiles...)
	o.AllowedClients = append([]string(nil), o.AllowedClients...)
	o.ACMEDomains = append([]string(nil), o.ACMEDomains...)
	s := &Source{
		opts:    o,
		log:     o.logger(),
		audit:   o.Audit,
		now:     o.now(),
		storage: newMemStorage(),
		done:    make(chan struct{}),
		acme:    acme,
	}
	if acme != nil {
		s.challengeCert = s.acmeGetCertificate
		acme.alpn = s.newACMEChallengeConfig()
	}
	s.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) {
			if c := s.magic.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("tlsconf: no certmagic config loaded yet")
		},
		Logger: zap.NewNop(),
	})
	if o.ClientAuth == ClientAuthNone {
		s.log.Warn("client certificates are not verified; only the IM token authenticates callers",
			slog.String("client_auth", o.ClientAuth.String()))
	}
	st, magic, hash, err := s.load(ctx)
	if err != nil {
		s.cache.Stop()
		return nil, err
	}
	s.install(st, magic, hash)
	s.log.Info("tls material loaded", s.summary(st)...)
	return s, nil
}

// Reload re-reads every file, validates everything (parse, key matches
// certificate, server certificate not expired, bundle non-empty, every CRL
// signed by a bundle CA, allow-list parses) and then atomically swaps the
// material used by new handshakes. Connections already established are
// not affected. On any error the previous material stays in use, one
// warning is logged, the failure is counted in Status and the error is
// returned. Safe for concurrent use; calls are serialised.
func (s *Source) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(ctx)
}

// ReloadAllowedClients replaces Options.AllowedClients with entries and
// reloads, all or nothing: when the reload fails (an entry does not parse,
// or any file does not load) the previous list and material stay in use.
// SIGHUP applies a changed --allow-client this way.
func (s *Source) ReloadAllowedClients(ctx context.Context, entries []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.opts.AllowedClients
	s.opts.AllowedClients = append([]string(nil), entries...)
	if err := s.reloadLocked(ctx); err != nil {
		s.opts.AllowedClients = prev
		return err
	}
	return nil
}

// reloadLocked is Reload with s.mu held.
func (s *Source) reloadLocked(ctx context.Context) error {
	if s.closed {
		return ErrClosed
	}
	st, magic, hash, err := s.load(ctx)
	if err != nil {
		err = fmt.Errorf("reloading TLS material: %w", err)
		s.failCount.Add(1)
		s.setLast(false, err)
		s.log.Warn("tls reload failed; keeping previous material", slog.Any("err", err))
		return err
	}
	s.install(st, magic, hash)
	s.okCount.Add(1)
	s.setLast(true, nil)
	s.log.Info("tls material reloaded", s.summary(st)...)
	return nil
}

// install publishes a loaded generation and drops the previous server
// certificate from the certmagic cache. Called with mu held (or before the
// Source is shared). A nil magic (ACME: StartACME owns the config) keeps
// the current one.
func (s *Source) install(st *state, magic *certmagic.Config, hash string) {
	if magic != nil {
		s.magic.Store(magic)
	}
	s.cur.Store(st)
	if old := s.leafHash; old != "" && old != hash {
		s.cache.Remove([]string{old})
	}
	s.leafHash = hash
}

func (s *Source) setLast(ok bool, err error) {
	r := ReloadStatus{At: s.now(), OK: ok}
	if err != nil {
		r.Error = err.Error()
	}
	s.lastMu.Lock()
	s.last = r
	s.lastMu.Unlock()
}

func (s *Source) summary(st *state) []any {
	var server []any
	if st.leaf != nil {
		server = []any{
			slog.String("server_cert_sha256", certs.CertFingerprint(st.leaf)),
			slog.Time("server_cert_not_after", st.leaf.NotAfter),
		}
	} else {
		server = []any{slog.String("server_cert", "acme"), slog.Any("acme_domains", s.acme.domains)}
	}
	return append(server,
		slog.Int("client_cas", len(st.cas)),
		slog.Int("client_crls", len(st.crlList)),
		slog.Int("allowed_clients", st.allow.n),
		slog.String("client_auth", st.mode.String()),
	)
}

// load reads and validates everything and caches the new server
// certificate in certmagic, the only step with a side effect, taken last.
// It returns the new generation, its certmagic config and the certificate's
// cache hash.
func (s *Source) load(ctx context.Context) (*state, *certmagic.Config, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, "", fmt.Errorf("loading TLS material: %w", err)
	}
	o := &s.opts
	now := s.now()
	st := &state{
		mode:       o.ClientAuth,
		failClosed: o.CRLFailClosed,
		loadedAt:   now,
		crls:       make(crlIndex),
		sums:       make(map[string][sha256.Size]byte),
		verified:   newVerifiedCache(),
	}

	entries := o.AllowedClients
	if o.AllowedClientsFile != "" {
		data, err := certs.ReadFile("reading allow-list", o.AllowedClientsFile)
		if err != nil {
			return nil, nil, "", err
		}
		fromFile := allowFileEntries(data)
		if len(fromFile) == 0 {
			return nil, nil, "", &certs.FileError{Path: o.AllowedClientsFile, Op: "reading allow-list", Err: ErrEmptyAllowList}
		}
		st.sums[o.AllowedClientsFile] = sha256.Sum256(data)
		entries = append(append([]string(nil), entries...), fromFile...)
	}
	allow, err := parseAllowList(entries)
	if err != nil {
		return nil, nil, "", err
	}
	if o.ClientAuth == ClientAuthNone && !allow.empty() {
		return nil, nil, "", fmt.Errorf("checking allowed clients: %w", ErrAllowListWithoutClientAuth)
	}
	st.allow = allow

	// Client-CA bundle.
	switch {
	case o.ClientCAFile != "":
		pool, cas, data, err := loadBundle(o.ClientCAFile)
		if err != nil {
			return nil, nil, "", err
		}
		st.pool, st.cas = pool, cas
		st.sums[o.ClientCAFile] = sha256.Sum256(data)
	case o.ClientAuth == ClientAuthRequire:
		return nil, nil, "", fmt.Errorf("configuring client certificates: %w", ErrNoClientCA)
	}

	// CRLs, each signed by a bundle CA.
	for _, path := range o.ClientCRLFiles {
		entries, data, err := loadCRL(path, st.cas)
		if err != nil {
			return nil, nil, "", err
		}
		st.sums[path] = sha256.Sum256(data)
		for _, e := range entries {
			k := issuerKey(e.issuer)
			st.crls[k] = append(st.crls[k], e)
			st.crlList = append(st.crlList, e)
			if e.stale(now) {
				e.warned.Store(true)
				s.log.Warn("client CRL is past its next update", crlAttrs(e)...)
			}
		}
	}

	if s.acme != nil {
		// The server certificate is certmagic's to obtain and renew.
		st.inner = s.innerConfig(s.acmeGetCertificate)
		return st, nil, "", nil
	}

	// Server certificate and key: read once, validate, and cache the very
	// same bytes in certmagic so a file replaced in between cannot slip in
	// unvalidated.
	certPEM, err := certs.ReadFile("reading certificate", o.CertFile)
	if err != nil {
		return nil, nil, "", err
	}
	keyPEM, err := certs.ReadFile("reading private key", o.KeyFile)
	if err != nil {
		return nil, nil, "", err
	}
	pair, err := certs.ParseKeyPair(certPEM, keyPEM, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, nil, "", err
	}
	leaf := pair.Leaf
	if now.After(leaf.NotAfter) {
		return nil, nil, "", &certs.FileError{Path: o.CertFile, Op: "checking server certificate", Err: fmt.Errorf("%w (not after %s)", ErrServerCertExpired, leaf.NotAfter.UTC().Format(time.RFC3339))}
	}
	if now.Before(leaf.NotBefore) {
		s.log.Warn("server certificate is not valid yet", slog.String("file", o.CertFile), slog.Time("not_before", leaf.NotBefore))
	}
	st.leaf = leaf
	st.sums[o.CertFile] = sha256.Sum256(certPEM)
	st.sums[o.KeyFile] = sha256.Sum256(keyPEM)

	if err := ctx.Err(); err != nil {
		return nil, nil, "", fmt.Errorf("loading TLS material: %w", err)
	}
	name := o.ServerName
	if name == "" {
		name = defaultName(leaf)
	}
	magic := certmagic.New(s.cache, certmagic.Config{
		DefaultServerName:  name,
		FallbackServerName: name,
		// Stapling reaches the responder named in the certificate; without
		// one there is nothing to fetch, so no network call is made.
		OCSP:    certmagic.OCSPConfig{DisableStapling: len(leaf.OCSPServer) == 0},
		Storage: s.storage,
		Logger:  zap.NewNop(),
		// Unmanaged certificates need no issuer; a non-nil empty list keeps
		// certmagic from building its default ACME issuer.
		Issuers: []certmagic.Issuer{},
	})
	hash, err := magic.CacheUnmanagedCertificatePEMBytes(ctx, certPEM, keyPEM, nil)
	if err != nil {
		return nil, nil, "", &certs.FileError{Path: o.CertFile, Op: "caching server certificate", Err: err}
	}

	st.inner = s.innerConfig(magic.GetCertificate)
	return st, magic, hash, nil
}

// innerConfig builds the per-generation handshake template around
// getCert.
func (s *Source) innerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	o := &s.opts
	inner := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   tls12Suites(),
		GetCertificate: getCert,
		// net/http's ServeTLS adds these to the outer config only; a
		// per-client config must carry them itself.
		NextProtos:       []string{"h2", "http/1.1"},
		CurvePreferences: o.Curves,
		// crypto/tls's own clock (session ticket ages, resumed certificate
		// expiry) follows Options.Now; nil means time.Now.
		Time: o.Now,
	}
	if o.ClientAuth == ClientAuthRequire {
		// Request, never let crypto/tls verify: VerifyConnection does the
		// whole check so that every refusal is audited with its precise
		// reason, on full and resumed handshakes alike. ClientCAs stays nil
		// on purpose: a CA hint would make some clients (Go's among them)
		// withhold a certificate from another CA, hiding what was offered.
		inner.ClientAuth = tls.RequestClientCert
	} else {
		inner.ClientAuth = tls.NoClientCert
	}
	return inner
}

// loadBundle reads a PEM bundle of CA certificates. Errors are
// *certs.FileError; a bundle with no certificate wraps ErrEmptyBundle.
func loadBundle(path string) (*x509.CertPool, []*x509.Certificate, []byte, error) {
	data, err := certs.ReadFile("reading client CA bundle", path)
	if err != nil {
		return nil, nil, nil, err
	}
	list, err := certs.ParseCertificatesPEM(data)
	if errors.Is(err, certs.ErrNoCertificates) {
		return nil, nil, nil, &certs.FileError{Path: path, Op: "parsing client CA bundle", Err: ErrEmptyBundle}
	}
	if err != nil {
		return nil, nil, nil, &certs.FileError{Path: path, Op: "parsing client CA bundle", Err: err}
	}
	pool := x509.NewCertPool()
	for _, c := range list {
		pool.AddCert(c)
	}
	return pool, list, data, nil
}

// defaultName picks the name served without SNI: first DNS SAN, else first
// IP SAN, else the common name.
func defaultName(leaf *x509.Certificate) string {
	switch {
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		return leaf.IPAddresses[0].String()
	}
	return leaf.Subject.CommonName
}

// ServerConfig returns a new outer configuration for an http.Server or a
// tls.Listener. It holds no material itself: GetConfigForClient hands each
// handshake the current inner configuration, so Reload takes effect on the
// next handshake. Session tickets are encrypted with the outer config's
// automatic keys, so use one returned config per listener.
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		CipherSuites:       tls12Suites(),
		GetConfigForClient: s.configForClient,
	}
}

// configForClient is the outer GetConfigForClient.
func (s *Source) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if ok, offered := modernTLS(hello.SupportedVersions); !ok {
		s.refuse(audit.Record{
			Reason:     audit.TLSVersion,
			RemoteAddr: remoteAddr(hello.Conn),
			TLSVersion: offered,
			Detail:     "client offers no TLS version >= 1.2",
		})
		return nil, fmt.Errorf("negotiating TLS version: %w", ErrTLSVersion)
	}
	st := s.cur.Load()

	// TLS-ALPN-01: a ClientHello whose ALPN list is exactly ["acme-tls/1"]
	// gets a config that requests no client certificate, has session
	// tickets disabled and serves only certmagic's challenge certificate;
	// net/http closes such a connection after the handshake.
	if s.acme != nil && isACMEHello(hello) {
		return s.acmeChallengeConfig(), nil
	}

	if st.mode == ClientAuthNone {
		return st.inner, nil
	}
	// A shallow copy per handshake, so the verifier knows the peer address.
	// No ticket keys are set on it: crypto/tls then uses the outer config's
	// automatic keys and sessions resume across reloads, with every resumed
	// session verified again against the current material.
	cfg := st.inner.Clone()
	conn := hello.Conn
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return s.verifyClient(st, conn, cs)
	}
	return cfg, nil
}

// versionSSL30 is SSL 3.0's wire version (crypto/tls's constant is deprecated).
const versionSSL30 = 0x0300

// modernTLS reports whether versions holds TLS 1.2 or 1.3, and names the
// highest known version offered (for the audit record).
func modernTLS(versions []uint16) (bool, string) {
	var best uint16
	for _, v := range versions {
		if v >= tls.VersionTLS12 && v <= tls.VersionTLS13 {
			return true, ""
		}
		if v >= versionSSL30 && v < tls.VersionTLS12 && v > best {
			best = v
		}
	}
	if best == 0 {
		return false, "none"
	}
	return false, tls.VersionName(best)
}

func remoteAddr(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}

// Close stops the certmagic cache maintenance and ends any Watch. Later
// Reloads return ErrClosed; handshakes keep using the last material. Safe
// to call more than once.
func (s *Source) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	close(s.done)
	if s.acme != nil && s.acme.cancel != nil {
		s.acme.cancel()
		s.acme.wg.Wait()
	}
	s.cache.Stop()
}
