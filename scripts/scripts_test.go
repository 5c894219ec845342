package scripts_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestScripts_ShellcheckClean(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	require.NoError(t, err, "shellcheck is needed (apt-get install shellcheck; .ci/run installs it)")
	// From the repository root, so that "# shellcheck source=scripts/lib.sh"
	// resolves and sourced helpers are checked with their callers.
	scripts, err := filepath.Glob("../scripts/*.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for i, s := range scripts {
		scripts[i] = strings.TrimPrefix(s, "../")
	}
	cmd := exec.Command(sc, append([]string{"-x", "--severity=style"}, scripts...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "shellcheck:\n%s", out)
	for _, s := range scripts {
		b := string(readFile(t, filepath.Join("..", s)))
		if strings.HasSuffix(s, "/lib.sh") {
			continue // sourced by the others, which set the options
		}
		assert.True(t, strings.HasPrefix(b, "#!/usr/bin/env bash\n# "), "%s starts with a header comment", s)
		header, _, _ := strings.Cut(b, "\nset -")
		assert.Contains(t, header, "Usage:", "%s documents its usage in the header", s)
		assert.Contains(t, b, "\nset -euo pipefail\n", s)
		fi, err := os.Stat(filepath.Join("..", s))
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode()&0o100, "%s is executable", s)
	}
}

// loadClients are the HTTP clients of one client certificate: one keeps
// its connection alive, one opens a new connection with a full handshake
// per request, one opens a new connection per request and resumes TLS
// sessions from its cache.
type loadClients struct {
	keep, full, resume *http.Client
}

func newLoadClients(t *testing.T, roots *x509.CertPool, cert *certs.Issued) *loadClients {
	cfg := clientTLS(t, roots, cert)
	resume := cfg.Clone()
	resume.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	return &loadClients{
		keep:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 4}},
		full:   &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.Clone(), DisableKeepAlives: true}},
		resume: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: resume, DisableKeepAlives: true}},
	}
}

func (c *loadClients) close() {
	c.keep.CloseIdleConnections()
	c.full.CloseIdleConnections()
	c.resume.CloseIdleConnections()
}

// load keeps sending callbacks until stopped and counts the outcomes.
type load struct {
	addr    string
	clients atomic.Pointer[loadClients]
	ok      atomic.Int64
	failed  atomic.Int64
	resumed atomic.Int64
	newLeaf atomic.Int64 // responses showing the watched server certificate
	watch   atomic.Pointer[string]

	mu   sync.Mutex
	errs []string
}

func (l *load) run(ctx context.Context, worker int) {
	for n := 0; ctx.Err() == nil; n++ {
		c := l.clients.Load()
		hc := c.resume
		switch worker {
		case 0:
			hc = c.keep
		case 1:
			hc = c.full
		}
		body := friendDeleteBody(fmt.Sprintf("w%d-%d", worker, n), "bob")
		resp, err := hc.Post(callbackURL(l.addr, "198.51.100.7"), "application/json", strings.NewReader(body))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.fail(fmt.Sprintf("worker %d: %v", worker, err))
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			l.fail(fmt.Sprintf("worker %d: status %d", worker, resp.StatusCode))
			continue
		}
		l.ok.Add(1)
		if resp.TLS.DidResume {
			l.resumed.Add(1)
		}
		if w := l.watch.Load(); w != nil && certs.CertFingerprint(resp.TLS.PeerCertificates[0]) == *w {
			l.newLeaf.Add(1)
		}
	}
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, msg)
	}
	l.mu.Unlock()
}

// waitMore waits until n more requests succeeded.
func (l *load) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	eventually(t, 30*time.Second, func() bool { return l.ok.Load() >= target || l.failed.Load() > 0 },
		"load made no progress (ok %d, failed %d)", l.ok.Load(), l.failed.Load())
}

