package egress_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/egress"
	"github.com/imedge/imedge/internal/testkit"
)

const (
	testAppID = 1400000001
	testAdmin = "administrator"
	testKey   = "0123456789abcdef-not-a-real-secret-key-fedcba9876543210"
)

// reply is one scripted GetIPList answer.
type reply struct {
	status int    // HTTP status; zero means 200
	body   string // written as is
	hang   bool   // never answer: wait for the client to give up
	echo   bool   // refuse with an ErrorInfo that quotes the UserSig
	header http.Header
}

// okReply is a well-formed answer listing entries.
func okReply(entries ...string) reply {
	list, _ := json.Marshal(entries)
	if entries == nil {
		list = []byte("[]")
	}
	return reply{body: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","IPList":` + string(list) + `}`}
}

// call is what the fake saw of one request.
type call struct {
	netType string
	userSig string
}

// fakeIM is IM's REST API over HTTPS on loopback, with a certificate from a
// test CA. It checks every request as IM would — the method, path, body,
// each query parameter, and the UserSig, by recomputing it with the app's
// key — and answers from a per-nettype script. A request that fails a check
// is answered like IM (ErrorCode 70001) and recorded in problems.
type fakeIM struct {
	t     *testing.T
	srv   *httptest.Server
	ca    *certstest.CA
	clock *testkit.Clock

	mu       sync.Mutex
	replies  map[string]reply // by nettype
	calls    []call
	problems []string
}

func newFakeIM(t *testing.T, clock *testkit.Clock) *fakeIM {
	t.Helper()
	f := &fakeIM{t: t, ca: certstest.NewCA(t), clock: clock, replies: map[string]reply{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{
		certstest.TLSCertificate(t, f.ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))}}
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what some tests do
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// answer scripts the reply for a nettype ("5" or "6").
func (f *fakeIM) answer(netType string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[netType] = r
}

func (f *fakeIM) problem(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, fmt.Sprintf(format, a...))
}

func (f *fakeIM) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sig := q.Get("usersig")
	f.mu.Lock()
	f.calls = append(f.calls, call{netType: q.Get("nettype"), userSig: sig})
	f.mu.Unlock()

	body, _ := io.ReadAll(io.LimitReader(r.Body, 1024))
	var bad []string
	if r.Method != http.MethodPost {
		bad = append(bad, "method "+r.Method)
	}
	if r.URL.Path != "/v4/ConfigSvc/GetIPList" {
		bad = append(bad, "path "+r.URL.Path)
	}
	if string(body) != "{}" {
		bad = append(bad, "body "+string(body))
	}
	for name, want := range map[string]string{"sdkappid": strconv.Itoa(testAppID), "identifier": testAdmin, "contenttype": "json"} {
		if got := q[name]; len(got) != 1 || got[0] != want {
			bad = append(bad, fmt.Sprintf("%s=%q", name, got))
		}
	}
	if got := q["random"]; len(got) != 1 {
		bad = append(bad, "random missing")
	} else if _, err := strconv.ParseUint(got[0], 10, 32); err != nil {
		bad = append(bad, "random not a 32-bit unsigned integer: "+got[0])
	}
	nt := q.Get("nettype")
	if nt != "5" && nt != "6" {
		bad = append(bad, "nettype "+nt)
	}
	if info, err := egress.VerifyUserSig(sig, []byte(testKey), f.clock.Now()); err != nil {
		bad = append(bad, "usersig: "+err.Error())
	} else if info.Identifier != testAdmin || info.AppID != testAppID {
		bad = append(bad, fmt.Sprintf("usersig for %s in %d", info.Identifier, info.AppID))
	}
	if len(bad) > 0 {
		f.problem("%s", strings.Join(bad, "; "))
		_, _ = io.WriteString(w, `{"ActionStatus":"FAIL","ErrorCode":70001,"ErrorInfo":"request refused by the fake"}`)
		return
	}

	f.mu.Lock()
	rep, ok := f.replies[nt]
	f.mu.Unlock()
	if !ok {
		rep = reply{status: http.StatusNotFound}
	}
	if rep.echo {
		rep.body = `{"ActionStatus":"FAIL","ErrorCode":70003,"ErrorInfo":"usersig ` + sig + ` is invalid (` + url.QueryEscape(sig) + `)"}`
	}
	if rep.hang {
		<-r.Context().Done()
		return
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.status != 0 {
		w.WriteHeader(rep.status)
	}
	_, _ = io.WriteString(w, rep.body)
}

// seen returns the calls so far and the check failures.
func (f *fakeIM) seen() ([]call, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...), append([]string(nil), f.problems...)
}

// logBuffer collects JSON log lines.
type logBuffer struct{ testkit.SyncBuffer }

// records returns the log records with message msg.
func (l *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range testkit.JSONLines(t, l.String()) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func epoch() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// env is a fake IM, a clock, a log buffer and the Options of a Source
// pointed at the fake.
type env struct {
	im    *fakeIM
	clock *testkit.Clock
	logs  *logBuffer
	opts  egress.Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := testkit.NewClock(epoch())
	im := newFakeIM(t, clock)
	logs := &logBuffer{}
	return &env{im: im, clock: clock, logs: logs, opts: egress.Options{
		AppID:        testAppID,
		Identifier:   testAdmin,
		SecretKey:    []byte(testKey),
		BaseURL:      im.srv.URL,
		RootCAs:      certstest.Pool(im.ca),
		FetchTimeout: 30 * time.Second, // generous: the machine is loaded; timeouts are tested with hang
		Now:          clock.Now,
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}}
}

func (e *env) source(t *testing.T) *egress.Source {
	t.Helper()
	s, err := egress.New(e.opts)
	require.NoError(t, err)
	return s
}

// noSecrets asserts that text quotes neither the key nor any UserSig the
// fake received (raw or query-escaped).
func (e *env) noSecrets(t *testing.T, what, text string) {
	t.Helper()
	require.NotContains(t, text, testKey, "%s quotes the secret key", what)
	calls, _ := e.im.seen()
	for _, c := range calls {
		if c.userSig == "" {
			continue
		}
		require.NotContains(t, text, c.userSig, "%s quotes a UserSig", what)
		require.NotContains(t, text, strings.ReplaceAll(c.userSig, "*", "%2A"), "%s quotes a UserSig", what)
	}
}
