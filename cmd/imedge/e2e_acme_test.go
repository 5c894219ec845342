package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// pebbleVersion is the Pebble release the ACME test builds.
const pebbleVersion = "v2.10.1"

var pebbleBuild struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// pebbleBinary builds Pebble once (through the module proxy) into the user
// cache directory, where later runs find it. The test is skipped only when
// that fails.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	pebbleBuild.once.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "imedge-test", "pebble-"+pebbleVersion)
		pebbleBuild.path = filepath.Join(dir, "pebble")
		if fi, err := os.Stat(pebbleBuild.path); err == nil && fi.Mode()&0o100 != 0 {
			return
		}
		if pebbleBuild.err = os.MkdirAll(dir, 0o755); pebbleBuild.err != nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion)
		cmd.Dir = dir // outside this module: `go install pkg@version` ignores it anyway
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		pebbleBuild.out, pebbleBuild.err = cmd.CombinedOutput()
	})
	if pebbleBuild.err != nil {
		t.Skipf("cannot build Pebble %s (go install needs the module proxy): %v\n%s", pebbleVersion, pebbleBuild.err, pebbleBuild.out)
	}
	return pebbleBuild.path
}

// freePort returns a loopback port that was free a moment ago (Pebble's
// configuration needs fixed ports, and its tlsPort is imedge's port).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDNS answers A queries for name with 127.0.0.1 (and nothing else),
// for Pebble's validation authority, over UDP and TCP on one port (Pebble
// asks over TCP).
func startDNS(t *testing.T, name string) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA && strings.EqualFold(q.Name, dns.Fqdn(name)) {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	require.NotNil(t, pc, "no port free for both UDP and TCP")
	servers := []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}}
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = srv.ActivateAndServe() })
		<-started // Shutdown before start would leave it serving
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// pebble is a running Pebble ACME server.
type pebble struct {
	dirURL  string
	mgmtURL string
	caFile  string // the CA of Pebble's own HTTPS certificate
	https   *http.Client
	logs    *syncBuffer
}

// startPebble runs Pebble with an HTTPS certificate of a throwaway CA, its
// TLS-ALPN-01 validations going to tlsPort and its DNS lookups to dnsAddr.
func startPebble(t *testing.T, bin string, tlsPort int, dnsAddr string) *pebble {
	t.Helper()
	ca := certstest.NewCA(t)
	files := ca.WriteFiles(t, ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	listen, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  net.JoinHostPort("127.0.0.1", itoa(listen)),
		"managementListenAddress":        net.JoinHostPort("127.0.0.1", itoa(mgmt)),
		"certificate":                    files.Cert,
		"privateKey":                     files.Key,
		"httpPort":                       freePort(t), // HTTP-01 is never offered by imedge
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile := filepath.Join(files.Dir, "pebble.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))

	p := &pebble{
		dirURL:  "https://127.0.0.1:" + itoa(listen) + "/dir",
		mgmtURL: "https://127.0.0.1:" + itoa(mgmt),
		caFile:  files.CA,
		logs:    &syncBuffer{},
		https: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(ca)},
		}},
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := p.https.Get(p.dirURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "pebble did not serve its directory; log:\n%s", p.logs.String())
	return p
}

