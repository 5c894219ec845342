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
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	inflight           atomic.Int64 // requests started with these clients and not yet done
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
		c.inflight.Add(1)
		if l.clients.Load() != c { // swapped meanwhile: never start a request with retired clients
			c.inflight.Add(-1)
			continue
		}
		l.post(ctx, c, worker, n)
		c.inflight.Add(-1)
	}
}

// post sends one callback with c's client for worker.
func (l *load) post(ctx context.Context, c *loadClients, worker, n int) {
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
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		l.fail(fmt.Sprintf("worker %d: status %d", worker, resp.StatusCode))
		return
	}
	l.ok.Add(1)
	if resp.TLS.DidResume {
		l.resumed.Add(1)
	}
	if w := l.watch.Load(); w != nil && certs.CertFingerprint(resp.TLS.PeerCertificates[0]) == *w {
		l.newLeaf.Add(1)
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
	require.Eventually(t, func() bool { return l.ok.Load() >= target || l.failed.Load() > 0 }, 30*time.Second, 20*time.Millisecond, "load made no progress (ok %d, failed %d)", l.ok.Load(), l.failed.Load())
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
	require.Eventually(t, func() bool { return l.newLeaf.Load() > 0 }, 10*time.Second, 20*time.Millisecond, "the load's full handshakes see the new certificate")

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
	require.Eventually(t, func() bool { return old.inflight.Load() == 0 }, 30*time.Second, 20*time.Millisecond, "requests with the old client certificate still in flight")
	old.close()

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

// Live files that already hold the staged set (written by the rotation of
// another instance that reads them too): imedge is only reloaded.
func TestRotateServerCert_LiveFilesAlreadyNewAreLoaded(t *testing.T) {
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	next := f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	require.NoError(t, certs.WriteIssued(next, f.certFile, f.keyFile))
	c, k := stage(t, next)
	nextSHA := certs.CertFingerprint(next.Cert)
	require.NotEqual(t, nextSHA, p.servedSHA256(t))

	out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
		"--new-cert", c, "--new-key", k, "--min-validity", "1m", "--pid", p.pid(), "--admin", p.admin)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "the live certificate already holds this change, but imedge has not loaded it: reloading")
	assert.Contains(t, out, "confirmed: imedge serves "+nextSHA)
	assert.NotContains(t, out, "backed up")
	assert.Equal(t, nextSHA, p.servedSHA256(t))
	baks, err := filepath.Glob(f.certFile + ".bak.*")
	require.NoError(t, err)
	assert.Empty(t, baks)
}

