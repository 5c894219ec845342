package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/imsim"
	"github.com/imedge/imedge/internal/testkit"
)

// binPath is the imedge binary built once by TestMain for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) { testkit.MainWithImedge(m, &binPath) }

// syncBuffer collects a child process's output for concurrent readers.
type syncBuffer = testkit.SyncBuffer

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written to disk.
type pki struct {
	ca         *certstest.CA
	dir        string
	caFile     string
	certFile   string
	keyFile    string
	clientCert string
	clientKey  string
	client     tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca := certstest.NewCA(t)
	srv := ca.WriteFiles(t, ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))
	cliIss := ca.Issue(t, certstest.Client("spiffe://tencent-im/callback"))
	cli := ca.WriteFiles(t, cliIss)
	return &pki{ca: ca, dir: srv.Dir, caFile: srv.CA, certFile: srv.Cert, keyFile: srv.Key,
		clientCert: cli.Cert, clientKey: cli.Key, client: certstest.TLSCertificate(t, cliIss)}
}

// httpsClient trusts the PKI's CA and presents its client certificate.
func (p *pki) httpsClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: certstest.Pool(p.ca), Certificates: []tls.Certificate{p.client}},
		MaxIdleConnsPerHost: 16,
	}}
}

// sink is a real internal HTTP service that records every delivery.
type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies map[string][][]byte // by X-Imedge-Event-Id
	hdrs   map[string]http.Header
	status int // 0 means 204
}

func newSink(t *testing.T) *sink { return newSinkOn(t, nil) }

// newSinkOn starts a sink on ln, or on a new loopback port when ln is nil.
func newSinkOn(t *testing.T, ln net.Listener) *sink {
	s := &sink{bodies: map[string][][]byte{}, hdrs: map[string]http.Header{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		st := s.status
		if st == 0 || st/100 == 2 {
			id := r.Header.Get("X-Imedge-Event-Id")
			s.bodies[id] = append(s.bodies[id], b)
			s.hdrs[id] = r.Header.Clone()
		}
		s.mu.Unlock()
		if st == 0 {
			st = http.StatusNoContent
		}
		w.WriteHeader(st)
	}))
	if ln != nil {
		s.srv.Listener.Close()
		s.srv.Listener = ln
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// setStatus makes the sink answer every request with code (0: 204).
func (s *sink) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func (s *sink) get(id string) ([][]byte, http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies[id], s.hdrs[id]
}

// proc is a running imedge process.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	addr   string
	done   chan error
}

// start runs the binary with args and waits for its "listening" log line.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.kill() })
	deadline := time.After(20 * time.Second)
	for p.addr == "" {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("imedge exited before listening: %v\nstderr:\n%s", err, p.stderr.String())
		case <-deadline:
			t.Fatalf("imedge did not log \"listening\" in time; stderr:\n%s", p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		p.addr = listenAddr(p.stderr.String())
	}
	return p
}

func listenAddr(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "listening" {
			s, _ := m["addr"].(string)
			return s
		}
	}
	return ""
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		p.done <- err
		require.NoError(t, err, "imedge exits 0 after SIGTERM; stderr:\n%s", p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("imedge did not stop within 30s of SIGTERM")
	}
}

// auditRecords parses the JSON audit lines in a file.
func auditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return testkit.JSONLines(t, string(b))
}

const appID = "1400000001"

func callbackURL(addr, clientIP string) string {
	return "https://" + addr + "/?SdkAppid=" + appID +
		"&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=" + clientIP + "&OptPlatform=iOS"
}

// signQuery is the "&Sign=...&RequestTime=..." suffix IM appends to a
// callback URL when the app has a token, for the request time at.
func signQuery(token string, at time.Time) string {
	rt := at.Unix()
	return "&Sign=" + imsim.Sign([]byte(token), rt) + "&RequestTime=" + strconv.FormatInt(rt, 10)
}

func friendDeleteBody(from, to string) string {
	return `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"` + from + `","To_Account":"` + to + `"}]}`
}

// baseArgs are the serve flags every end-to-end test uses.
func baseArgs(p *pki, sinkURL, stateDir, auditLog string) []string {
	return []string{"serve", "--listen", "127.0.0.1:0", "--cert", p.certFile, "--key", p.keyFile,
		"--client-ca", p.caFile, "--sdkappid", appID, "--forward-url", sinkURL,
		"--state-dir", stateDir, "--audit-log", auditLog, "--retry-base", "20ms", "--retry-max", "200ms",
		"--audit-sample-interval", "0",
		"--admin-listen", "127.0.0.1:0"} // never the default port: tests and instances run side by side
}
