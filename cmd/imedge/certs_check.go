package main

import (
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
)

const checkUsage = `Usage:
  imedge certs check --cert FILE --key FILE [--root FILE] [--name NAME]... [--min-validity 720h]
                     [--client] [--crl FILE --crl-issuer FILE]
  imedge certs check --crl FILE --crl-issuer FILE

Validates a staged certificate set before it goes live. Prints one line per check, "ok" or
"FAIL", and exits non-zero when any check fails:
  parse            the certificate file (leaf first, then intermediates) and the key parse
  key              the key belongs to the leaf
  validity         the leaf is valid now, with at least --min-validity left
  chain            the leaf chains to --root through the file's intermediates, for server
                   authentication (client authentication with --client)
  name             the leaf's SANs cover each --name
  crl              each CRL in --crl is signed by a certificate of --crl-issuer (a CA or a
                   bundle) and is not past its NextUpdate
`

// checkRun collects check results and prints them as they come.
type checkRun struct {
	w      io.Writer
	total  int
	failed int
}

func (c *checkRun) ok(name, format string, a ...any) {
	c.total++
	fmt.Fprintf(c.w, "ok   %-9s %s\n", name, fmt.Sprintf(format, a...))
}

func (c *checkRun) fail(name, format string, a ...any) {
	c.total++
	c.failed++
	fmt.Fprintf(c.w, "FAIL %-9s %s\n", name, fmt.Sprintf(format, a...))
}

func certsCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs check", flag.ContinueOnError)
	var certFile, keyFile, root, crlFile, crlIssuer string
	var names []string
	var client bool
	minValidity := fs.Duration("min-validity", 720*time.Hour, "least validity the leaf must have left")
	fs.StringVar(&certFile, "cert", "", "certificate chain, PEM, leaf first")
	fs.StringVar(&keyFile, "key", "", "private key, PEM")
	fs.StringVar(&root, "root", "", "PEM root(s) the chain must lead to")
	fs.Var(listFlag{&names}, "name", "a name (DNS or IP) the certificate must cover (repeatable)")
	fs.BoolVar(&client, "client", false, "check a client certificate (clientAuth) instead of a server certificate")
	fs.StringVar(&crlFile, "crl", "", "CRL to check, PEM or DER")
	fs.StringVar(&crlIssuer, "crl-issuer", "", "PEM CA certificate or bundle that must have signed --crl")
	if help, err := parseFlags(fs, args, stdout, checkUsage); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("certs check: unexpected argument %q", fs.Arg(0))
	case (certFile == "") != (keyFile == ""):
		return errors.New("certs check: --cert and --key go together")
	case certFile == "" && crlFile == "":
		fmt.Fprint(stderr, checkUsage)
		return errors.New("certs check: give --cert and --key, or --crl")
	case (crlFile == "") != (crlIssuer == ""):
		return errors.New("certs check: --crl and --crl-issuer go together")
	case certFile == "" && (root != "" || len(names) > 0):
		return errors.New("certs check: --root and --name need --cert and --key")
	case *minValidity < 0:
		return errors.New("certs check: --min-validity must not be negative")
	}
	run := &checkRun{w: stdout}
	now := time.Now()
	if certFile != "" {
		checkPair(run, now, certFile, keyFile, root, names, *minValidity, client)
	}
	if crlFile != "" {
		checkCRL(run, now, crlFile, crlIssuer)
	}
	if run.failed > 0 {
		return fmt.Errorf("certs check: %d of %d checks failed", run.failed, run.total)
	}
	fmt.Fprintf(stdout, "all %d checks passed\n", run.total)
	return nil
}