func TestScripts_RotationUnderLoad(t *testing.T) {
	f := newFixture(t)
	f.crl = "" // a CRL of the old CA would block its removal (see TestRotateClientCA_RemovalRefusedByImedgeIsRolledBack)
	// The file watcher stays on (its default interval) as in production;
	// the scripts' SIGHUP makes the reload immediate.
	p := startImedge(t, f)
	roots := certstest.Pool(f.serverCA)
	oldSHA := p.servedSHA256(t)

	l := &load{addr: p.addr}
	l.clients.Store(newLoadClients(t, roots, f.client))
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { l.run(ctx, w) })
	}
	defer func() { stop(); wg.Wait() }()
	l.waitMore(t, 30)

	// 1. Server certificate.
	newCert, newKey := stage(t, f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	newSHA := certs.CertFingerprint(mustLeaf(t, newCert))
	l.watch.Store(&newSHA)
	out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
		"--new-cert", newCert, "--new-key", newKey, "--pid", p.pid(), "--admin", p.admin,
		"--root", f.serverCA.WriteFiles(t, f.client).CA, "--name", "localhost", "--min-validity", "30m")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "confirmed: imedge serves "+newSHA)
	assert.Equal(t, newSHA, p.servedSHA256(t))
	assert.Equal(t, newSHA, certs.CertFingerprint(servedLeaf(t, p.addr, clientTLS(t, roots, f.client))), "a new handshake gets the new certificate")
	fi, err := os.Stat(f.keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the live key stays 0600")
	l.waitMore(t, 30)
	// Resumed sessions and the kept-alive connection keep the certificate
	// of their original handshake; full handshakes get the new one.
	eventually(t, 10*time.Second, func() bool { return l.newLeaf.Load() > 0 }, "the load's full handshakes see the new certificate")

	// 2. Client CA: add the new CA next to the old one, move the callers to
	// a certificate of the new CA, then drop the old CA.
	ca2 := certstest.NewCA(t, certstest.CommonName("client CA 2"))
	ca2File := filepath.Join(t.TempDir(), "ca2.pem")
	ca2.WriteCA(t, ca2File)
	out, code = runScript(t, "rotate-client-ca.sh", "add", "--bundle", f.bundle, "--ca", ca2File,
		"--pid", p.pid(), "--admin", p.admin)
	require.Equal(t, 0, code, out)
	assert.ElementsMatch(t, []string{certs.CertFingerprint(f.clientCA.Cert), certs.CertFingerprint(ca2.Cert)}, p.clientCAs(t))
	l.waitMore(t, 30)

	client2 := ca2.Issue(t, certstest.Client("spiffe://tencent-im/callback-2"))
	old := l.clients.Swap(newLoadClients(t, roots, client2))
	l.waitMore(t, 30)
	old.close()
	time.Sleep(300 * time.Millisecond) // requests of the old certificate still in flight finish

	oldCAFile := filepath.Join(t.TempDir(), "ca1.pem")
	f.clientCA.WriteCA(t, oldCAFile)
	out, code = runScript(t, "rotate-client-ca.sh", "remove", "--bundle", f.bundle, "--ca", oldCAFile,
		"--pid", p.pid(), "--admin", p.admin)
	require.Equal(t, 0, code, out)
	assert.Equal(t, []string{certs.CertFingerprint(ca2.Cert)}, p.clientCAs(t))
	l.waitMore(t, 30)
	stop()
	wg.Wait()

	l.mu.Lock()
	errs := l.errs
	l.mu.Unlock()
	assert.Zero(t, l.failed.Load(), "failed requests during the rotations: %v", errs)
	assert.Positive(t, l.resumed.Load(), "some requests came over resumed TLS sessions")
	t.Logf("load: %d callbacks accepted, %d over resumed sessions, %d failed; old cert %s, new %s",
		l.ok.Load(), l.resumed.Load(), l.failed.Load(), oldSHA[:12], newSHA[:12])

	// Afterwards: the old client certificate is refused, the new one served.
	code1, err := post(t, p.addr, clientTLS(t, roots, f.client), 1)
	assert.Error(t, err, "a certificate of the removed CA is refused (status %d)", code1)
	code2, err := post(t, p.addr, clientTLS(t, roots, client2), 2)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code2)
}

func mustLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	list, err := certs.LoadCertificates(path)
	require.NoError(t, err)
	return list[0]
}

func TestRotateServerCert_BadSetsAreRefused(t *testing.T) {
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	liveCert, liveKey := readFile(t, f.certFile), readFile(t, f.keyFile)
	served := p.servedSHA256(t)

	good := f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	other := f.serverCA.Issue(t, certstest.Server("localhost"))
	expired := f.serverCA.Issue(t, certstest.Server("localhost"), certstest.ValidBetween(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))

	for _, tc := range []struct {
		name  string
		stage func() (string, string)
		want  string
	}{
		{"corrupt key", func() (string, string) {
			c, k := stage(t, good)
			require.NoError(t, os.WriteFile(k, []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"), 0o600))
			return c, k
		}, "FAIL parse"},
		{"mismatched pair", func() (string, string) {
			c, _ := stage(t, good)
			_, k := stage(t, other)
			return c, k
		}, "FAIL key"},
		{"expired certificate", func() (string, string) { return stage(t, expired) }, "FAIL validity"},
		{"name not covered", func() (string, string) { return stage(t, other) }, "FAIL name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, k := tc.stage()
			out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
				"--new-cert", c, "--new-key", k, "--pid", p.pid(), "--admin", p.admin, "--name", "127.0.0.1",
				"--min-validity", "1m")
			assert.Equal(t, 1, code)
			assert.Contains(t, out, tc.want)
			assert.Contains(t, out, "nothing was changed")
			assert.Equal(t, liveCert, readFile(t, f.certFile), "live certificate untouched")
			assert.Equal(t, liveKey, readFile(t, f.keyFile), "live key untouched")
			assert.Equal(t, served, p.servedSHA256(t), "the old certificate is still served")
			st := p.status(t)
			assert.EqualValues(t, 0, st["reload_successes"])
			assert.EqualValues(t, 0, st["reload_failures"])
		})
	}

	t.Run("not picked up: rolled back", func(t *testing.T) {
		// The signal goes to a process that is not imedge (and imedge does
		// not poll its files): the new certificate never shows up in
		// /status, so the script puts the old files back.
		sleeper := exec.Command("sleep", "60")
		require.NoError(t, sleeper.Start())
		defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
		c, k := stage(t, good)
		out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
			"--new-cert", c, "--new-key", k, "--pid", fmt.Sprint(sleeper.Process.Pid), "--admin", p.admin,
			"--min-validity", "1m", "--timeout", "2")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "rolling back")
		assert.Contains(t, out, "rolled back: imedge serves the previous certificate "+served)
		assert.Equal(t, liveCert, readFile(t, f.certFile), "live certificate restored")
		assert.Equal(t, liveKey, readFile(t, f.keyFile), "live key restored")
		assert.Equal(t, served, p.servedSHA256(t))
	})

	t.Run("admin unreachable: nothing changed", func(t *testing.T) {
		c, k := stage(t, good)
		out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
			"--new-cert", c, "--new-key", k, "--pid", p.pid(), "--admin", "127.0.0.1:1")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "nothing was changed")
		assert.Equal(t, liveCert, readFile(t, f.certFile))
	})

	t.Run("usage", func(t *testing.T) {
		out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile)
		assert.Equal(t, 2, code, out)
		out, code = runScript(t, "rotate-server-cert.sh", "--help")
		assert.Equal(t, 0, code)
		assert.Contains(t, out, "Usage:")
	})
}

