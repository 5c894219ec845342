package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"github.com/imedge/imedge/tlsconf"
)

// acmeConfig configures ACME certificate management for the server
// certificate (TLS-ALPN-01 only). It is off unless a domain is given; then
// --cert and --key must be left out.
type acmeConfig struct {
	Domains []string // --acme-domain, repeatable
	Email   string   // --acme-email
	CA      string   // --acme-ca, directory URL; empty means tlsconf.DefaultACMECA
	Storage string   // --acme-storage; empty means STATE-DIR/acme
	CARoots string   // --acme-ca-roots, PEM roots for the ACME server's HTTPS

	stateDir string // the resolved --state-dir, for the default Storage
}

func (a *acmeConfig) register(fs *flagSet) {
	fs.group(groupTLS, func() {
		fs.Var(listFlag{&a.Domains}, "acme-domain", "obtain the server certificate for this name from an ACME CA via TLS-ALPN-01 (repeatable; replaces --cert/--key)")
		fs.StringVar(&a.Email, "acme-email", "", "contact email of the ACME account")
		fs.StringVar(&a.CA, "acme-ca", tlsconf.DefaultACMECA, "ACME directory URL")
		fs.Var(pathFlag{&a.Storage}, "acme-storage", "directory for the ACME account, certificates and keys (default STATE-DIR/acme)")
		fs.Var(pathFlag{&a.CARoots}, "acme-ca-roots", "PEM roots trusted for the ACME server's HTTPS (default: system roots)")
	})
}

// enabled reports whether the server certificate comes from ACME.
func (a acmeConfig) enabled() bool { return len(a.Domains) > 0 }

// directory is the ACME directory URL.
func (a acmeConfig) directory() string {
	if a.CA == "" {
		return tlsconf.DefaultACMECA
	}
	return a.CA
}

// setStateDir records the resolved state directory, under which the
// storage lives by default. parseServeConfig calls it.
func (a *acmeConfig) setStateDir(dir string) { a.stateDir = dir }

// storageDir is the ACME storage directory: --acme-storage, else
// STATE-DIR/acme (empty when neither is known).
func (a acmeConfig) storageDir() string {
	if a.Storage != "" || a.stateDir == "" {
		return a.Storage
	}
	return filepath.Join(a.stateDir, "acme")
}

// writablePaths lists the paths ACME writes to while serving (for a
// sandbox): the storage directory. Empty when ACME is off.
func (a acmeConfig) writablePaths() []string {
	if !a.enabled() {
		return nil
	}
	return []string{a.storageDir()}
}

func (a acmeConfig) validate(c Config) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !a.enabled() {
		if a.Email != "" || a.Storage != "" || a.CARoots != "" {
			bad("--acme-email, --acme-storage and --acme-ca-roots need --acme-domain")
		}
		return errs
	}
	if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
		bad("--acme-domain and --cert/--key are exclusive: the server certificate comes from one or the other")
	}
	if u, err := url.Parse(a.directory()); err != nil || u.Scheme != "https" || u.Host == "" {
		bad("--acme-ca %q: want an https:// ACME directory URL", a.CA)
	}
	for _, d := range a.Domains {
		if net.ParseIP(d) != nil {
			bad("--acme-domain %q: want a DNS name, not an IP address", d)
		}
	}
	if a.storageDir() == "" {
		bad("--acme-storage is required (or --state-dir)")
	} else if err := writableDir(a.storageDir()); err != nil {
		bad("--acme-storage %s: %w", a.storageDir(), err)
	}
	if a.CARoots != "" {
		f, err := os.Open(a.CARoots)
		if err != nil {
			bad("--acme-ca-roots: %w", err)
		} else {
			f.Close()
		}
	}
	return errs
}

// apply copies the ACME settings into the TLS options.
func (a acmeConfig) apply(o *tlsconf.Options) {
	if !a.enabled() {
		return
	}
	o.ACMEDomains = append([]string(nil), a.Domains...)
	o.ACMEEmail = a.Email
	o.ACMECA = a.directory()
	o.ACMEStorage = a.storageDir()
	o.ACMERootsFile = a.CARoots
}

// start begins obtaining and renewing the ACME certificate in the
// background, once the listener answering TLS-ALPN-01 is open. It never
// waits for the ACME server; until a certificate exists, handshakes fail
// and the operational log says why. Nothing to do when ACME is off.
func (a acmeConfig) start(ctx context.Context, src *tlsconf.Source, ln net.Listener) error {
	if !a.enabled() {
		return nil
	}
	return src.StartACME(ctx, ln.Addr().String())
}
