package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
)

const crlUsage = `Usage:
  imedge certs crl --ca-cert FILE --ca-key FILE --out FILE [--revoke SERIAL]... [--days N] [--from FILE]

Writes a CRL (PEM "X509 CRL", mode 0644, atomically) signed by the CA. SERIAL is hex, as
"imedge certs inspect" and the audit log's cert_serial print it (colons allowed). --from
carries over the entries of an existing CRL of the same CA and numbers the new one after it.
`

func certsCRL(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs crl", flag.ContinueOnError)
	var caCert, caKey, out, from string
	var revoke []string
	days := fs.Int("days", 30, "validity of the CRL (NextUpdate) in days")
	fs.StringVar(&caCert, "ca-cert", "", "CA certificate (PEM) that signs the CRL")
	fs.StringVar(&caKey, "ca-key", "", "CA key (PEM)")
	fs.StringVar(&out, "out", "", "where to write the CRL (PEM)")
	fs.StringVar(&from, "from", "", "existing CRL of this CA whose entries are kept (PEM or DER)")
	fs.Var(listFlag{&revoke}, "revoke", "serial number to revoke, hex (repeatable)")
	if help, err := parseFlags(fs, args, stdout, crlUsage); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("certs crl: unexpected argument %q", fs.Arg(0))
	}
	if caCert == "" || caKey == "" || out == "" {
		return errors.New("certs crl: --ca-cert, --ca-key and --out are required")
	}
	if *days < 1 {
		return errors.New("certs crl: --days must be positive")
	}
	ca, err := certs.LoadCA(caCert, caKey)
	if err != nil {
		return err
	}
	u := certs.CRLUpdate{Validity: time.Duration(*days) * 24 * time.Hour}
	if from != "" {
		if u.From, err = certs.LoadCRLOf(from, ca.Cert); err != nil {
			return err
		}
	}
	for _, s := range revoke {
		serial, err := certs.ParseSerial(s)
		if err != nil {
			return fmt.Errorf("certs crl: --revoke %q: %w", s, err)
		}
		u.Revoke = append(u.Revoke, serial)
	}
	res, err := certs.SignCRL(ca, u)
	if err != nil {
		return fmt.Errorf("certs crl: %w", err)
	}
	for _, s := range res.AlreadyRevoked {
		fmt.Fprintf(stdout, "serial %s is already revoked\n", s.Text(16))
	}
	if err := certs.WriteFileAtomic(out, res.PEM, 0o644); err != nil {
		return err
	}
	hex := func(ns []*big.Int) string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = n.Text(16)
		}
		return strings.Join(out, " ")
	}
	fmt.Fprintf(stdout, "wrote CRL %s\n", out)
	fmt.Fprintf(stdout, "issuer:        %s\n", ca.Cert.Subject)
	fmt.Fprintf(stdout, "number:        %s\n", res.Number)
	fmt.Fprintf(stdout, "next update:   %s\n", res.NextUpdate.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "revoked:       %d %s\n", len(res.Revoked), hex(res.Revoked))
	if len(res.Added) > 0 {
		fmt.Fprintf(stdout, "newly revoked: %s\n", hex(res.Added))
	}
	return nil
}
