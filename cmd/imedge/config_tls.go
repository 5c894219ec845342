package main

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/imedge/imedge/tlsconf"
)

// tlsConfig is the server certificate and what client certificates are
// required (package tlsconf).
type tlsConfig struct {
	CertFile         string        // --cert
	KeyFile          string        // --key
	ServerName       string        // --server-name
	Curves           []tls.CurveID // --tls-curves; nil: Go's defaults
	ReloadInterval   time.Duration // --reload-interval
	ClientAuth       string        // --client-auth: "require" or "none"
	ClientCAFile     string        // --client-ca
	ClientCRLFiles   []string      // --client-crl
	CRLFailClosed    bool          // --crl-fail-closed
	AllowClients     []string      // --allow-client
	AllowClientsFile string        // --allow-client-file
}

func (t *tlsConfig) register(fs *flagSet) {
	fs.group(groupRequired, func() {
		fs.Var(pathFlag{&t.CertFile}, "cert", "server certificate chain, PEM (or --acme-domain)")
		fs.Var(pathFlag{&t.KeyFile}, "key", "server private key, PEM (or --acme-domain)")
		fs.Var(pathFlag{&t.ClientCAFile}, "client-ca", "PEM bundle of CAs that issue client certificates, IM's TencentQQAuthCA.crt (not needed with --client-auth none)")
	})
	fs.group(groupTLS, func() {
		fs.StringVar(&t.ClientAuth, "client-auth", "require", `client certificates: "require" or "none" (token only: needs a token)`)
		fs.Var(pathListFlag{&t.ClientCRLFiles}, "client-crl", "client CRL file, PEM or DER (repeatable)")
		fs.BoolVar(&t.CRLFailClosed, "crl-fail-closed", false, "refuse clients whose issuer's CRL is past NextUpdate")
		fs.Var(listFlag{&t.AllowClients}, "allow-client", "allowed client identity: cn:NAME, dns:NAME, uri:URI or spki:SHA256HEX (repeatable; default: any certificate from --client-ca)")
		fs.Var(pathFlag{&t.AllowClientsFile}, "allow-client-file", "file of allowed client identities, one --allow-client entry per line; re-read on reload and when it changes")
		fs.StringVar(&t.ServerName, "server-name", "", "certificate name to serve to clients that send no SNI")
		fs.Var(curvesFlag{&t.Curves}, "tls-curves", `key exchanges allowed, comma-separated, e.g. "X25519,P-256" (default: Go's, post-quantum X25519MLKEM768 first)`)
		fs.DurationVar(&t.ReloadInterval, "reload-interval", tlsconf.DefaultWatchInterval, "how often certificate files are checked for changes (0 disables; SIGHUP always reloads)")
	})
}

func (t tlsConfig) validate(c Config) []error {
	var p problems
	certRequired := !c.ACME.enabled()
	p.readable("cert", t.CertFile, certRequired)
	p.readable("key", t.KeyFile, certRequired)
	switch t.ClientAuth {
	case "require":
		p.readable("client-ca", t.ClientCAFile, true)
	case "none":
		if len(c.IM.Token) == 0 {
			p.add("--client-auth=none is refused without a token (--token-file or IMEDGE_TOKEN): nothing would authenticate callers")
		}
		p.readable("client-ca", t.ClientCAFile, false)
	default:
		p.add("--client-auth %q: want require or none", t.ClientAuth)
	}
	p.readable("allow-client-file", t.AllowClientsFile, false)
	for _, f := range t.ClientCRLFiles {
		p.readable("client-crl", f, true)
	}
	if t.ReloadInterval < 0 {
		p.add("--reload-interval must not be negative")
	}
	if len(p) == 0 && !c.ACME.enabled() {
		// The files open: load them as serve will, so a bad PEM, a key
		// that does not match its certificate or a CRL signed by no
		// bundle CA is a configuration error here too. (With ACME,
		// loading would create the storage directory: acmeConfig checks
		// it instead.)
		if src, err := tlsconf.New(context.Background(), t.options(c, nil)); err != nil {
			p = append(p, err)
		} else {
			src.Close()
		}
	}
	return p
}

// options builds tlsconf's Options; aud and logger are added by the server.
func (t tlsConfig) options(c Config, o *tlsconf.Options) tlsconf.Options {
	ca, _ := tlsconf.ParseClientAuth(t.ClientAuth) // checked by validate
	opts := tlsconf.Options{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		ClientCRLFiles: t.ClientCRLFiles, CRLFailClosed: t.CRLFailClosed, ClientAuth: ca,
		AllowedClients: t.AllowClients, AllowedClientsFile: t.AllowClientsFile,
		ServerName: t.ServerName, Curves: t.Curves,
	}
	if o != nil {
		opts.Audit, opts.Logger = o.Audit, o.Logger
	}
	c.ACME.apply(&opts)
	return opts
}

// readablePaths lists the files read after start (for the sandbox).
func (t tlsConfig) readablePaths() []string {
	var out []string
	for _, f := range append([]string{t.CertFile, t.KeyFile, t.ClientCAFile, t.AllowClientsFile}, t.ClientCRLFiles...) {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// curvesFlag is --tls-curves, checked when set.
type curvesFlag struct{ p *[]tls.CurveID }

func (f curvesFlag) String() string {
	if f.p == nil {
		return ""
	}
	return tlsconf.FormatCurves(*f.p)
}

func (f curvesFlag) Set(v string) error {
	c, err := tlsconf.ParseCurves(v)
	if err != nil {
		return err
	}
	*f.p = c
	return nil
}
