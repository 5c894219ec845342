package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// CheckOptions names a staged certificate set to check before it goes
// live. CertFile and KeyFile go together; CRLFile and CRLIssuer go
// together; at least one pair is required.
type CheckOptions struct {
	CertFile    string        // certificate chain, PEM, leaf first
	KeyFile     string        // its private key, PEM
	Root        string        // PEM root(s) the chain must lead to; "" skips the chain check
	Names       []string      // DNS names or IPs the leaf must cover
	MinValidity time.Duration // validity the leaf must have left
	Client      bool          // check for clientAuth instead of serverAuth
	CRLFile     string        // CRL, PEM or DER
	CRLIssuer   string        // PEM CA certificate or bundle that must have signed it
	Now         time.Time     // the time checked at; zero means time.Now()
}

// CheckResult is the outcome of one named check: parse, key, validity,
// chain, name or crl.
type CheckResult struct {
	Name   string
	OK     bool
	Detail string // what was found, for the operator
}

// Check runs every check o asks for and returns one result per check, in a
// fixed order: parse, key, validity, chain, one name check per name, one crl
// check per CRL in the file. A check that cannot run because an earlier one
// failed (no key to compare, say) is left out. It reads the files only.
func Check(o CheckOptions) []CheckResult {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	var r checkList
	if o.CertFile != "" {
		r.pair(o)
	}
	if o.CRLFile != "" {
		r.crl(o)
	}
	return r
}

type checkList []CheckResult

func (r *checkList) ok(name, format string, a ...any) {
	*r = append(*r, CheckResult{Name: name, OK: true, Detail: fmt.Sprintf(format, a...)})
}

func (r *checkList) fail(name, format string, a ...any) {
	*r = append(*r, CheckResult{Name: name, Detail: fmt.Sprintf(format, a...)})
}

func (r *checkList) pair(o CheckOptions) {
	chain, err := LoadCertificates(o.CertFile)
	if err != nil {
		r.fail("parse", "%v", err)
		return
	}
	leaf := chain[0]
	var key crypto.Signer
	keyPEM, err := ReadFile("reading private key", o.KeyFile)
	if err == nil {
		if key, err = ParsePrivateKeyPEM(keyPEM); err != nil {
			err = &FileError{Path: o.KeyFile, Op: "parsing private key", Err: err}
		}
	}
	if err != nil {
		r.fail("parse", "%v", err)
	} else {
		r.ok("parse", "%d certificate(s) in %s, leaf %s; key in %s", len(chain), o.CertFile, leaf.Subject, o.KeyFile)
		if KeyMatches(leaf, key) {
			r.ok("key", "matches the leaf (spki sha256 %s)", Fingerprint(leaf))
		} else {
			r.fail("key", "%s does not belong to the leaf of %s", o.KeyFile, o.CertFile)
		}
	}
	r.validity(leaf, o)
	if o.Root != "" {
		r.chain(chain, o)
	}
	for _, n := range o.Names {
		if err := leaf.VerifyHostname(n); err != nil {
			r.fail("name", "%s is not covered (DNS %v, IP %v)", n, leaf.DNSNames, leaf.IPAddresses)
		} else {
			r.ok("name", "%s is covered", n)
		}
	}
}

func (r *checkList) validity(leaf *x509.Certificate, o CheckOptions) {
	left := leaf.NotAfter.Sub(o.Now)
	switch {
	case o.Now.Before(leaf.NotBefore):
		r.fail("validity", "not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		r.fail("validity", "expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < o.MinValidity:
		r.fail("validity", "only %s left (until %s), less than --min-validity %s", roundDuration(left), leaf.NotAfter.UTC().Format(time.RFC3339), o.MinValidity)
	default:
		r.ok("validity", "until %s (%s left)", leaf.NotAfter.UTC().Format(time.RFC3339), roundDuration(left))
	}
}

func (r *checkList) chain(chain []*x509.Certificate, o CheckOptions) {
	leaf := chain[0]
	pool, roots, err := LoadPool(o.Root)
	if err != nil {
		r.fail("chain", "%v", err)
		return
	}
	usage, usageName := x509.ExtKeyUsageServerAuth, "serverAuth"
	if o.Client {
		usage, usageName = x509.ExtKeyUsageClientAuth, "clientAuth"
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: o.Now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		r.fail("chain", "does not chain to %s (%d root(s)) for %s: %v", o.Root, len(roots), usageName, err)
		return
	}
	path := make([]string, 0, len(chains[0]))
	for _, c := range chains[0][1:] {
		path = append(path, c.Subject.String())
	}
	r.ok("chain", "%s → %s (%s)", leaf.Subject, strings.Join(path, " → "), usageName)
}

func (r *checkList) crl(o CheckOptions) {
	issuers, err := LoadCertificates(o.CRLIssuer)
	if err != nil {
		r.fail("crl", "%v", err)
		return
	}
	data, err := ReadFile("reading CRL", o.CRLFile)
	if err != nil {
		r.fail("crl", "%v", err)
		return
	}
	lists, err := ParseCRLs(data)
	if err != nil {
		r.fail("crl", "%v", &FileError{Path: o.CRLFile, Op: "parsing CRL", Err: err})
		return
	}
	for i, l := range lists {
		var signer *x509.Certificate
		for _, c := range issuers {
			if l.CheckSignatureFrom(c) == nil {
				signer = c
				break
			}
		}
		label := o.CRLFile
		if len(lists) > 1 {
			label = fmt.Sprintf("%s (CRL %d)", o.CRLFile, i+1)
		}
		switch {
		case signer == nil:
			r.fail("crl", "%s is not signed by any certificate in %s (issuer named in it: %s)", label, o.CRLIssuer, l.Issuer)
		case !l.NextUpdate.IsZero() && o.Now.After(l.NextUpdate):
			r.fail("crl", "%s is past its next update %s", label, l.NextUpdate.UTC().Format(time.RFC3339))
		default:
			next := "none"
			if !l.NextUpdate.IsZero() {
				next = l.NextUpdate.UTC().Format(time.RFC3339)
			}
			r.ok("crl", "%s signed by %s, number %s, next update %s, %d revoked", label, signer.Subject, l.Number, next, len(l.RevokedCertificateEntries))
		}
	}
}

// roundDuration shortens d for display: days and hours above two days,
// else Go duration syntax rounded to the second.
func roundDuration(d time.Duration) string {
	if d > 48*time.Hour {
		h := int64(d.Round(time.Hour) / time.Hour)
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
	return d.Round(time.Second).String()
}
