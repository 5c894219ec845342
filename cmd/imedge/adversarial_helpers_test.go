package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// advToken is the IM token the adversarial imedge runs with (--token-file).
const advToken = "adversarial-suite-token"

// arena is one imedge process under attack, the material attackers and the
// legitimate client use, and its audit log.
type arena struct {
	p        *pki
	sink     *sink
	im       *proc
	auditLog string
	stateDir string

	rogue, expired, wrongEKU, revoked tls.Certificate
}

// signedURL is a callback URL with a valid Sign for now and the given
// ClientIP.
func (a *arena) signedURL(clientIP string) string {
	return callbackURL(a.im.addr, clientIP) + signQuery(advToken, time.Now())
}

// dialer dials from the loopback address src (Linux routes all of
// 127.0.0.0/8 to lo, so each attacker gets its own source address and so
// its own audit-sampling key and per-address connection count).
func dialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
}

// tlsConfig trusts the server and presents cert (none when empty).
func (a *arena) tlsConfig(cert *tls.Certificate, protos ...string) *tls.Config {
	c := &tls.Config{RootCAs: certstest.Pool(a.p.ca), ServerName: "127.0.0.1", NextProtos: protos}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// client is an HTTP/1.1 client from src presenting the good certificate.
func (a *arena) client(src string) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: dialer(src).DialContext, TLSClientConfig: a.tlsConfig(&a.p.client), DisableKeepAlives: true,
	}}
}