// A live key the service reads through its group (0640, as the Debian
// package's instructions allowed) keeps that mode across a rotation, and a
// world-readable one loses the world bit: the service can still read the
// new key after its next restart.
func TestRotateServerCert_KeepsTheLiveKeysGroupRead(t *testing.T) {
	for _, c := range []struct {
		live, want os.FileMode
	}{{0o640, 0o640}, {0o600, 0o600}, {0o644, 0o640}} {
		t.Run(c.live.String(), func(t *testing.T) {
			f := newFixture(t)
			require.NoError(t, os.Chmod(f.keyFile, c.live))
			p := startImedge(t, f, "--reload-interval", "0")
			k0, err := os.Stat(f.keyFile)
			require.NoError(t, err)
			newCert, newKey := stage(t, f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
			out, code := runScript(t, "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
				"--new-cert", newCert, "--new-key", newKey, "--min-validity", "1m", "--pid", p.pid(), "--admin", p.admin)
			require.Equal(t, 0, code, out)
			fi, err := os.Stat(f.keyFile)
			require.NoError(t, err)
			assert.Equal(t, c.want, fi.Mode().Perm())
			assert.Equal(t, k0.Sys().(*syscall.Stat_t).Gid, fi.Sys().(*syscall.Stat_t).Gid, "the key keeps its group")
			assert.Contains(t, out, fmt.Sprintf("replaced %s (%o)", f.keyFile, c.want))
		})
	}
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
	require.Eventually(t, func() bool {
		revoked = nil
		for _, r := range p.auditRecords(t) {
			if r["reason"] == "tls_revoked" {
				revoked = append(revoked, r)
			}
		}
		return len(revoked) > 0
	}, 5*time.Second, 20*time.Millisecond, "no tls_revoked audit record")
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

// writeCAKey writes ca's private key to a new file (0600) and returns its path.
func writeCAKey(t *testing.T, ca *certstest.CA) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca-key.pem")
	b, err := certs.EncodePrivateKeyPEM(ca.Key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// The three scripts reach an imedge that reloads only when told
// (--reload-interval 0) through its real --pid-file, through a systemd
// unit (the systemctl stand-in), and through a systemd unit with an admin
// listener that requires mutual TLS.
func TestScripts_ReloadThroughPidFileOrSystemdUnit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unit, mtls bool
	}{
		{"pid file", false, false},
		{"systemd unit", true, false},
		{"systemd unit and admin mutual TLS", true, true}, // no comma: --client-crl splits its value on commas
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			pidFile := filepath.Join(t.TempDir(), "imedge.pid")
			serve := []string{"--reload-interval", "0", "--pid-file", pidFile}
			var adminOpts, statusOpts []string
			if tc.mtls {
				var serveTLS []string
				serveTLS, adminOpts, statusOpts = adminMTLS(t)
				serve = append(serve, serveTLS...)
			}
			p := startImedge(t, f, serve...)
			p.adminTLS = statusOpts
			p.waitPIDFile(t, pidFile)

			target := []string{"--pid-file", pidFile}
			var env []string
			var sd *fakeSystemd
			if tc.unit {
				sd = newFakeSystemd(t)
				sd.unit(t, "imedge@a", p.pid())
				sd.warn(t, "imedge@a") // stderr noise must not become part of the MainPID
				env = sd.env()
				target = []string{"--systemd-unit", "imedge@a"}
			}
			common := append(append([]string{"--admin", p.admin}, target...), adminOpts...)
			run := func(name string, args ...string) string {
				t.Helper()
				out, code := runScriptEnv(t, env, name, append(args, common...)...)
				require.Equal(t, 0, code, out)
				return out
			}
			roots := certstest.Pool(f.serverCA)
			newCert, newKey := stage(t, f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
			newSHA := certs.CertFingerprint(mustLeaf(t, newCert))

			if tc.mtls {
				// Without the admin TLS options the listener cannot be
				// asked: refused before anything changes.
				live := readFile(t, f.certFile)
				out, code := runScriptEnv(t, env, "rotate-server-cert.sh", append([]string{"--cert", f.certFile, "--key", f.keyFile,
					"--new-cert", newCert, "--new-key", newKey, "--min-validity", "1m", "--admin", p.admin}, target...)...)
				assert.Equal(t, 1, code)
				assert.Contains(t, out, "cannot read the served certificate from the admin listener "+p.admin+"; nothing was changed")
				assert.Equal(t, live, readFile(t, f.certFile))
			}

			out := run("rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile, "--new-cert", newCert, "--new-key", newKey,
				"--min-validity", "1m")
			assert.Contains(t, out, "confirmed: imedge serves "+newSHA)
			assert.Equal(t, newSHA, certs.CertFingerprint(servedLeaf(t, p.addr, clientTLS(t, roots, f.client))))

			ca2 := certstest.NewCA(t, certstest.CommonName("client CA 2"))
			ca2File := filepath.Join(t.TempDir(), "ca2.pem")
			ca2.WriteCA(t, ca2File)
			run("rotate-client-ca.sh", "add", "--bundle", f.bundle, "--ca", ca2File)
			assert.ElementsMatch(t, []string{certs.CertFingerprint(f.clientCA.Cert), certs.CertFingerprint(ca2.Cert)}, p.clientCAs(t))

			out = run("revoke-client-cert.sh", "--crl", f.crl, "--ca-cert", f.clientCA.WriteFiles(t, f.client).CA,
				"--ca-key", writeCAKey(t, f.clientCA), "--serial", certs.SerialHex(f.client.Cert), "--bundle", f.bundle)
			assert.Contains(t, out, "confirmed: imedge uses CRL number")
			_, err := post(t, p.addr, clientTLS(t, roots, f.client), 1)
			assert.Error(t, err, "the revoked client is refused")

			st := p.status(t)
			assert.EqualValues(t, 3, st["reload_successes"], "one reload per script, each caused by the script")
			assert.EqualValues(t, 0, st["reload_failures"])
			if tc.unit {
				assert.Equal(t, 3, sd.count(t, "reload imedge@a"), "calls: %q", sd.calls(t))
				assert.GreaterOrEqual(t, sd.count(t, "show -p MainPID --value imedge@a"), 3, "calls: %q", sd.calls(t))
				for _, c := range sd.calls(t) {
					assert.Contains(t, []string{"reload imedge@a", "show -p MainPID --value imedge@a"}, c)
				}
				assert.Contains(t, out, "ran systemctl reload imedge@a (main pid "+p.pid()+")")
			} else {
				assert.Contains(t, out, "sent SIGHUP to imedge (pid "+p.pid()+" from "+pidFile+")")
			}
		})
	}
}

