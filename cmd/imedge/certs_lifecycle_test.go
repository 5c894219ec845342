package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/tlsconf"
)

// runCmd runs one imedge command in process and returns its output.
func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// checkLines maps each check name of `certs check` output to its verdicts.
func checkLines(out string) map[string][]string {
	m := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "ok" || f[0] == "FAIL") {
			m[f[1]] = append(m[f[1]], f[0])
		}
	}
	return m
}

func TestCertsCheck(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t, certstest.ValidFor(48*time.Hour))
	dir := t.TempDir()
	good := ca.WriteFiles(t, ca.Issue(t, certstest.Server("im.example.com", "127.0.0.1"), certstest.ValidFor(40*time.Hour)))
	other := ca.WriteFiles(t, ca.Issue(t, certstest.Server("other.example.com")))
	expired := ca.WriteFiles(t, ca.Issue(t, certstest.Server("im.example.com"),
		certstest.ValidBetween(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))))
	client := ca.WriteFiles(t, ca.Issue(t, certstest.Client("spiffe://im/cb")))
	rogue := certstest.NewCA(t)
	rogueRoot := filepath.Join(dir, "rogue.pem")
	rogue.WriteCA(t, rogueRoot)
	corrupt := filepath.Join(dir, "corrupt-key.pem")
	require.NoError(t, os.WriteFile(corrupt, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600))
	crl := filepath.Join(dir, "ca.crl")
	require.NoError(t, os.WriteFile(crl, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.CRL(t, big.NewInt(7))}), 0o644))
	staleCRL := filepath.Join(dir, "stale.crl")
	der, err := ca.RevocationList(nil, 1, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(staleCRL, der, 0o644))

	for _, tc := range []struct {
		name string
		args []string
		fail []string // checks expected to FAIL; empty means all pass
	}{
		{"all good", []string{"--cert", good.Cert, "--key", good.Key, "--root", good.CA, "--name", "im.example.com", "--name", "127.0.0.1", "--min-validity", "24h", "--crl", crl, "--crl-issuer", good.CA}, nil},
		{"mismatched pair", []string{"--cert", good.Cert, "--key", other.Key, "--min-validity", "1m"}, []string{"key"}},
		{"corrupt key", []string{"--cert", good.Cert, "--key", corrupt, "--min-validity", "1m"}, []string{"parse"}},
		{"expired", []string{"--cert", expired.Cert, "--key", expired.Key}, []string{"validity"}},
		{"too little validity left", []string{"--cert", good.Cert, "--key", good.Key, "--min-validity", "720h"}, []string{"validity"}},
		{"wrong root", []string{"--cert", good.Cert, "--key", good.Key, "--root", rogueRoot, "--min-validity", "1m"}, []string{"chain"}},
		{"client cert as server", []string{"--cert", client.Cert, "--key", client.Key, "--root", client.CA, "--min-validity", "1m"}, []string{"chain"}},
		{"client cert as client", []string{"--client", "--cert", client.Cert, "--key", client.Key, "--root", client.CA, "--min-validity", "1m"}, nil},
		{"name not covered", []string{"--cert", other.Cert, "--key", other.Key, "--name", "im.example.com", "--min-validity", "1m"}, []string{"name"}},
		{"CRL of another CA", []string{"--crl", crl, "--crl-issuer", rogueRoot}, []string{"crl"}},
		{"stale CRL", []string{"--crl", staleCRL, "--crl-issuer", good.CA}, []string{"crl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCmd(t, append([]string{"certs", "check"}, tc.args...)...)
			lines := checkLines(out)
			require.NotEmpty(t, lines, out)
			var failed []string
			for name, verdicts := range lines {
				for _, v := range verdicts {
					if v == "FAIL" {
						failed = append(failed, name)
					}
				}
			}
			assert.ElementsMatch(t, tc.fail, failed, out)
			if len(tc.fail) == 0 {
				assert.NoError(t, err)
				assert.Contains(t, out, "checks passed")
			} else {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "checks failed")
			}
		})
	}

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"--cert", good.Cert},
			{"--crl", crl},
			{},
			{"--root", good.CA, "--crl", crl, "--crl-issuer", good.CA},
		} {
			_, _, err := runCmd(t, append([]string{"certs", "check"}, args...)...)
			assert.Error(t, err, "%v", args)
		}
	})
}