func TestRotateClientCA_BadBundlesAreRefused(t *testing.T) {
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	live := readFile(t, f.bundle)
	cas := p.clientCAs(t)
	require.Len(t, cas, 1)

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("no certificate in here\n"), 0o644))
	leafFile := f.clientCA.WriteFiles(t, f.client).Cert
	ownCA := filepath.Join(dir, "ca1.pem")
	f.clientCA.WriteCA(t, ownCA)

	for _, tc := range []struct {
		name  string
		phase string
		ca    string
		want  string
	}{
		{"empty CA file", "add", empty, "holds no usable certificate"},
		{"not a CA", "add", leafFile, "not a CA"},
		{"removing the last CA", "remove", ownCA, "the bundle would be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runScript(t, "rotate-client-ca.sh", tc.phase, "--bundle", f.bundle, "--ca", tc.ca,
				"--pid", p.pid(), "--admin", p.admin)
			assert.Equal(t, 1, code)
			assert.Contains(t, out, tc.want)
			assert.Contains(t, out, "nothing was changed")
			assert.Equal(t, live, readFile(t, f.bundle), "live bundle untouched")
			assert.Equal(t, cas, p.clientCAs(t), "the old bundle is still in effect")
		})
	}
	// The old bundle still admits its client.
	status, err := post(t, p.addr, clientTLS(t, certstest.Pool(f.serverCA), f.client), 1)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	t.Run("adding a CA already there changes nothing", func(t *testing.T) {
		out, code := runScript(t, "rotate-client-ca.sh", "add", "--bundle", f.bundle, "--ca", ownCA,
			"--pid", p.pid(), "--admin", p.admin)
		assert.Equal(t, 0, code)
		assert.Contains(t, out, "already in the bundle")
		assert.Equal(t, live, readFile(t, f.bundle))
	})
}

func TestRotateClientCA_RemovalRefusedByImedgeIsRolledBack(t *testing.T) {
	// imedge refuses a bundle that no longer holds the CA of a configured
	// CRL: the script passes its own checks, sees the refusal in /status
	// and puts the previous bundle back.
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	ca2 := certstest.NewCA(t, certstest.CommonName("client CA 2"))
	dir := t.TempDir()
	ca1File, ca2File := filepath.Join(dir, "ca1.pem"), filepath.Join(dir, "ca2.pem")
	f.clientCA.WriteCA(t, ca1File)
	ca2.WriteCA(t, ca2File)
	out, code := runScript(t, "rotate-client-ca.sh", "add", "--bundle", f.bundle, "--ca", ca2File,
		"--pid", p.pid(), "--admin", p.admin)
	require.Equal(t, 0, code, out)
	both := readFile(t, f.bundle)
	cas := p.clientCAs(t)
	require.Len(t, cas, 2)

	start := time.Now()
	out, code = runScript(t, "rotate-client-ca.sh", "remove", "--bundle", f.bundle, "--ca", ca1File,
		"--pid", p.pid(), "--admin", p.admin)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "imedge refused the new bundle")
	assert.Contains(t, out, "CRL is not signed by a CA of the client CA bundle")
	assert.Contains(t, out, "rolled back: imedge trusts the previous 2 CA(s) again")
	assert.Less(t, time.Since(start), 20*time.Second, "the refusal is noticed without waiting for the 30s timeout")
	assert.Equal(t, both, readFile(t, f.bundle), "bundle restored")
	assert.ElementsMatch(t, cas, p.clientCAs(t))
	status, err := post(t, p.addr, clientTLS(t, certstest.Pool(f.serverCA), f.client), 1)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
}