// dirFiles maps the names of the files in dir to their contents.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		out[e.Name()] = string(readFile(t, filepath.Join(dir, e.Name())))
	}
	return out
}

// A stopped unit, an unknown unit, a missing or stale pid file: each
// script says so and exits 1 before it touches a file or asks for a
// reload.
func TestScripts_ImedgeNotRunningChangesNothing(t *testing.T) {
	f := newFixture(t)
	sd := newFakeSystemd(t)
	sd.unit(t, "imedge@a", "0")
	gone := exec.Command("true")
	require.NoError(t, gone.Run())
	stale := filepath.Join(t.TempDir(), "imedge.pid")
	require.NoError(t, os.WriteFile(stale, []byte(fmt.Sprintf("%d\n", gone.Process.Pid)), 0o644))
	missing := filepath.Join(t.TempDir(), "imedge.pid")

	newCert, newKey := stage(t, f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	ca2 := certstest.NewCA(t, certstest.CommonName("client CA 2"))
	ca2File := filepath.Join(t.TempDir(), "ca2.pem")
	ca2.WriteCA(t, ca2File)
	scripts := []struct {
		name string
		args []string
	}{
		{"rotate-server-cert.sh", []string{"--cert", f.certFile, "--key", f.keyFile, "--new-cert", newCert, "--new-key", newKey, "--min-validity", "1m"}},
		{"rotate-client-ca.sh", []string{"add", "--bundle", f.bundle, "--ca", ca2File}},
		{"revoke-client-cert.sh", []string{"--crl", f.crl, "--ca-cert", f.clientCA.WriteFiles(t, f.client).CA,
			"--ca-key", writeCAKey(t, f.clientCA), "--serial", certs.SerialHex(f.client.Cert), "--bundle", f.bundle}},
	}
	before := dirFiles(t, f.dir)
	for _, target := range []struct {
		name string
		args []string
		want string
	}{
		{"stopped unit", []string{"--systemd-unit", "imedge@a"}, "systemd unit imedge@a is not running (MainPID 0)"},
		{"unknown unit", []string{"--systemd-unit", "imedge@zz.service"}, "systemd unit imedge@zz.service is not running (MainPID 0)"},
		{"missing pid file", []string{"--pid-file", missing}, "cannot read the pid file " + missing},
		{"stale pid file", []string{"--pid-file", stale}, fmt.Sprintf("cannot signal process %d (from %s): No such process", gone.Process.Pid, stale)},
	} {
		for _, sc := range scripts {
			t.Run(target.name+"/"+sc.name, func(t *testing.T) {
				out, code := runScriptEnv(t, sd.env(), sc.name, append(sc.args, target.args...)...)
				assert.Equal(t, 1, code)
				assert.Contains(t, out, target.want)
				assert.Contains(t, out, "nothing was changed")
				assert.Equal(t, before, dirFiles(t, f.dir), "no file replaced, no backup made")
			})
		}
	}
	for _, c := range sd.calls(t) {
		assert.True(t, strings.HasPrefix(c, "show -p MainPID --value "), "only MainPID was asked: %q", c)
	}

	t.Run("usage", func(t *testing.T) {
		base := scripts[0].args
		for _, tc := range []struct {
			args []string
			want string
		}{
			{nil, "give one of --pid, --pid-file or --systemd-unit"},
			{[]string{"--pid", "1", "--systemd-unit", "imedge@a"}, "give one of --pid, --pid-file or --systemd-unit"},
			{[]string{"--pid", "abc"}, "--pid wants a process id"},
			{[]string{"--systemd-unit", "imedge@a", "--admin-cert", newCert}, "--admin-cert and --admin-key go together"},
			{[]string{"--systemd-unit", "imedge@a", "--admin-cert", newCert, "--admin-key", newKey}, "--admin-cert needs --admin-cacert"},
			{[]string{"--systemd-unit"}, "--systemd-unit needs a value"},
		} {
			out, code := runScriptEnv(t, sd.env(), "rotate-server-cert.sh", append(append([]string{}, base...), tc.args...)...)
			assert.Equal(t, 2, code, out)
			assert.Contains(t, out, tc.want)
		}
		assert.Equal(t, before, dirFiles(t, f.dir))
	})
}

// When systemd refuses the reload (a user without the right to reload the
// unit), the replaced files are put back.
func TestScripts_RefusedReloadIsRolledBack(t *testing.T) {
	f := newFixture(t)
	p := startImedge(t, f, "--reload-interval", "0")
	sd := newFakeSystemd(t)
	sd.unit(t, "imedge", p.pid())
	sd.denyReload(t, "imedge")
	liveCert, liveKey := readFile(t, f.certFile), readFile(t, f.keyFile)
	served := p.servedSHA256(t)

	c, k := stage(t, f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	out, code := runScriptEnv(t, sd.env(), "rotate-server-cert.sh", "--cert", f.certFile, "--key", f.keyFile,
		"--new-cert", c, "--new-key", k, "--min-validity", "1m", "--systemd-unit", "imedge", "--admin", p.admin)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "could not ask imedge to reload: systemctl reload imedge failed: Failed to reload imedge.service: Access denied")
	assert.Contains(t, out, "restored "+f.keyFile+" and "+f.certFile+" from the backups")
	assert.Contains(t, out, "rolled back: imedge serves the previous certificate "+served)
	assert.Equal(t, liveCert, readFile(t, f.certFile))
	assert.Equal(t, liveKey, readFile(t, f.keyFile))
	assert.Equal(t, served, p.servedSHA256(t))
	assert.Equal(t, 2, sd.count(t, "reload imedge"), "asked once to load the new files, once the restored ones")
}

// instance is one imedge started as the template unit would start it.
type instance struct {
	*proc
	f       *fixture
	pidFile string
}

// startInstance runs imedge with the template unit's ExecStart for
// instance name, /etc/imedge and /run/imedge moved under root, the
// configuration file written there and $STATE_DIRECTORY set as systemd
// sets it.
func startInstance(t *testing.T, root, name string, f *fixture) *instance {
	t.Helper()
	start := unitFileDirectives(t, "../deploy/imedge@.service")["Service/ExecStart"]
	require.Len(t, start, 1)
	line := strings.ReplaceAll(start[0], "%i", name)
	line = strings.ReplaceAll(line, "/etc/imedge/", root+"/etc/")
	line = strings.ReplaceAll(line, "/run/imedge/", root+"/run/")
	args := strings.Fields(line)[1:]
	for _, d := range []string{"etc", "run/" + name, "state/" + name, "log/" + name} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o700))
	}
	conf := fmt.Sprintf(`listen: 127.0.0.1:0
admin-listen: 127.0.0.1:0
cert: %q
key: %q
client-ca: %q
client-crl: [%q]
sdkappid: %q
forward-url: %q
audit-log: %q
audit-sample-interval: 0s
rate: 0
reload-interval: 0s
`, f.certFile, f.keyFile, f.bundle, f.crl, appID, newSink(t), filepath.Join(root, "log", name, "audit.log"))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc", name+".yaml"), []byte(conf), 0o640))
	p := launch(t, args, []string{"STATE_DIRECTORY=" + filepath.Join(root, "state", name)})
	in := &instance{proc: p, f: f, pidFile: filepath.Join(root, "run", name, "imedge.pid")}
	p.waitPIDFile(t, in.pidFile)
	return in
}

