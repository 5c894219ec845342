package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"slices"
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
	now := time.Now()
	var entries []x509.RevocationListEntry
	number := big.NewInt(1)
	if from != "" {
		old, err := loadCRLFrom(from, ca.Cert)
		if err != nil {
			return err
		}
		entries = old.RevokedCertificateEntries
		if old.Number != nil {
			number.Add(old.Number, big.NewInt(1))
		}
	}
	var added []string
	for _, s := range revoke {
		serial, err := parseSerial(s)
		if err != nil {
			return fmt.Errorf("certs crl: --revoke %q: %w", s, err)
		}
		if slices.ContainsFunc(entries, func(e x509.RevocationListEntry) bool { return e.SerialNumber.Cmp(serial) == 0 }) {
			fmt.Fprintf(stdout, "serial %s is already revoked\n", serial.Text(16))
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: now})
		added = append(added, serial.Text(16))
	}
	// Entries keep their original revocation times, which
	// certs.CA.RevocationList would reset; hence the direct call.
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now.Add(-time.Minute), // tolerate a slightly slow verifier clock
		NextUpdate:                now.AddDate(0, 0, *days),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return fmt.Errorf("certs crl: signing CRL: %w", err)
	}
	if err := certs.WriteFileAtomic(out, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		return err
	}
	serials := make([]string, 0, len(entries))
	for _, e := range entries {
		serials = append(serials, e.SerialNumber.Text(16))
	}
	fmt.Fprintf(stdout, "wrote CRL %s\n", out)
	fmt.Fprintf(stdout, "issuer:        %s\n", ca.Cert.Subject)
	fmt.Fprintf(stdout, "number:        %s\n", number)
	fmt.Fprintf(stdout, "next update:   %s\n", now.AddDate(0, 0, *days).UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "revoked:       %d %s\n", len(entries), strings.Join(serials, " "))
	if len(added) > 0 {
		fmt.Fprintf(stdout, "newly revoked: %s\n", strings.Join(added, " "))
	}
	return nil
}

// parseSerial reads a serial number in hex ("3a9f", "0x3a9f", "3A:9F").
func parseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	h = strings.TrimPrefix(h, "0x")
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || h == "" || n.Sign() < 0 {
		return nil, errors.New("want a hexadecimal serial number")
	}
	return n, nil
}

// loadCRLFrom reads path and returns its CRL signed by ca.
func loadCRLFrom(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	data, err := certs.ReadFile("reading CRL", path)
	if err != nil {
		return nil, err
	}
	lists, err := certs.ParseCRLs(data)
	if err != nil {
		return nil, &certs.FileError{Path: path, Op: "parsing CRL", Err: err}
	}
	for _, l := range lists {
		if l.CheckSignatureFrom(ca) == nil {
			return l, nil
		}
	}
	return nil, &certs.FileError{Path: path, Op: "reading CRL", Err: fmt.Errorf("no CRL in it is signed by %s", ca.Subject)}
}