// root returns Pebble's current issuing root.
func (p *pebble) root(t *testing.T) *x509.Certificate {
	t.Helper()
	resp, err := p.https.Get(p.mgmtURL + "/roots/0")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	list, err := certs.ParseCertificatesPEM(b)
	require.NoError(t, err)
	return list[0]
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestE2E_ACME_TLSALPN01WithMandatoryClientCerts(t *testing.T) {
	t.Parallel()
	bin := pebbleBinary(t)
	const domain = "edge.imedge.test"
	port := freePort(t)
	pb := startPebble(t, bin, port, startDNS(t, domain))

	clientCA := certstest.NewCA(t)
	cli := clientCA.Issue(t, certstest.Client("spiffe://tencent-im/callback"))
	cliFiles := clientCA.WriteFiles(t, cli)
	sink := newSink(t)
	state := t.TempDir()
	auditLog := filepath.Join(state, "audit.log")
	args := []string{"serve", "--listen", "127.0.0.1:" + itoa(port),
		"--acme-domain", domain, "--acme-email", "ops@imedge.test", "--acme-ca", pb.dirURL, "--acme-ca-roots", pb.caFile,
		"--client-ca", cliFiles.CA, "--sdkappid", appID, "--forward-url", sink.srv.URL,
		"--state-dir", state, "--audit-log", auditLog, "--audit-sample-interval", "0",
		"--admin-listen", "127.0.0.1:0", "--retry-base", "20ms", "--retry-max", "200ms"}
	p := start(t, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("imedge log:\n%s", p.stderr.String())
		}
	})

	// The certificate arrives through TLS-ALPN-01 on the very port that
	// demands client certificates.
	root := pb.root(t)
	withCert := &tls.Config{ServerName: domain, RootCAs: x509.NewCertPool(), Certificates: []tls.Certificate{certstest.TLSCertificate(t, cli)}}
	withCert.RootCAs.AddCert(root)
	var leaf *x509.Certificate
	require.Eventually(t, func() bool {
		conn, err := tls.Dial("tcp", p.addr, withCert)
		if err != nil {
			return false
		}
		defer conn.Close()
		leaf = conn.ConnectionState().PeerCertificates[0]
		return true
	}, 90*time.Second, 20*time.Millisecond, "imedge did not obtain a certificate from Pebble")
	assert.Equal(t, []string{domain}, leaf.DNSNames)
	assert.Contains(t, leaf.Issuer.String(), "Pebble", "issued by Pebble's intermediate")
	assert.Contains(t, p.stderr.String(), `"msg":"acme certificate ready"`)

	// A client with a certificate is served a callback over it.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: withCert.Clone()}}
	body := friendDeleteBody("acme-alice", "acme-bob")
	resp, err := hc.Post("https://"+p.addr+"/?SdkAppid="+appID+"&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=203.0.113.5",
		"application/json", strings.NewReader(body))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, leaf.Raw, resp.TLS.PeerCertificates[0].Raw)
	require.Eventually(t, func() bool { return sink.count() == 1 }, 10*time.Second, 20*time.Millisecond, "the event reached the internal URL")

	// A client without a certificate is still refused on the same port.
	noCert := &tls.Config{ServerName: domain, RootCAs: withCert.RootCAs}
	nc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: noCert}}
	_, err = nc.Post("https://"+p.addr+"/", "application/json", strings.NewReader(body))
	require.Error(t, err, "no client certificate, no service")
	require.Eventually(t, func() bool {
		for _, r := range auditRecords(t, auditLog) {
			if r["reason"] == "tls_no_cert" {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "the refusal is audited as tls_no_cert")

	// An acme-tls/1 hello outside a validation gets no certificate and
	// never an HTTP answer.
	conn, err := tls.Dial("tcp", p.addr, &tls.Config{ServerName: domain, NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		_, err = http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
	}
	assert.Error(t, err)

	// /status reports the managed certificate.
	out, err := exec.Command(binPath, "certs", "status", "--addr", logAddr(t, p, "admin listening")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), certs.CertFingerprint(leaf))
	assert.Contains(t, string(out), "acme_obtained          true")

	// After a restart the certificate comes from --acme-storage: the same
	// one is served at once, without a new order.
	p.stop(t)
	fi, err := os.Stat(filepath.Join(state, "acme"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	p2 := start(t, args...)
	require.Eventually(t, func() bool {
		conn, err := tls.Dial("tcp", p2.addr, withCert)
		if err != nil {
			return false
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Equal(leaf)
	}, 20*time.Second, 20*time.Millisecond, "the stored certificate is served after a restart; log:\n%s", p2.stderr.String())
}

// logAddr returns the addr of the first log line with message msg.
func logAddr(t *testing.T, p *proc, msg string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			if s, ok := m["addr"].(string); ok {
				return s
			}
		}
	}
	t.Fatal(errors.New("no " + msg + " line in the log"))
	return ""
}
