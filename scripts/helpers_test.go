package scripts_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
)

// binPath is the imedge binary built once by TestMain; the scripts run it
// through $IMEDGE.
var binPath string

func TestMain(m *testing.M) { testkit.MainWithImedge(m, &binPath) }

const appID = "1400000001"

// cliRace is the race detector setting for short-lived imedge commands:
// its default waits a second at every exit.
const cliRace = "GORACE=halt_on_error=1 atexit_sleep_ms=0"

// syncBuffer collects a child process's output for concurrent readers.
type syncBuffer = testkit.SyncBuffer

// fixture is a PKI on disk laid out as an operator would keep it: the
// files imedge serves, a client-CA bundle, a CRL of the client CA.
type fixture struct {
	dir      string
	serverCA *certstest.CA
	clientCA *certstest.CA
	certFile string // live server certificate
	keyFile  string // live server key
	bundle   string // live client-CA bundle
	crl      string // live client CRL (no entries at start); "" runs imedge without one
	client   *certs.Issued
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), serverCA: certstest.NewCA(t), clientCA: certstest.NewCA(t, certstest.CommonName("client CA 1"))}
	f.certFile = filepath.Join(f.dir, "server.pem")
	f.keyFile = filepath.Join(f.dir, "server-key.pem")
	f.bundle = filepath.Join(f.dir, "client-ca.pem")
	f.crl = filepath.Join(f.dir, "client.crl")
	require.NoError(t, certs.WriteIssued(f.serverCA.Issue(t, certstest.Server("localhost", "127.0.0.1")), f.certFile, f.keyFile))
	f.clientCA.WriteCA(t, f.bundle)
	writeCRL(t, f.crl, f.clientCA.CRL(t))
	f.client = f.clientCA.Issue(t, certstest.Client("spiffe://tencent-im/callback"))
	return f
}

func writeCRL(t *testing.T, path string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644))
}

// stage writes an issued certificate and key to new files in a fresh
// directory and returns their paths.
func stage(t *testing.T, i *certs.Issued) (string, string) {
	t.Helper()
	dir := t.TempDir()
	c, k := filepath.Join(dir, "new.pem"), filepath.Join(dir, "new-key.pem")
	require.NoError(t, certs.WriteIssued(i, c, k))
	return c, k
}

// proc is a running imedge.
type proc struct {
	cmd       *exec.Cmd
	stderr    *syncBuffer
	addr      string   // callback listener
	admin     string   // admin listener
	adminTLS  []string // `imedge certs status` options for an admin listener with mutual TLS
	audit     string   // audit log file
	done      chan error
	exited    atomic.Bool
	exitedErr error // valid once exited
}

// newSink starts an internal service that accepts every event.
func newSink(t *testing.T) string {
	t.Helper()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(sink.Close)
	return sink.URL
}

// startImedge runs `imedge serve` for the fixture with extra flags and
// waits until both listeners are up.
func startImedge(t *testing.T, f *fixture, extra ...string) *proc {
	t.Helper()
	state := t.TempDir()
	audit := filepath.Join(state, "audit.log")
	args := []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--cert", f.certFile, "--key", f.keyFile, "--client-ca", f.bundle,
		"--sdkappid", appID, "--forward-url", newSink(t), "--state-dir", state, "--audit-log", audit,
		"--audit-sample-interval", "0", "--rate", "0"}
	if f.crl != "" {
		args = append(args, "--client-crl", f.crl)
	}
	p := launch(t, append(args, extra...), nil)
	p.audit = audit
	return p
}

// launch runs imedge with args and extra environment variables and waits
// until both listeners are up.
func launch(t *testing.T, args, env []string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		p.exitedErr = err
		p.exited.Store(true)
		p.done <- err
	}()
	t.Cleanup(func() { p.stop(t) })
	require.Eventually(t, func() bool {
		logs := p.stderr.String()
		p.addr, p.admin = logAddr(logs, "listening"), logAddr(logs, "admin listening")
		return p.exited.Load() || (p.addr != "" && p.admin != "")
	}, 30*time.Second, 20*time.Millisecond, "imedge did not start listening; stderr:\n%s", p.stderr)
	require.False(t, p.exited.Load(), "imedge exited before listening: %v\n%s", p.exitedErr, p.stderr.String())
	return p
}