func checkPair(run *checkRun, now time.Time, certFile, keyFile, root string, names []string, minValidity time.Duration, client bool) {
	chain, err := certs.LoadCertificates(certFile)
	if err != nil {
		run.fail("parse", "%v", err)
		return
	}
	leaf := chain[0]
	var key crypto.Signer
	keyPEM, err := certs.ReadFile("reading private key", keyFile)
	if err == nil {
		if key, err = certs.ParsePrivateKeyPEM(keyPEM); err != nil {
			err = &certs.FileError{Path: keyFile, Op: "parsing private key", Err: err}
		}
	}
	if err != nil {
		run.fail("parse", "%v", err)
	} else {
		run.ok("parse", "%d certificate(s) in %s, leaf %s; key in %s", len(chain), certFile, leaf.Subject, keyFile)
		if certs.KeyMatches(leaf, key) {
			run.ok("key", "matches the leaf (spki sha256 %s)", certs.Fingerprint(leaf))
		} else {
			run.fail("key", "%s does not belong to the leaf of %s", keyFile, certFile)
		}
	}

	left := leaf.NotAfter.Sub(now)
	switch {
	case now.Before(leaf.NotBefore):
		run.fail("validity", "not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		run.fail("validity", "expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case left < minValidity:
		run.fail("validity", "only %s left (until %s), less than --min-validity %s", roundDur(left), leaf.NotAfter.UTC().Format(time.RFC3339), minValidity)
	default:
		run.ok("validity", "until %s (%s left)", leaf.NotAfter.UTC().Format(time.RFC3339), roundDur(left))
	}

	if root != "" {
		pool, roots, err := certs.LoadPool(root)
		if err != nil {
			run.fail("chain", "%v", err)
		} else {
			usage, usageName := x509.ExtKeyUsageServerAuth, "serverAuth"
			if client {
				usage, usageName = x509.ExtKeyUsageClientAuth, "clientAuth"
			}
			inter := x509.NewCertPool()
			for _, c := range chain[1:] {
				inter.AddCert(c)
			}
			chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
			if err != nil {
				run.fail("chain", "does not chain to %s (%d root(s)) for %s: %v", root, len(roots), usageName, err)
			} else {
				path := make([]string, 0, len(chains[0]))
				for _, c := range chains[0][1:] {
					path = append(path, c.Subject.String())
				}
				run.ok("chain", "%s → %s (%s)", leaf.Subject, strings.Join(path, " → "), usageName)
			}
		}
	}

	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			run.fail("name", "%s is not covered (DNS %v, IP %v)", n, leaf.DNSNames, leaf.IPAddresses)
		} else {
			run.ok("name", "%s is covered", n)
		}
	}
}

func checkCRL(run *checkRun, now time.Time, crlFile, issuerFile string) {
	issuers, err := certs.LoadCertificates(issuerFile)
	if err != nil {
		run.fail("crl", "%v", err)
		return
	}
	data, err := certs.ReadFile("reading CRL", crlFile)
	if err != nil {
		run.fail("crl", "%v", err)
		return
	}
	lists, err := certs.ParseCRLs(data)
	if err != nil {
		run.fail("crl", "%v", &certs.FileError{Path: crlFile, Op: "parsing CRL", Err: err})
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
		label := crlFile
		if len(lists) > 1 {
			label = fmt.Sprintf("%s (CRL %d)", crlFile, i+1)
		}
		switch {
		case signer == nil:
			run.fail("crl", "%s is not signed by any certificate in %s (issuer named in it: %s)", label, issuerFile, l.Issuer)
		case !l.NextUpdate.IsZero() && now.After(l.NextUpdate):
			run.fail("crl", "%s is past its next update %s", label, l.NextUpdate.UTC().Format(time.RFC3339))
		default:
			next := "none"
			if !l.NextUpdate.IsZero() {
				next = l.NextUpdate.UTC().Format(time.RFC3339)
			}
			run.ok("crl", "%s signed by %s, number %s, next update %s, %d revoked", label, signer.Subject, l.Number, next, len(l.RevokedCertificateEntries))
		}
	}
}

// roundDur shortens d for display: days and hours above two days, else
// Go duration syntax rounded to the second.
func roundDur(d time.Duration) string {
	if d > 48*time.Hour {
		h := int64(d.Round(time.Hour) / time.Hour)
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
	return d.Round(time.Second).String()
}