// served is the fingerprint of the certificate a new handshake gets.
func (in *instance) served(t *testing.T) string {
	t.Helper()
	return certs.CertFingerprint(servedLeaf(t, in.addr, clientTLS(t, certstest.Pool(in.f.serverCA), in.f.client)))
}

// Two instances on one host, started as imedge@a and imedge@b would be:
// rotating one leaves the other alone, and an --admin or a unit of the
// other instance is caught.
func TestScripts_TwoInstancesOnOneHost(t *testing.T) {
	root := t.TempDir()
	fa, fb := newFixture(t), newFixture(t)
	// Both trust IM's CA from one file; each serves its own certificate.
	fb.clientCA, fb.bundle, fb.crl, fb.client = fa.clientCA, fa.bundle, fa.crl, fa.client
	a := startInstance(t, root, "a", fa)
	b := startInstance(t, root, "b", fb)
	require.NotEqual(t, a.admin, b.admin)
	sd := newFakeSystemd(t)
	sd.unit(t, "imedge@a", strings.TrimSpace(string(readFile(t, a.pidFile))))
	sd.unit(t, "imedge@b", strings.TrimSpace(string(readFile(t, b.pidFile))))
	origA, origB := a.servedSHA256(t), b.servedSHA256(t)
	require.NotEqual(t, origA, origB)

	rotate := func(in *instance, extra ...string) (string, int, string) {
		t.Helper()
		c, k := stage(t, in.f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")))
		out, code := runScriptEnv(t, sd.env(), "rotate-server-cert.sh", append([]string{"--cert", in.f.certFile, "--key", in.f.keyFile,
			"--new-cert", c, "--new-key", k, "--min-validity", "1m"}, extra...)...)
		return out, code, certs.CertFingerprint(mustLeaf(t, c))
	}

	// The documented way: the unit and the admin listener of instance a.
	out, code, newA := rotate(a, "--systemd-unit", "imedge@a", "--admin", a.admin)
	require.Equal(t, 0, code, out)
	assert.Equal(t, newA, a.servedSHA256(t))
	assert.Equal(t, newA, a.served(t))
	assert.Equal(t, origB, b.servedSHA256(t), "the other instance still serves its certificate")
	assert.Equal(t, origB, b.served(t))
	assert.Equal(t, 1, sd.count(t, "reload imedge@a"))
	assert.Zero(t, sd.count(t, "reload imedge@b"))

	t.Run("admin listener of the other instance: refused", func(t *testing.T) {
		live := readFile(t, b.f.certFile)
		out, code, _ := rotate(b, "--systemd-unit", "imedge@b", "--admin", a.admin)
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "--admin belongs to another imedge")
		assert.Contains(t, out, "nothing was changed")
		assert.Equal(t, live, readFile(t, b.f.certFile))
		assert.Zero(t, sd.count(t, "reload imedge@b"))
	})

	t.Run("unit of the other instance: rolled back", func(t *testing.T) {
		live := readFile(t, b.f.certFile)
		out, code, _ := rotate(b, "--systemd-unit", "imedge@a", "--admin", b.admin, "--timeout", "2")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, "the admin listener "+b.admin+" counted no reload since the request: is it the admin listener of systemd unit imedge@a")
		assert.Contains(t, out, "rolled back: imedge serves the previous certificate "+origB)
		assert.Equal(t, live, readFile(t, b.f.certFile))
		assert.Equal(t, origB, b.served(t))
		assert.Equal(t, newA, a.served(t))
	})

	// Instance b through its pid file.
	out, code, newB := rotate(b, "--pid-file", b.pidFile, "--admin", b.admin)
	require.Equal(t, 0, code, out)
	assert.Equal(t, newB, b.served(t))
	assert.Equal(t, newA, a.served(t), "instance a is left alone")

	t.Run("shared client-CA bundle: once per instance", func(t *testing.T) {
		ca2 := certstest.NewCA(t, certstest.CommonName("client CA 2"))
		ca2File := filepath.Join(t.TempDir(), "ca2.pem")
		ca2.WriteCA(t, ca2File)
		both := []string{certs.CertFingerprint(fa.clientCA.Cert), certs.CertFingerprint(ca2.Cert)}
		out, code := runScriptEnv(t, sd.env(), "rotate-client-ca.sh", "add", "--bundle", fa.bundle, "--ca", ca2File,
			"--systemd-unit", "imedge@a", "--admin", a.admin)
		require.Equal(t, 0, code, out)
		assert.ElementsMatch(t, both, a.clientCAs(t))
		assert.Len(t, b.clientCAs(t), 1, "b has not reloaded (no file watcher)")
		written := readFile(t, fa.bundle)
		reloadsB := sd.count(t, "reload imedge@b")

		// The same command for b: the file already holds the change, so b
		// is only reloaded.
		out, code = runScriptEnv(t, sd.env(), "rotate-client-ca.sh", "add", "--bundle", fa.bundle, "--ca", ca2File,
			"--systemd-unit", "imedge@b", "--admin", b.admin)
		require.Equal(t, 0, code, out)
		assert.Contains(t, out, "the live bundle already holds this change, but imedge has not loaded it: reloading")
		assert.Contains(t, out, "confirmed: imedge trusts 2 client CA(s)")
		assert.ElementsMatch(t, both, b.clientCAs(t))
		assert.Equal(t, written, readFile(t, fa.bundle), "the file is left as it was")
		assert.Equal(t, reloadsB+1, sd.count(t, "reload imedge@b"), "one reload of b")
	})
}