// logAddr returns the addr of the first JSON log line with message msg.
func logAddr(logs, msg string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			s, _ := m["addr"].(string)
			return s
		}
	}
	return ""
}

// stop ends imedge with SIGTERM (SIGKILL after 20s) and checks the race
// detector stayed quiet.
func (p *proc) stop(t *testing.T) {
	if !p.exited.Load() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			err := <-p.done
			p.done <- err
		}
	}
	if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("imedge reported a data race:\n%s", p.stderr.String())
	}
}

func (p *proc) pid() string { return fmt.Sprint(p.cmd.Process.Pid) }

// waitPIDFile waits until imedge has written its --pid-file and checks it
// names this process.
func (p *proc) waitPIDFile(t *testing.T, path string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.TrimSpace(string(b)) != ""
	}, 30*time.Second, 20*time.Millisecond, "imedge wrote no pid file %s", path)
	assert.Equal(t, p.pid()+"\n", string(readFile(t, path)))
}

// status returns the tls member of /status, through `imedge certs status --json`.
func (p *proc) status(t *testing.T) map[string]any {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"certs", "status", "--addr", p.admin, "--json"}, p.adminTLS...)...)
	cmd.Env = append(os.Environ(), cliRace)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "certs status: %s", out)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out, &m), "%s", out)
	return m
}

// servedSHA256 is the served server certificate's fingerprint per /status.
func (p *proc) servedSHA256(t *testing.T) string {
	t.Helper()
	sc, _ := p.status(t)["server_cert"].(map[string]any)
	s, _ := sc["sha256"].(string)
	return s
}

// clientCAs are the client-CA fingerprints per /status.
func (p *proc) clientCAs(t *testing.T) []string {
	t.Helper()
	var out []string
	list, _ := p.status(t)["client_cas"].([]any)
	for _, c := range list {
		m, _ := c.(map[string]any)
		s, _ := m["sha256"].(string)
		out = append(out, s)
	}
	return out
}

// auditReasons returns the records of the audit log.
func (p *proc) auditRecords(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.audit)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(line, &m), "audit line: %s", line)
		out = append(out, m)
	}
	return out
}

// runScript runs scripts/NAME with bash as a real process, with $IMEDGE
// set, and returns its combined output and exit code.
func runScript(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	return runScriptEnv(t, nil, name, args...)
}

// runScriptEnv is runScript with extra environment variables (later
// entries win, so "PATH=..." replaces the PATH).
func runScriptEnv(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{name}, args...)...)
	cmd.Env = append(append(os.Environ(), "IMEDGE="+binPath, cliRace), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %s: %v\n%s", name, err, out)
		code = ee.ExitCode()
	}
	t.Logf("%s %s → exit %d\n%s", name, strings.Join(args, " "), code, out)
	return string(out), code
}

// callbackURL is a valid callback URL for imedge at addr.
func callbackURL(addr, clientIP string) string {
	return "https://" + addr + "/?SdkAppid=" + appID +
		"&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=" + clientIP
}

func friendDeleteBody(from, to string) string {
	return `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"` + from + `","To_Account":"` + to + `"}]}`
}

// clientTLS trusts roots and presents cert.
func clientTLS(t *testing.T, roots *x509.CertPool, cert *certs.Issued) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{certstest.TLSCertificate(t, cert)}
	}
	return cfg
}