func TestRevokeClientCert_RevokedClientIsRefused(t *testing.T) {
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	roots := certstest.Pool(f.serverCA)
	victim, bystander := f.client, f.clientCA.Issue(t, certstest.Client("spiffe://tencent-im/other"))
	caFiles := f.clientCA.WriteFiles(t, victim)
	caKey := filepath.Join(t.TempDir(), "client-ca-key.pem")
	keyPEM, err := certs.EncodePrivateKeyPEM(f.clientCA.Key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caKey, keyPEM, 0o600))

	for i, c := range []*certs.Issued{victim, bystander} {
		status, err := post(t, p.addr, clientTLS(t, roots, c), i)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
	serial := certs.SerialHex(victim.Cert)
	out, code := runScript(t, "revoke-client-cert.sh", "--crl", f.crl, "--ca-cert", caFiles.CA, "--ca-key", caKey,
		"--serial", serial, "--bundle", f.bundle, "--pid", p.pid(), "--admin", p.admin)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "confirmed: imedge uses CRL number")

	_, err = post(t, p.addr, clientTLS(t, roots, victim), 3)
	assert.Error(t, err, "the revoked client's next handshake fails")
	var revoked []map[string]any
	eventually(t, 5*time.Second, func() bool {
		revoked = nil
		for _, r := range p.auditRecords(t) {
			if r["reason"] == "tls_revoked" {
				revoked = append(revoked, r)
			}
		}
		return len(revoked) > 0
	}, "no tls_revoked audit record")
	require.Len(t, revoked, 1)
	assert.Equal(t, serial, revoked[0]["cert_serial"])
	status, err := post(t, p.addr, clientTLS(t, roots, bystander), 4)
	require.NoError(t, err, "other clients still pass")
	assert.Equal(t, http.StatusOK, status)
	liveCRL := readFile(t, f.crl)

	t.Run("CRL from another CA is refused", func(t *testing.T) {
		rogue := certstest.NewCA(t, certstest.CommonName("rogue CA"))
		rogueFiles := rogue.WriteFiles(t, rogue.Issue(t))
		rogueKey := filepath.Join(t.TempDir(), "rogue-key.pem")
		k, err := certs.EncodePrivateKeyPEM(rogue.Key)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(rogueKey, k, 0o600))
		// Signed by the rogue CA (starting from a CRL of its own): imedge's
		// bundle does not hold it, so the script refuses before touching
		// anything.
		rogueCRL := filepath.Join(t.TempDir(), "rogue.crl")
		writeCRL(t, rogueCRL, rogue.CRL(t))
		out, code := runScript(t, "revoke-client-cert.sh", "--crl", rogueCRL, "--ca-cert", rogueFiles.CA,
			"--ca-key", rogueKey, "--serial", certs.SerialHex(bystander.Cert), "--bundle", f.bundle,
			"--pid", p.pid(), "--admin", p.admin)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "FAIL crl")
		assert.Contains(t, out, "nothing was changed")

		// With the live CRL, a foreign CA cannot even extend it.
		out, code = runScript(t, "revoke-client-cert.sh", "--crl", f.crl, "--ca-cert", rogueFiles.CA,
			"--ca-key", rogueKey, "--serial", certs.SerialHex(bystander.Cert), "--bundle", f.bundle,
			"--pid", p.pid(), "--admin", p.admin)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "no CRL in it is signed by")
		assert.Equal(t, liveCRL, readFile(t, f.crl), "live CRL untouched")

		status, err := post(t, p.addr, clientTLS(t, roots, bystander), 5)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, status)
		_, err = post(t, p.addr, clientTLS(t, roots, victim), 6)
		assert.Error(t, err, "still revoked")
	})
}

func TestDevPKI_ServesACallback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	out, code := runScript(t, "dev-pki.sh", "--days", "2", dir)
	require.Equal(t, 0, code, out)
	for _, k := range []string{"server-key.pem", "server-ca-key.pem", "client-key.pem", "client-ca-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), k)
	}
	f := &fixture{dir: dir, certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem"),
		bundle: filepath.Join(dir, "client-ca.pem"), crl: filepath.Join(dir, "client.crl")}
	p := startImedge(t, f, "--reload-interval", "0")

	roots := x509.NewCertPool()
	roots.AddCert(mustLeaf(t, filepath.Join(dir, "server-ca.pem")))
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	require.NoError(t, err)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair}}
	status, err := post(t, p.addr, cfg, 1)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)

	out, code = runScript(t, "dev-pki.sh", dir)
	assert.Equal(t, 1, code, "an existing PKI is not overwritten")
	assert.Contains(t, out, "--force")
}