// unitFileDirectives reads a systemd unit file into "Section/Key" → values in
// file order; comments and blank lines are left out.
func unitFileDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: not a directive: %q", path, line)
			out[section+"/"+k] = append(out[section+"/"+k], v)
		}
	}
	return out
}

// deploy/imedge@.service is deploy/imedge.service with per-instance paths:
// every other directive, the hardening above all, is the same.
func TestSystemdUnit_TemplateIsImedgeServicePerInstance(t *testing.T) {
	single := unitFileDirectives(t, "../deploy/imedge.service")
	tmpl := unitFileDirectives(t, "../deploy/imedge@.service")
	one := func(k string) string {
		t.Helper()
		require.Len(t, single[k], 1, k)
		return single[k][0]
	}
	require.Contains(t, one("Service/ExecStart"), " --config /etc/imedge/imedge.yaml")
	var rw []string
	for _, p := range strings.Fields(one("Service/ReadWritePaths")) {
		rw = append(rw, p+"/%i")
	}
	perInstance := map[string][]string{
		"Unit/Description": {strings.Replace(one("Unit/Description"), "imedge:", "imedge %i:", 1)},
		"Service/ExecStart": {strings.Replace(one("Service/ExecStart"), "/etc/imedge/imedge.yaml", "/etc/imedge/%i.yaml", 1) +
			" --pid-file /run/imedge/%i/imedge.pid"},
		"Service/StateDirectory":       {one("Service/StateDirectory") + "/%i"},
		"Service/LogsDirectory":        {one("Service/LogsDirectory") + "/%i"},
		"Service/RuntimeDirectory":     {"imedge/%i"},
		"Service/RuntimeDirectoryMode": {"0755"},
		"Service/ReadWritePaths":       {strings.Join(append(rw, "/run/imedge/%i"), " ")},
	}
	for k, want := range perInstance {
		assert.Equal(t, want, tmpl[k], k)
	}
	for k, v := range single {
		if _, ok := perInstance[k]; !ok {
			assert.Equal(t, v, tmpl[k], "%s: the template keeps imedge.service's setting", k)
		}
	}
	for k := range tmpl {
		_, inSingle := single[k]
		_, per := perInstance[k]
		assert.True(t, inSingle || per, "%s is set only in the template", k)
	}
	b := string(readFile(t, "../deploy/imedge@.service"))
	header, _, _ := strings.Cut(b, "\n[Unit]")
	assert.Contains(t, header, "admin-listen: 127.0.0.1:9444", "the header says two instances need two admin ports")
}