// post sends one callback over a new connection and returns the status
// code, or the error (a refused handshake).
func post(t *testing.T, addr string, cfg *tls.Config, n int) (int, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Post(callbackURL(addr, "203.0.113.9"), "application/json",
		strings.NewReader(friendDeleteBody(fmt.Sprintf("alice-%d-%d", n, time.Now().UnixNano()), "bob")))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// servedLeaf makes one handshake (no HTTP) and returns the server's leaf.
func servedLeaf(t *testing.T, addr string, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// systemctlStandIn is the text of the fake systemctl the tests put first
// on the scripts' PATH: CI has no systemd as PID 1. It knows units by the
// files in units/ next to it (content: the MainPID; UNIT.deny: reload is
// refused; UNIT.warn: a warning on stderr, as systemctl prints when the
// unit file changed on disk), logs every call to calls.log, and fails on
// anything else.
const systemctlStandIn = `#!/usr/bin/env bash
# systemctl stand-in for scripts/*_test.go:
#   systemctl show -p MainPID --value UNIT   prints the pid in units/UNIT, 0 when absent
#   systemctl reload UNIT                    sends SIGHUP to that pid (as ExecReload does)
# UNIT may end in .service. Every call is appended to calls.log.
set -euo pipefail
here=$(dirname -- "${BASH_SOURCE[0]}")
printf '%s\n' "$*" >>"$here/calls.log"
main_pid() {
  local f=$here/units/${1%.service}
  if [[ -e $f.warn ]]; then
    echo "Warning: The unit file of ${1%.service}.service changed on disk. Run 'systemctl daemon-reload'." >&2
  fi
  if [[ -f $f ]]; then cat -- "$f"; else echo 0; fi
}
if [[ $# == 5 && $1 == show && $2 == -p && $3 == MainPID && $4 == --value ]]; then
  main_pid "$5"
elif [[ $# == 2 && $1 == reload ]]; then
  unit=${2%.service}
  if [[ -e $here/units/$unit.deny ]]; then
    echo "Failed to reload $unit.service: Access denied" >&2
    exit 4
  fi
  pid=$(main_pid "$2")
  if [[ $pid == 0 ]]; then
    echo "$unit.service is not active, cannot reload." >&2
    exit 1
  fi
  kill -HUP "$pid"
else
  echo "systemctl stand-in: unsupported call: $*" >&2
  exit 64
fi
`

// fakeSystemd is a directory holding the systemctl stand-in and its units.
type fakeSystemd struct{ dir string }

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	s := &fakeSystemd{dir: t.TempDir()}
	require.NoError(t, os.Mkdir(filepath.Join(s.dir, "units"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "systemctl"), []byte(systemctlStandIn), 0o755))
	return s
}

// unit sets the MainPID of unit name ("0" for a stopped unit).
func (s *fakeSystemd) unit(t *testing.T, name, pid string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "units", name), []byte(pid+"\n"), 0o644))
}

// denyReload makes `systemctl reload name` fail as for a user without the
// right to reload it.
func (s *fakeSystemd) denyReload(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "units", name+".deny"), nil, 0o644))
}

// warn makes the stand-in print a warning on stderr for name.
func (s *fakeSystemd) warn(t *testing.T, name string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "units", name+".warn"), nil, 0o644))
}

// env puts the stand-in first on the PATH.
func (s *fakeSystemd) env() []string {
	return []string{"PATH=" + s.dir + string(os.PathListSeparator) + os.Getenv("PATH")}
}

// calls are the stand-in's invocations so far, one argument list each.
func (s *fakeSystemd) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "calls.log"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// count is how many calls were exactly call.
func (s *fakeSystemd) count(t *testing.T, call string) int {
	t.Helper()
	n := 0
	for _, c := range s.calls(t) {
		if c == call {
			n++
		}
	}
	return n
}

// adminMTLS makes the PKI of an admin listener that requires mutual TLS on
// 127.0.0.1: serve are imedge's flags, script the rotation scripts'
// options and status the `imedge certs status` options that reach it.
func adminMTLS(t *testing.T) (serve, script, status []string) {
	t.Helper()
	srvCA := certstest.NewCA(t, certstest.CommonName("admin server CA"))
	cliCA := certstest.NewCA(t, certstest.CommonName("admin client CA"))
	srv := srvCA.WriteFiles(t, srvCA.Issue(t, certstest.Server("127.0.0.1")))
	cli := cliCA.WriteFiles(t, cliCA.Issue(t, certstest.Client("spiffe://ops/rotation")))
	serve = []string{"--admin-cert", srv.Cert, "--admin-key", srv.Key, "--admin-client-ca", cli.CA}
	script = []string{"--admin-cacert", srv.CA, "--admin-cert", cli.Cert, "--admin-key", cli.Key}
	status = []string{"--cacert", srv.CA, "--cert", cli.Cert, "--key", cli.Key}
	return serve, script, status
}