func TestCertsCRL(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	files := ca.WriteFiles(t, ca.Issue(t))
	caKey := filepath.Join(t.TempDir(), "ca-key.pem")
	k, err := certs.EncodePrivateKeyPEM(ca.Key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caKey, k, 0o600))
	out1 := filepath.Join(t.TempDir(), "one.crl")
	out2 := filepath.Join(t.TempDir(), "two.crl")

	stdout, _, err := runCmd(t, "certs", "crl", "--ca-cert", files.CA, "--ca-key", caKey, "--out", out1, "--revoke", "3A:9F", "--days", "3")
	require.NoError(t, err)
	assert.Contains(t, stdout, "number:        1")
	l1 := parseCRLFile(t, out1)
	require.NoError(t, l1.CheckSignatureFrom(ca.Cert))
	require.Len(t, l1.RevokedCertificateEntries, 1)
	assert.Equal(t, "3a9f", l1.RevokedCertificateEntries[0].SerialNumber.Text(16))
	assert.WithinDuration(t, time.Now().AddDate(0, 0, 3), l1.NextUpdate, time.Minute)

	// That kept entries keep their own revocation time is certs'
	// TestSignCRL_KeepsEntriesAndNumbersAfterThePrevious, at set times.
	_, _, err = runCmd(t, "certs", "crl", "--ca-cert", files.CA, "--ca-key", caKey, "--out", out2, "--from", out1, "--revoke", "0xabc", "--revoke", "3a9f")
	require.NoError(t, err)
	l2 := parseCRLFile(t, out2)
	assert.Equal(t, int64(2), l2.Number.Int64(), "numbered after --from")
	require.Len(t, l2.RevokedCertificateEntries, 2, "kept and added, no duplicate")
	assert.Equal(t, l1.RevokedCertificateEntries[0].RevocationTime, l2.RevokedCertificateEntries[0].RevocationTime, "kept entries keep their revocation time")
	assert.Equal(t, "abc", l2.RevokedCertificateEntries[1].SerialNumber.Text(16))

	other := certstest.NewCA(t)
	otherFiles := other.WriteFiles(t, other.Issue(t))
	otherKey := filepath.Join(t.TempDir(), "other-key.pem")
	k, err = certs.EncodePrivateKeyPEM(other.Key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(otherKey, k, 0o600))
	_, _, err = runCmd(t, "certs", "crl", "--ca-cert", otherFiles.CA, "--ca-key", otherKey, "--out", out2, "--from", out1)
	require.Error(t, err, "--from a CRL of another CA")
	_, _, err = runCmd(t, "certs", "crl", "--ca-cert", files.CA, "--ca-key", caKey, "--out", out2, "--revoke", "xyz")
	require.Error(t, err)
	_, _, err = runCmd(t, "certs", "crl", "--ca-cert", files.CA, "--ca-key", caKey)
	require.Error(t, err)
}

func parseCRLFile(t *testing.T, path string) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lists, err := certs.ParseCRLs(b)
	require.NoError(t, err)
	require.Len(t, lists, 1)
	return lists[0]
}

