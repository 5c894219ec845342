package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
	results := certs.Check(certs.CheckOptions{CertFile: certFile, KeyFile: keyFile, Root: root, Names: names,
		MinValidity: *minValidity, Client: client, CRLFile: crlFile, CRLIssuer: crlIssuer})
	failed := 0
	for _, r := range results {
		verdict := "ok  "
		if !r.OK {
			verdict = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %-9s %s\n", verdict, r.Name, r.Detail)
	}
	if failed > 0 {
		return fmt.Errorf("certs check: %d of %d checks failed", failed, len(results))
	}
	fmt.Fprintf(stdout, "all %d checks passed\n", len(results))
	return nil
}