// systemd-analyze verify accepts instances of the template.
func TestSystemdUnit_TemplateVerifies(t *testing.T) {
	_, err := exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze is needed (.ci/run installs the systemd package)")
	unit := string(readFile(t, "../deploy/imedge@.service"))
	start := unitFileDirectives(t, "../deploy/imedge@.service")["Service/ExecStart"]
	require.Len(t, start, 1)
	exec0 := strings.Fields(start[0])[0]
	dir := t.TempDir()
	// verify checks that the binary exists: point it at the test's build.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "imedge@.service"),
		[]byte(strings.Replace(unit, "ExecStart="+exec0, "ExecStart="+binPath, 1)), 0o644))
	for _, name := range []string{"imedge@a.service", "imedge@b.service"} {
		out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, name)).CombinedOutput()
		require.NoError(t, err, "systemd-analyze verify %s: %s", name, out)
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			assert.NotContains(t, line, "imedge@", "verify reports a problem with the unit")
		}
	}
}

// Each rotation script's --help documents every option it accepts: the
// ones of its own case statement and the shared ones of lib.sh.
func TestScripts_HelpDocumentsEveryOption(t *testing.T) {
	caseLabels := regexp.MustCompile(`(?m)^\s*(--[a-z-]+(?: \| --[a-z-]+)*)\)`)
	options := func(path string) []string {
		var out []string
		for _, m := range caseLabels.FindAllStringSubmatch(string(readFile(t, path)), -1) {
			out = append(out, strings.Split(m[1], " | ")...)
		}
		return out
	}
	shared := options("lib.sh")
	require.Contains(t, shared, "--systemd-unit")
	require.Contains(t, shared, "--admin-cacert")
	for _, script := range []string{"rotate-server-cert.sh", "rotate-client-ca.sh", "revoke-client-cert.sh"} {
		out, code := runScript(t, script, "--help")
		require.Equal(t, 0, code, out)
		own := options(script)
		require.NotEmpty(t, own, script)
		for _, opt := range append(own, shared...) {
			assert.Regexp(t, `(^|[\s,(|\[])`+regexp.QuoteMeta(opt)+`($|[^a-z-])`, out, "%s --help documents %s", script, opt)
		}
		assert.Contains(t, out, "Exit status: 0", script)
		assert.NotContains(t, string(readFile(t, script)), "pidof", script)
	}
}