// handshake performs a TLS handshake from src with cfg and returns its
// error (nil when the server accepted it).
func (a *arena) handshake(src string, cfg *tls.Config) error {
	c, err := dialer(src).Dial("tcp", a.im.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(c, cfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	// TLS 1.3: a refused client certificate is reported after the
	// client's Finished; read to see the alert.
	_, err = tc.Read(make([]byte, 1))
	if err != nil && !isTimeout(err) && err != io.EOF {
		return err
	}
	return nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// reply is an HTTP answer.
type reply struct {
	status int
	body   string
}

// post sends one callback from src.
func (a *arena) post(t *testing.T, src, method, url, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.client(src).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

// failJSON is the reply body of a refusal with reason.
func failJSON(reason string) string {
	return `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"` + reason + `"}`
}

// waitAudit waits until the audit log holds a record matching all of
// want (values compared as strings; "remote_ip" matches the host of
// remote_addr) and returns it.
func (a *arena) waitAudit(t *testing.T, want map[string]string) map[string]any {
	t.Helper()
	var found map[string]any
	require.Eventually(t, func() bool {
		for _, r := range auditRecords(t, a.auditLog) {
			if matches(r, want) {
				found = r
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "no audit record matching %v in:\n%s", want, a.auditTail(t))
	return found
}

func matches(r map[string]any, want map[string]string) bool {
	for k, v := range want {
		if k == "remote_ip" {
			ra, _ := r["remote_addr"].(string)
			host, _, _ := net.SplitHostPort(ra)
			if host != v {
				return false
			}
			continue
		}
		if fmt.Sprint(r[k]) != v {
			return false
		}
	}
	return true
}

// countAudit counts records matching want.
func (a *arena) countAudit(t *testing.T, want map[string]string) int {
	n := 0
	for _, r := range auditRecords(t, a.auditLog) {
		if matches(r, want) {
			n++
		}
	}
	return n
}

func (a *arena) auditTail(t *testing.T) string {
	b, _ := os.ReadFile(a.auditLog)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// newArena builds the PKI (good client, rogue CA, expired, server-only
// EKU, revoked), a CRL, and starts imedge with a token and tight limits.
func newArena(t *testing.T) *arena {
	t.Helper()
	raiseFileLimit(t)
	a := &arena{p: newPKI(t), sink: newSink(t)}
	dir := t.TempDir()
	a.auditLog = filepath.Join(dir, "audit.log")
	a.stateDir = filepath.Join(dir, "state")

	rogueCA := certstest.NewCA(t)
	a.rogue = certstest.TLSCertificate(t, rogueCA.Issue(t, certstest.Client("spiffe://tencent-im/callback")))
	a.expired = certstest.TLSCertificate(t, a.p.ca.Issue(t, certstest.Client("spiffe://tencent-im/old"),
		certstest.ValidBetween(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))))
	a.wrongEKU = certstest.TLSCertificate(t, a.p.ca.Issue(t, certstest.Server("im.example")))
	revoked := a.p.ca.Issue(t, certstest.Client("spiffe://tencent-im/revoked"))
	a.revoked = certstest.TLSCertificate(t, revoked)
	crl := filepath.Join(dir, "im.crl")
	require.NoError(t, os.WriteFile(crl, a.p.ca.CRL(t, revoked.Cert.SerialNumber), 0o644))

	tokenFile := filepath.Join(dir, "im.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(advToken+"\n"), 0o600))
	args := append(baseArgs(a.p, a.sink.srv.URL, a.stateDir, a.auditLog),
		"--token-file", tokenFile,
		"--client-crl", crl,
		"--max-body", "64KiB",
		"--max-header-bytes", "8192",
		"--handshake-timeout", "2s",
		"--read-header-timeout", "1s", "--read-timeout", "3s", "--write-timeout", "5s", "--idle-timeout", "30s",
		"--max-conns", "300", "--max-conns-per-ip", "64",
		"--allow-source", "127.0.0.0/25",
		"--audit-sample-interval", "1h", "--audit-burst", "5",
		"--shutdown-timeout", "5s")
	a.im = start(t, args...)
	return a
}

// raiseFileLimit lifts the soft descriptor limit to the hard one (Go does
// this at start-up too; the child imedge inherits it) and skips the test
// when even that is too small for the idle-connection flood.
func raiseFileLimit(t *testing.T) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	}
	if lim.Cur < idleConns+1000 {
		t.Skipf("open-file limit %d is too small for %d idle connections", lim.Cur, idleConns)
	}
}

// phaseStats counts the legitimate client's requests in one phase.
type phaseStats struct{ sent, ok int }

// legit is a well-behaved IM client sending signed callbacks from
// 127.0.0.1 for the whole suite, alternating a keep-alive HTTP/2
// connection and a new HTTP/1.1 connection per request, and recording
// the outcome per phase.
type legit struct {
	a       *arena
	phase   atomic.Pointer[string]
	mu      sync.Mutex
	stats   map[string]*phaseStats
	order   []string
	fails   []string
	stop    chan struct{}
	done    chan struct{}
	counter atomic.Int64
}

func startLegit(t *testing.T, a *arena) *legit {
	l := &legit{a: a, stats: map[string]*phaseStats{}, stop: make(chan struct{}), done: make(chan struct{})}
	l.setPhase("idle")
	keepAlive := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DialContext: dialer("127.0.0.1").DialContext, TLSClientConfig: a.tlsConfig(&a.p.client),
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 2,
	}}
	fresh := a.client("127.0.0.1")
	go func() {
		defer close(l.done)
		defer keepAlive.CloseIdleConnections()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			c := keepAlive
			if i%2 == 1 {
				c = fresh
			}
			phase := *l.phase.Load()
			err := l.send(c)
			l.mu.Lock()
			st := l.stats[phase]
			st.sent++
			if err == nil {
				st.ok++
			} else if len(l.fails) < 20 {
				l.fails = append(l.fails, phase+": "+err.Error())
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.halt)
	return l
}

func (l *legit) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *legit) setPhase(name string) {
	l.mu.Lock()
	if _, ok := l.stats[name]; !ok {
		l.stats[name] = &phaseStats{}
		l.order = append(l.order, name)
	}
	l.mu.Unlock()
	l.phase.Store(&name)
}

// send posts one valid, unique callback and checks the OK reply.
func (l *legit) send(c *http.Client) error {
	n := l.counter.Add(1)
	clientIP := fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
	body := friendDeleteBody(fmt.Sprintf("legit-%d", n), "friend")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.a.signedURL(clientIP), strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(b), []byte(okReply)) {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return nil
}

// snapshot returns the stats of phase.
func (l *legit) snapshot(phase string) phaseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, ok := l.stats[phase]; ok {
		return *st
	}
	return phaseStats{}
}

// waitOK waits until n callbacks of the current phase were answered OK.
func (l *legit) waitOK(t *testing.T, n int) {
	t.Helper()
	phase := *l.phase.Load()
	require.Eventually(t, func() bool { return l.snapshot(phase).ok >= n }, 20*time.Second, 20*time.Millisecond,
		"%d legitimate callbacks answered OK in phase %q", n, phase)
}

// report returns every phase's numbers, in order, and the totals.
func (l *legit) report() (string, phaseStats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	var total phaseStats
	for _, n := range l.order {
		st := l.stats[n]
		total.sent += st.sent
		total.ok += st.ok
		fmt.Fprintf(&b, "  %-28s %4d/%-4d ok\n", n, st.ok, st.sent)
	}
	return b.String(), total
}

// leafSerial names a certificate's serial the way audit records do.
func leafSerial(c *tls.Certificate) string { return certs.SerialHex(c.Leaf) }

// deliveries counts the deliveries whose body is b.
func (s *sink) deliveries(b string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, list := range s.bodies {
		for _, got := range list {
			if string(got) == b {
				n++
			}
		}
	}
	return n
}

// rawPost sends an HTTP/1.1 POST over its own TLS connection from src,
// writing extraHead and the body from a separate goroutine and ignoring
// write errors, and returns the answer.
func (a *arena) rawPost(t *testing.T, src, url, extraHead string, body func(w io.Writer)) reply {
	t.Helper()
	tc, err := tls.DialWithDialer(dialer(src), "tcp", a.im.addr, a.tlsConfig(&a.p.client, "http/1.1"))
	require.NoError(t, err)
	defer tc.Close()
	go func() {
		path := strings.TrimPrefix(url, "https://"+a.im.addr)
		if _, err := io.WriteString(tc, "POST "+path+" HTTP/1.1\r\nHost: "+a.im.addr+
			"\r\nContent-Type: application/json\r\n"+extraHead+"\r\n"); err != nil {
			return
		}
		body(tc)
	}()
	_ = tc.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

// exchange is a raw HTTP/1.1 exchange over its own TLS connection from
// src: it writes req (which the caller built whole, body included),
// reads one response and its whole body, and keeps the connection open
// until the test ends.
func (a *arena) exchange(t *testing.T, src, req string) (*http.Response, string) {
	t.Helper()
	tc, err := tls.DialWithDialer(dialer(src), "tcp", a.im.addr, a.tlsConfig(&a.p.client, "http/1.1"))
	require.NoError(t, err)
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	_, err = io.WriteString(tc, req)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err, "an answer")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the answer's body arrives whole")
	return resp, string(b)
}

// head is the start of a POST of a signed callback for clientIP, up to
// and including the Host line.
func (a *arena) head(clientIP string) string {
	return "POST " + strings.TrimPrefix(a.signedURL(clientIP), "https://"+a.im.addr) + " HTTP/1.1\r\nHost: " + a.im.addr + "\r\n"
}

// writeThenRead is a client that writes a whole callback with a body of
// size bytes before it reads anything, through a small send buffer (so
// the body cannot hide in it). It returns the answer and the write's
// error.
func (a *arena) writeThenRead(t *testing.T, src, clientIP string, size int) (*http.Response, string, error) {
	t.Helper()
	raw, err := dialer(src).Dial("tcp", a.im.addr)
	require.NoError(t, err)
	require.NoError(t, raw.(*net.TCPConn).SetWriteBuffer(32<<10))
	tc := tls.Client(raw, a.tlsConfig(&a.p.client, "http/1.1"))
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	_, werr := io.WriteString(tc, a.head(clientIP)+"Content-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(size)+"\r\n\r\n"+strings.Repeat(" ", size))
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	require.NoError(t, err, "an answer (the write's error: %v)", werr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the answer's body arrives whole")
	return resp, string(b), werr
}

// curlPost posts a body of size bytes with curl from src over proto
// ("--http1.1" or "--http2") and returns the HTTP version curl used, the
// status, the body and curl's exit error.
func (a *arena) curlPost(t *testing.T, src, clientIP, proto string, size int) (string, int, string, error) {
	t.Helper()
	_, err := exec.LookPath("curl")
	require.NoError(t, err, "curl is needed (.ci/run installs it)")
	f := filepath.Join(t.TempDir(), "body.json")
	require.NoError(t, os.WriteFile(f, bytes.Repeat([]byte(" "), size), 0o600))
	out, err := exec.Command("curl", "-sS", "--max-time", "15", proto, "--interface", src,
		"--cacert", a.p.caFile, "--cert", a.p.clientCert, "--key", a.p.clientKey,
		"-H", "Content-Type: application/json", "--data-binary", "@"+f,
		"-w", "\nproto=%{http_version} status=%{http_code}", a.signedURL(clientIP)).CombinedOutput()
	body, tail, _ := strings.Cut(string(out), "\nproto=")
	version, status, _ := strings.Cut(tail, " status=")
	code, _ := strconv.Atoi(strings.TrimSpace(status))
	if err != nil {
		err = fmt.Errorf("curl: %w: %s", err, out)
	}
	return version, code, body, err
}