func TestCertsStatus_PrintsTheTLSMember(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	leaf := ca.Issue(t, certstest.Server("im.example.com"))
	st := tlsconf.Status{
		ClientAuth: "require",
		ServerCert: tlsconf.CertStatus{Subject: "CN=im.example.com", SHA256: certs.CertFingerprint(leaf.Cert), NotAfter: leaf.Cert.NotAfter.UTC()},
		ClientCAs: []tlsconf.CertStatus{
			{Subject: "CN=Tencent A", SHA256: strings.Repeat("a", 64)},
			{Subject: "CN=Tencent B", SHA256: strings.Repeat("b", 64)},
		},
		CRLs:            []tlsconf.CRLStatus{{File: "/etc/imedge/im.crl", Number: "7", NextUpdate: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Revoked: 2}},
		LastReload:      tlsconf.ReloadStatus{At: time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), OK: false, Error: "reloading TLS material: bad key"},
		ReloadSuccesses: 3,
		ReloadFailures:  1,
	}
	var status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"version": "x", "tls": st, "outbox": map[string]int{"pending": 0}})
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	out, _, err := runCmd(t, "certs", "status", "--addr", addr)
	require.NoError(t, err)
	want := map[string]string{
		"server_cert_sha256":    st.ServerCert.SHA256,
		"server_cert_not_after": st.ServerCert.NotAfter.Format(time.RFC3339),
		"client_auth":           "require",
		"last_reload_at":        "2029-01-01T00:00:00Z",
		"last_reload_ok":        "false",
		"last_reload_error":     "reloading TLS material: bad key",
		"reload_successes":      "3",
		"reload_failures":       "1",
		"crl":                   "/etc/imedge/im.crl number=7 next_update=2030-01-02T03:04:05Z revoked=2 stale=false",
	}
	got := map[string]string{}
	var cas []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		v = strings.TrimSpace(v)
		if k == "client_ca_sha256" {
			cas = append(cas, v)
			continue
		}
		got[k] = v
	}
	for k, v := range want {
		assert.Equal(t, v, got[k], k)
	}
	assert.Equal(t, []string{strings.Repeat("a", 64) + " CN=Tencent A", strings.Repeat("b", 64) + " CN=Tencent B"}, cas)

	out, _, err = runCmd(t, "certs", "status", "--addr", "http://"+addr+"/", "--json")
	require.NoError(t, err)
	var back tlsconf.Status
	require.NoError(t, json.Unmarshal([]byte(out), &back))
	assert.Equal(t, st.ServerCert.SHA256, back.ServerCert.SHA256)
	assert.Len(t, back.ClientCAs, 2)

	status = http.StatusServiceUnavailable
	_, _, err = runCmd(t, "certs", "status", "--addr", addr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	_, _, err = runCmd(t, "certs", "status", "--addr", "127.0.0.1:1", "--timeout", "2s")
	require.Error(t, err)
}

func TestACMEConfig_Validate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	p := ca.WriteFiles(t, ca.Issue(t, certstest.Server("localhost")))
	base := func() Config {
		c := defaultConfig()
		c.IM.SdkAppid = "1400000001"
		c.Delivery.URL = "http://127.0.0.1:1/x"
		c.TLS.ClientCAFile = p.CA
		c.State.Dir = dir
		c.ACME.Domains = []string{"im.example.com"}
		c.ACME.setStateDir(dir)
		return c
	}
	require.NoError(t, base().Validate(), "with ACME, --cert and --key are not required")
	assert.Equal(t, filepath.Join(dir, "acme"), base().ACME.storageDir())

	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"ACME with cert files", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = p.Cert, p.Key }, "exclusive"},
		{"http directory", func(c *Config) { c.ACME.CA = "http://acme.example/dir" }, "--acme-ca"},
		{"IP domain", func(c *Config) { c.ACME.Domains = []string{"192.0.2.1"} }, "not an IP address"},
		{"missing roots file", func(c *Config) { c.ACME.CARoots = filepath.Join(dir, "nope.pem") }, "--acme-ca-roots"},
		{"email without domain", func(c *Config) {
			c.ACME.Domains = nil
			c.TLS.CertFile, c.TLS.KeyFile = p.Cert, p.Key
			c.ACME.Email = "ops@example.com"
		}, "need --acme-domain"},
		{"no ACME and no cert", func(c *Config) { c.ACME.Domains = nil }, "--cert is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	var o tlsconf.Options
	c := base()
	c.ACME.Email, c.ACME.CARoots = "ops@example.com", p.CA
	c.ACME.apply(&o)
	assert.Equal(t, []string{"im.example.com"}, o.ACMEDomains)
	assert.Equal(t, "ops@example.com", o.ACMEEmail)
	assert.Equal(t, tlsconf.DefaultACMECA, o.ACMECA)
	assert.Equal(t, filepath.Join(dir, "acme"), o.ACMEStorage)
	assert.Equal(t, p.CA, o.ACMERootsFile)
}
