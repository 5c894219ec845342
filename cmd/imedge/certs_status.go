package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/tlsconf"
)

const statusUsage = `Usage:
  imedge certs status [--addr HOST:PORT] [--json] [--timeout 5s]
                      [--cacert FILE --cert FILE --key FILE]

Asks a running imedge's admin listener (GET /status) what TLS material it serves and prints
it, one "key value" line each (or the "tls" member of /status as JSON with --json):
  server_cert_sha256 HEX          the served certificate (SHA-256 of the DER, as "certs inspect")
  server_cert_not_after TIME
  client_ca_sha256 HEX SUBJECT    one line per CA of the client-CA bundle
  crl FILE number=N next_update=TIME revoked=N stale=BOOL
  last_reload_at / last_reload_ok / last_reload_error, reload_successes, reload_failures
With --cacert (and --cert/--key for an admin listener that wants mutual TLS) it uses https.
`

func certsStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge certs status", flag.ContinueOnError)
	addr := fs.String("addr", defaultAdminListen, "admin listener address (host:port)")
	asJSON := fs.Bool("json", false, "print the tls member of /status as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	var caFile, certFile, keyFile string
	fs.StringVar(&caFile, "cacert", "", "CA bundle of the admin listener's certificate (uses https)")
	fs.StringVar(&certFile, "cert", "", "client certificate for an admin listener with mutual TLS")
	fs.StringVar(&keyFile, "key", "", "private key for --cert")
	if help, err := parseFlags(fs, args, stdout, statusUsage); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("certs status: unexpected argument %q", fs.Arg(0))
	}
	if (certFile == "") != (keyFile == "") {
		return errors.New("certs status: --cert and --key go together")
	}
	if certFile != "" && caFile == "" {
		return errors.New("certs status: --cert needs --cacert (https)")
	}
	client, err := admin.NewClient(admin.ClientOptions{Addr: *addr, CAFile: caFile, CertFile: certFile, KeyFile: keyFile, Timeout: *timeout})
	if err != nil {
		return fmt.Errorf("certs status: %w", err)
	}
	defer client.Close()
	url := client.URL() + "/status"
	body, err := client.Get(context.Background(), "/status")
	if err != nil {
		return fmt.Errorf("certs status: asking %s: %w", url, err)
	}
	var doc struct {
		TLS json.RawMessage `json:"tls"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("certs status: decoding %s: %w", url, err)
	}
	if len(doc.TLS) == 0 || string(doc.TLS) == "null" {
		return fmt.Errorf("certs status: %s has no tls member", url)
	}
	if *asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, doc.TLS, "", "  "); err != nil {
			return fmt.Errorf("certs status: formatting: %w", err)
		}
		out.WriteByte('\n')
		_, err := stdout.Write(out.Bytes())
		return err
	}
	var st tlsconf.Status
	if err := json.Unmarshal(doc.TLS, &st); err != nil {
		return fmt.Errorf("certs status: decoding the tls member of %s: %w", url, err)
	}
	printTLSStatus(stdout, st)
	return nil
}

// printTLSStatus writes st as "key value" lines, stable for scripts.
func printTLSStatus(w io.Writer, st tlsconf.Status) {
	line := func(k string, v ...any) {
		fmt.Fprintf(w, "%-22s %s\n", k, strings.TrimSpace(fmt.Sprintln(v...)))
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	if st.ServerCert.SHA256 != "" {
		line("server_cert_sha256", st.ServerCert.SHA256)
		line("server_cert_not_after", ts(st.ServerCert.NotAfter))
		line("server_cert_subject", st.ServerCert.Subject)
	} else {
		line("server_cert_sha256", "-")
	}
	if st.ACME != nil {
		line("acme_domains", strings.Join(st.ACME.Domains, ","))
		line("acme_obtained", st.ACME.Obtained)
		if st.ACME.LastError != "" {
			line("acme_last_error", st.ACME.LastError)
		}
	}
	line("client_auth", st.ClientAuth)
	for _, ca := range st.ClientCAs {
		line("client_ca_sha256", ca.SHA256, ca.Subject)
	}
	for _, c := range st.CRLs {
		number := c.Number
		if number == "" {
			number = "-"
		}
		line("crl", c.File, "number="+number, "next_update="+ts(c.NextUpdate), fmt.Sprintf("revoked=%d stale=%t", c.Revoked, c.Stale))
	}
	line("loaded_at", ts(st.LoadedAt))
	line("last_reload_at", ts(st.LastReload.At))
	if !st.LastReload.At.IsZero() {
		line("last_reload_ok", st.LastReload.OK)
		if st.LastReload.Error != "" {
			line("last_reload_error", st.LastReload.Error)
		}
	}
	line("reload_successes", st.ReloadSuccesses)
	line("reload_failures", st.ReloadFailures)
}
