package decide

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
	"github.com/imedge/imedge/receiver"
)

const (
	testAppID  = "1400000000"
	testToken  = "im-callback-token"
	testSecret = "decide-signing-secret"
)

// seenRequest is what the decision service received.
type seenRequest struct {
	path   string
	query  string
	header http.Header
	body   []byte
}

// decisionService is a real HTTP decision service on loopback whose
// answer the test sets; it records every request.
type decisionService struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
	seen   []seenRequest
}

func newDecisionService(t *testing.T) *decisionService {
	t.Helper()
	d := &decisionService{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d.calls.Add(1)
		d.mu.Lock()
		d.seen = append(d.seen, seenRequest{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		answer := d.answer
		d.mu.Unlock()
		if answer == nil {
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)(w, r, body)
			return
		}
		answer(w, r, body)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// set makes the service answer with f from now on.
func (d *decisionService) set(f func(w http.ResponseWriter, r *http.Request, body []byte)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer = f
}

func (d *decisionService) last() seenRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[len(d.seen)-1]
}

// reply answers 200 with a fixed JSON body.
func reply(body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// status answers with an HTTP status and an OK body.
func status(code int) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	}
}

// stall answers nothing for d, or until the caller gives up, or release
// is closed.
func stall(d time.Duration, release <-chan struct{}) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		case <-release:
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	}
}

// auditBuf collects audit lines; safe for concurrent use.
type auditBuf struct{ testkit.SyncBuffer }

func (a *auditBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	return testkit.JSONLines(t, a.String())
}

// memSink records the events it is handed; err, when set, is returned.
type memSink struct {
	mu  sync.Mutex
	evs []receiver.Event
	err error
}

func (s *memSink) Accept(_ context.Context, ev receiver.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	ev.Body = bytes.Clone(ev.Body)
	s.evs = append(s.evs, ev)
	return nil
}

func (s *memSink) got() []receiver.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receiver.Event(nil), s.evs...)
}

// rig is IM's side of the decision path: the real receiver handler with a
// Service as its Decider, behind mutual TLS on loopback, and a client with
// IM's certificate that signs every callback with the token.
type rig struct {
	svc    *Service
	h      *receiver.Handler
	url    string
	client *http.Client
	audit  *auditBuf
	sink   *memSink
	cat    *catalog.Catalog
}

// newRig builds the rig around o (signed with testSecret unless set) and
// receiver options adjusted by mod.
func newRig(t *testing.T, o Options, mod func(*receiver.Options)) *rig {
	t.Helper()
	if o.SigningSecret == nil {
		o.SigningSecret = []byte(testSecret)
	}
	if o.Catalog == nil {
		o.Catalog = catalog.New()
	}
	svc, err := New(o)
	require.NoError(t, err)
	t.Cleanup(svc.Close)
	r := &rig{svc: svc, audit: &auditBuf{}, sink: &memSink{}, cat: o.Catalog}
	ro := receiver.Options{
		AppID: testAppID, Token: []byte(testToken), RequireClientCert: true, Catalog: o.Catalog,
		Decider: svc, Sink: r.sink, Audit: audit.New(r.audit, audit.Options{}),
	}
	if mod != nil {
		mod(&ro)
	}
	r.h, err = receiver.New(ro)
	require.NoError(t, err)

	ca := certstest.NewCA(t)
	srv := httptest.NewUnstartedServer(r.h)
	srv.TLS = certstest.MutualServerTLS(t, ca, "localhost", "127.0.0.1")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert := certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://tencent.im/callback")))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certstest.Pool(ca), Certificates: []tls.Certificate{cert}},
		MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	r.url, r.client = srv.URL, &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return r
}

// query is IM's query for command, signed now.
func query(command, clientIP string) string {
	rt := strconv.FormatInt(time.Now().Unix(), 10)
	sum := sha256.Sum256([]byte(testToken + rt))
	return "SdkAppid=" + testAppID + "&CallbackCommand=" + command + "&contenttype=json&ClientIP=" + clientIP +
		"&OptPlatform=iOS&Sign=" + hex.EncodeToString(sum[:]) + "&RequestTime=" + rt
}

// answer is what IM received.
type answer struct {
	status  int
	body    string
	elapsed time.Duration
}

// post sends one callback as IM does and returns IM's view of the answer.
func (r *rig) post(t *testing.T, command string, body []byte) answer {
	t.Helper()
	return r.postFrom(t, command, body, "127.0.0.1")
}

func (r *rig) postFrom(t *testing.T, command string, body []byte, clientIP string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url+"/?"+query(command, clientIP), bytes.NewReader(body))
	require.NoError(t, err)
	start := time.Now()
	resp, err := r.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, body: string(b), elapsed: time.Since(start)}
}

// example returns the catalog's example body of command.
func (r *rig) example(t *testing.T, command string) (*catalog.Command, []byte) {
	t.Helper()
	cmd, ok := r.cat.Lookup(command)
	require.True(t, ok, command)
	return cmd, cmd.Example()
}

// distinct returns the C2C.CallbackBeforeSendMsg example made unique by n
// (its MsgRandom), so that it is a new question.
func distinct(t *testing.T, cat *catalog.Catalog, n int) []byte {
	t.Helper()
	cmd, ok := cat.Lookup("C2C.CallbackBeforeSendMsg")
	require.True(t, ok)
	b := bytes.Replace(cmd.Example(), []byte(`"MsgRandom":2837546`), []byte(`"MsgRandom":`+strconv.Itoa(n)), 1)
	require.NotEqual(t, cmd.Example(), b)
	return b
}

// imDeadline is IM's budget for an answer.
const imDeadline = 2 * time.Second