// The rotation scripts' command lines in README.md and docs/*.md use only
// options the scripts take.
func TestScripts_DocumentedCommandLinesUseRealOptions(t *testing.T) {
	caseLabels := regexp.MustCompile(`(?m)^\s*(--[a-z-]+(?: \| --[a-z-]+)*)\)`)
	options := map[string]bool{}
	for _, path := range []string{"lib.sh", "rotate-server-cert.sh", "rotate-client-ca.sh", "revoke-client-cert.sh"} {
		for _, m := range caseLabels.FindAllStringSubmatch(string(readFile(t, path)), -1) {
			for _, o := range strings.Split(m[1], " | ") {
				options[path+" "+o] = true
			}
		}
	}
	docs, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	invocation := regexp.MustCompile(`^scripts/(rotate-server-cert|rotate-client-ca|revoke-client-cert)\.sh\s`)
	seen := map[string]int{}
	for _, doc := range append([]string{"../README.md"}, docs...) {
		lines := strings.Split(string(readFile(t, doc)), "\n")
		for i := 0; i < len(lines); i++ {
			m := invocation.FindStringSubmatch(lines[i])
			if m == nil {
				continue
			}
			script := m[1] + ".sh"
			cmd := lines[i]
			for strings.HasSuffix(strings.TrimSpace(lines[i]), `\`) && i+1 < len(lines) {
				i++
				cmd += " " + lines[i]
			}
			seen[script]++
			for _, word := range strings.Fields(cmd) {
				if strings.HasPrefix(word, "--") {
					assert.True(t, options["lib.sh "+word] || options[script+" "+word],
						"%s: %s has no option %s in: %s", doc, script, word, cmd)
				}
			}
		}
	}
	for _, s := range []string{"rotate-server-cert.sh", "rotate-client-ca.sh", "revoke-client-cert.sh"} {
		assert.Positive(t, seen[s], "no documented command line of %s", s)
	}
}
