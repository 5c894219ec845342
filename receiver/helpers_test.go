package receiver

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
)

const (
	testAppID = "1400000000"
	goodQuery = "SdkAppid=1400000000&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=127.0.0.1&OptPlatform=iOS"
	goodBody  = `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"id","To_Account":"id1"},{"From_Account":"id","To_Account":"id2"},{"From_Account":"id","To_Account":"id3"}]}`
)

// testNow is the fixed clock of the handler tests: the official Sign
// vector's RequestTime plus ten seconds.
var testNow = time.Unix(1669872112+10, 0)

// memSink records accepted events; err, when set, is returned instead, and
// panics makes Accept panic.
type memSink struct {
	mu     sync.Mutex
	events []Event
	err    error
	panics bool
}

func (s *memSink) Accept(_ context.Context, ev Event) error {
	if s.panics {
		panic("sink exploded")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.events = append(s.events, ev)
	return nil
}

func (s *memSink) got() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// settleCall is one recorded Seen.Settle.
type settleCall struct {
	key      string
	accepted bool
}

// recSeen is a Seen that records its calls and follows the contract: a
// held key makes other claimants wait for its outcome (accepted: false;
// failed: an error); keys settled as accepted are duplicates afterwards.
// claimErr, when set, is returned by every Claim.
type recSeen struct {
	mu       sync.Mutex
	seen     map[string]bool
	held     map[string]chan struct{}
	claims   []string
	settles  []settleCall
	claimErr error
}

func newRecSeen() *recSeen {
	return &recSeen{seen: make(map[string]bool), held: make(map[string]chan struct{})}
}

func (s *recSeen) Claim(ctx context.Context, key string) (bool, error) {
	s.mu.Lock()
	s.claims = append(s.claims, key)
	if s.claimErr != nil {
		s.mu.Unlock()
		return false, s.claimErr
	}
	if s.seen[key] {
		s.mu.Unlock()
		return false, nil
	}
	if ch, ok := s.held[key]; ok {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.seen[key] {
			return false, nil
		}
		return false, errors.New("recSeen: first copy failed")
	}
	s.held[key] = make(chan struct{})
	s.mu.Unlock()
	return true, nil
}

func (s *recSeen) Settle(key string, accepted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settles = append(s.settles, settleCall{key, accepted})
	if accepted {
		s.seen[key] = true
	}
	if ch, ok := s.held[key]; ok {
		close(ch)
		delete(s.held, key)
	}
}

func (s *recSeen) calls() ([]string, []settleCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.claims...), append([]settleCall(nil), s.settles...)
}

// stubLimiter refuses every ClientIP in deny, with wait as the retry delay.
type stubLimiter struct {
	deny map[netip.Addr]bool
	wait time.Duration
}

func (l stubLimiter) Allow(ip netip.Addr) (bool, time.Duration) {
	if l.deny[ip] {
		return false, l.wait
	}
	return true, 0
}

// auditBuf collects audit lines; safe for concurrent use.
type auditBuf struct{ testkit.SyncBuffer }

// records parses every audit line.
func (a *auditBuf) records(t testing.TB) []map[string]any {
	t.Helper()
	return a.recordsFrom(t, 0)
}

// lines counts the audit lines written so far.
func (a *auditBuf) lines() int {
	return strings.Count(a.String(), "\n")
}

// recordsFrom parses the audit lines after the first skip: a test that
// sends hundreds of callbacks to one handler parses each record once.
func (a *auditBuf) recordsFrom(t testing.TB, skip int) []map[string]any {
	t.Helper()
	text := a.String()
	for range skip {
		_, text, _ = strings.Cut(text, "\n")
	}
	return testkit.JSONLines(t, text)
}

// fixture is a handler under test with its collaborators.
type fixture struct {
	h      *Handler
	sink   *memSink
	audit  *auditBuf
	client *x509.Certificate // certificate placed in r.TLS by request
}

// newFixture builds a handler requiring client certificates, with a fixed
// clock, a memory sink and an audit buffer; mod adjusts the options.
func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	ca := certstest.NewCA(t)
	cli := ca.Issue(t, certstest.Client("spiffe://im.test/sender"))
	f := &fixture{sink: &memSink{}, audit: &auditBuf{}, client: cli.Cert}
	o := Options{
		AppID:             testAppID,
		RequireClientCert: true,
		Sink:              f.sink,
		Audit:             audit.New(f.audit, audit.Options{}),
		Now:               func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&o)
	}
	h, err := New(o)
	require.NoError(t, err)
	f.h = h
	return f
}

// request builds a POST of body to "/?"+query carrying the fixture's
// client certificate in r.TLS, as tlsconf leaves it (VerifiedChains empty).
func (f *fixture) request(query, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://edge.test/?"+query, strings.NewReader(body))
	r.URL.RawQuery = query // keep it byte for byte
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{f.client}}
	return r
}

func (f *fixture) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// failJSON is the exact FAIL reply for reason.
func failJSON(reason audit.Reason) string {
	return `{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"` + string(reason) + `"}`
}

const okJSON = `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`

// eventIDOf computes the event id independently of EventID.
func eventIDOf(appID, command, body string) string {
	sum := sha256.Sum256([]byte(appID + "\x00" + command + "\x00" + body))
	return hex.EncodeToString(sum[:])
}
