package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/imedge/imedge/certs"
)

const certsUsage = `Usage:
  imedge certs ca      --out-cert FILE --out-key FILE [--cn NAME] [--days N] [--key-type T]
  imedge certs issue   --ca-cert FILE --ca-key FILE --out-cert FILE --out-key FILE
                       (--server | --client) [--cn NAME] [--dns NAME]... [--ip ADDR]... [--uri URI]...
                       [--days N] [--key-type T]
  imedge certs inspect [--json] FILE...
  imedge certs check   --cert FILE --key FILE [--root FILE] [--name NAME]... [--min-validity 720h]
                       [--crl FILE --crl-issuer FILE]       (validate a staged set; see certs check -h)
  imedge certs crl     --ca-cert FILE --ca-key FILE --out FILE [--revoke SERIAL]... [--days N] [--from FILE]
  imedge certs status  [--addr 127.0.0.1:9443] [--json]    (what a running imedge serves)

Key types: ecdsa-p256 (default), rsa-2048, rsa-3072. Private keys are written 0600.
`

func runCerts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, certsUsage)
		return errUsage
	}
	switch args[0] {
	case "ca":
		return certsCA(args[1:], stdout, stderr)
	case "issue":
		return certsIssue(args[1:], stdout, stderr)
	case "inspect":
		return certsInspect(args[1:], stdout, stderr)
	case "check":
		return certsCheck(args[1:], stdout, stderr)
	case "crl":
		return certsCRL(args[1:], stdout, stderr)
	case "status":
		return certsStatus(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, certsUsage)
		return nil
	}
	return usageErrorf("imedge certs: unknown subcommand %q%s", args[0],
		suggestWord(args[0], []string{"ca", "issue", "inspect", "check", "crl", "status"}))
}

type issueFlags struct {
	outCert, outKey, cn, keyType string
	days                         int
	dns, ips, uris               []string
}

func (f *issueFlags) register(fs *flag.FlagSet, defaultDays int) {
	fs.StringVar(&f.outCert, "out-cert", "", "where to write the certificate (PEM)")
	fs.StringVar(&f.outKey, "out-key", "", "where to write the private key (PEM, mode 0600)")
	fs.StringVar(&f.cn, "cn", "", "subject common name")
	fs.StringVar(&f.keyType, "key-type", string(certs.ECDSAP256), "ecdsa-p256, rsa-2048 or rsa-3072")
	fs.IntVar(&f.days, "days", defaultDays, "validity in days")
}

func (f *issueFlags) request(usage certs.Usage) (certs.Request, error) {
	if f.outCert == "" || f.outKey == "" {
		return certs.Request{}, fmt.Errorf("--out-cert and --out-key are required")
	}
	if f.days < 1 {
		return certs.Request{}, fmt.Errorf("--days must be positive")
	}
	now := time.Now()
	req := certs.Request{CommonName: f.cn, Usage: usage, KeyType: certs.KeyType(f.keyType),
		DNSNames: f.dns, NotBefore: now.Add(-5 * time.Minute), NotAfter: now.AddDate(0, 0, f.days)}
	for _, s := range f.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return certs.Request{}, fmt.Errorf("--ip %q: not an IP address", s)
		}
		req.IPs = append(req.IPs, ip)
	}
	for _, s := range f.uris {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" {
			return certs.Request{}, fmt.Errorf("--uri %q: want an absolute URI", s)
		}
		req.URIs = append(req.URIs, u)
	}
	return req, nil
}

func certsCA(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs ca", flag.ContinueOnError)
	const synopsis = "Usage: imedge certs ca --out-cert FILE --out-key FILE [--cn NAME] [--days N] [--key-type T]\n\nCreates a CA certificate and key (the key written 0600).\n"
	var f issueFlags
	f.register(fs, 3650)
	if help, err := parseFlags(fs, args, stdout, synopsis); help || err != nil {
		return err
	}
	if f.cn == "" {
		f.cn = "imedge CA"
	}
	req, err := f.request(certs.UsageCA)
	if err != nil {
		return fmt.Errorf("certs ca: %w", err)
	}
	ca, err := certs.NewCA(req)
	if err != nil {
		return err
	}
	if err := certs.WriteIssued(&certs.Issued{Cert: ca.Cert, Key: ca.Key}, f.outCert, f.outKey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote CA %s and key %s (0600)\n%s", f.outCert, f.outKey, certs.Describe(ca.Cert))
	return nil
}

func certsIssue(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs issue", flag.ContinueOnError)
	const synopsis = "Usage: imedge certs issue --ca-cert FILE --ca-key FILE --out-cert FILE --out-key FILE (--server | --client) [flags]\n\nIssues a server or client certificate from a CA (the key written 0600).\n"
	var f issueFlags
	var caCert, caKey string
	var server, client bool
	f.register(fs, 90)
	fs.StringVar(&caCert, "ca-cert", "", "issuing CA certificate (PEM)")
	fs.StringVar(&caKey, "ca-key", "", "issuing CA key (PEM)")
	fs.BoolVar(&server, "server", false, "a server certificate (serverAuth)")
	fs.BoolVar(&client, "client", false, "a client certificate (clientAuth)")
	fs.Var(listFlag{&f.dns}, "dns", "DNS SAN (repeatable)")
	fs.Var(listFlag{&f.ips}, "ip", "IP SAN (repeatable)")
	fs.Var(listFlag{&f.uris}, "uri", "URI SAN (repeatable)")
	if help, err := parseFlags(fs, args, stdout, synopsis); help || err != nil {
		return err
	}
	if server == client {
		return fmt.Errorf("certs issue: give exactly one of --server or --client")
	}
	usage := certs.UsageClient
	if server {
		usage = certs.UsageServer
		if len(f.dns) == 0 && len(f.ips) == 0 {
			return fmt.Errorf("certs issue: a server certificate needs at least one --dns or --ip")
		}
	}
	if f.cn == "" {
		switch {
		case len(f.dns) > 0:
			f.cn = f.dns[0]
		case len(f.uris) > 0:
			f.cn = f.uris[0]
		default:
			return fmt.Errorf("certs issue: give --cn, --dns or --uri")
		}
	}
	if caCert == "" || caKey == "" {
		return fmt.Errorf("certs issue: --ca-cert and --ca-key are required")
	}
	req, err := f.request(usage)
	if err != nil {
		return fmt.Errorf("certs issue: %w", err)
	}
	ca, err := certs.LoadCA(caCert, caKey)
	if err != nil {
		return err
	}
	iss, err := ca.Issue(req)
	if err != nil {
		return err
	}
	if err := certs.WriteIssued(iss, f.outCert, f.outKey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and key %s (0600), issued by %s\n%s", f.outCert, f.outKey, filepath.Base(caCert), certs.Describe(iss.Cert))
	return nil
}

func certsInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs inspect", flag.ContinueOnError)
	const synopsis = "Usage: imedge certs inspect [--json] FILE...\n\nDescribes the certificates, keys and CRLs in PEM or DER files.\n"
	asJSON := fs.Bool("json", false, "print JSON")
	if help, err := parseFlags(fs, args, stdout, synopsis); help || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("certs inspect: name at least one PEM file")
	}
	var all []certs.Info
	for _, path := range fs.Args() {
		list, err := certs.LoadCertificates(path)
		if err != nil {
			return err
		}
		for _, c := range list {
			all = append(all, certs.Describe(c))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for i, in := range all {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprint(stdout, in.String())
	}
	return nil
}
