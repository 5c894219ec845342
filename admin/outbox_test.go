package admin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/internal/testkit"
	"github.com/imedge/imedge/tlsconf"
)

// opsFixture is an outbox with two destinations (default and Group.*),
// each delivered by its own dispatcher to a real HTTP sink whose answer the
// test sets, and an admin server with the outbox operations on a plain
// loopback listener (local credential) and on a mutual-TLS one.
type opsFixture struct {
	box      *forward.Outbox
	disps    map[string]*forward.Dispatcher
	adm      *admin.Server
	auditLog *testkit.SyncBuffer
	cred     string
	credFile string
	plainURL string
	mtlsAddr string
	ca       *certstest.CA
	caFile   string
	client   *certs.Issued // an admin client certificate, spiffe://ops/alice

	mu     sync.Mutex
	status int            // the sink's answer; 0 means 204
	got    map[string]int // deliveries per event id
}

type opsOpts struct {
	maxAttempts int           // zero: unlimited
	backoff     time.Duration // zero: 10 ms
	maxEvents   int           // zero: the default
}

func newOpsFixture(t *testing.T, o opsOpts) *opsFixture {
	t.Helper()
	f := &opsFixture{disps: map[string]*forward.Dispatcher{}, auditLog: &testkit.SyncBuffer{}, got: map[string]int{}}
	var err error
	f.box, err = forward.OpenOutbox(forward.OutboxOptions{Dir: filepath.Join(t.TempDir(), "outbox"),
		Destinations: []string{"Group.*"}, MaxEvents: o.maxEvents})
	require.NoError(t, err)

	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		st := f.status
		if st == 0 {
			st = http.StatusNoContent
			f.got[r.Header.Get("X-Imedge-Event-Id")]++
		}
		f.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(sink.Close)
	backoff := o.backoff
	if backoff == 0 {
		backoff = 10 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	var dispatchers []admin.Dispatcher
	for _, dest := range []string{forward.DefaultDestination, "Group.*"} {
		cl, err := forward.NewClient(forward.ClientOptions{URL: sink.URL})
		require.NoError(t, err)
		d, err := forward.NewDispatcher(forward.DispatcherOptions{Outbox: f.box, Destination: dest, Deliverer: cl,
			MaxAttempts: o.maxAttempts, BackoffBase: backoff, BackoffMax: backoff, DrainTimeout: -1})
		require.NoError(t, err)
		f.disps[dest] = d
		dispatchers = append(dispatchers, d)
		wg.Go(func() { _ = d.Run(ctx) })
	}

	f.ca = certstest.NewCA(t)
	srvCert := f.ca.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	f.client = f.ca.Issue(t, certstest.Client("spiffe://ops/alice"))
	paths := f.ca.WriteFiles(t, srvCert)
	f.caFile = paths.CA
	tlsSrc := staticTLS{}
	f.cred = "test-credential-0123456789abcdef0123456789abcdef"
	f.credFile = filepath.Join(t.TempDir(), "admin.credential")
	require.NoError(t, os.WriteFile(f.credFile, []byte(f.cred+"\n"), 0o600))
	aud := audit.New(f.auditLog, audit.Options{Interval: time.Hour, Burst: 1}) // sampling on: actions must bypass it
	f.adm, err = admin.New(admin.Options{TLS: tlsSrc, Outbox: f.box, Dispatchers: dispatchers, Audit: aud, ProbeEvery: -1,
		OutboxAPI: &admin.OutboxAPI{Outbox: f.box, Audit: aud, Credential: f.cred}})
	require.NoError(t, err)

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.plainURL = "http://" + plain.Addr().String()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.mtlsAddr = raw.Addr().String()
	mtls := tls.NewListener(raw, &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{certstest.TLSCertificate(t, srvCert)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: certstest.Pool(f.ca),
	})
	wg.Go(func() { _ = f.adm.Serve(ctx, plain) })
	wg.Go(func() { _ = f.adm.Serve(ctx, mtls) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = f.box.Close()
	})
	return f
}

// staticTLS is a TLS source with nothing loaded (the outbox API does not
// look at it).
type staticTLS struct{}

func (staticTLS) Status() tlsconf.Status { return tlsconf.Status{} }

func (f *opsFixture) setStatus(code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = code
}

func (f *opsFixture) deliveries(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[id]
}

// eventID is a distinct event id for n.
func eventID(n int) string { return fmt.Sprintf("%064x", n) }

// appendEvents stores n events of command (whose family picks the
// destination) and wakes the dispatchers; ids start at first.
func (f *opsFixture) appendEvents(t *testing.T, first, n int, command string) []string {
	t.Helper()
	dest := forward.DefaultDestination
	if strings.HasPrefix(command, "Group.") {
		dest = "Group.*"
	}
	var ids []string
	for i := first; i < first+n; i++ {
		id := eventID(i)
		require.NoError(t, f.box.Append(t.Context(), forward.Event{Destination: dest, ID: id, AppID: "1400000000",
			Command: command, ClientIP: "10.0.0.1", RequestID: fmt.Sprintf("req-%d", i), ReceivedAt: time.Now(),
			Body: []byte(`{"CallbackCommand":"` + command + `","n":` + fmt.Sprint(i) + `}`), BodyJSON: true}))
		ids = append(ids, id)
	}
	f.disps[dest].Notify()
	return ids
}

// stats reads the outbox's counts directly.
func (f *opsFixture) stats(t *testing.T) forward.Stats {
	t.Helper()
	st, err := f.box.Stats()
	require.NoError(t, err)
	return st
}

// localClient calls the plain listener with the credential file.
func (f *opsFixture) localClient(t *testing.T) *admin.Client {
	t.Helper()
	c, err := admin.NewClient(admin.ClientOptions{Addr: f.plainURL, CredentialFile: f.credFile})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// mtlsClient calls the mutual-TLS listener with the client certificate.
func (f *opsFixture) mtlsClient(t *testing.T) *admin.Client {
	t.Helper()
	p := f.ca.WriteFiles(t, f.client)
	c, err := admin.NewClient(admin.ClientOptions{Addr: f.mtlsAddr, CAFile: f.caFile, CertFile: p.Cert, KeyFile: p.Key})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// actions returns the "admin action" records of the audit log.
func (f *opsFixture) actions(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range testkit.JSONLines(t, f.auditLog.String()) {
		if m["msg"] == "admin action" {
			out = append(out, m)
		}
	}
	return out
}

// raw makes a request to the plain listener with the given Authorization
// header ("" for none) and returns the status and the decoded JSON body.
func (f *opsFixture) raw(t *testing.T, method, path, authz, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.plainURL+path, strings.NewReader(body))
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s %s answers JSON: %s", method, path, b)
	return resp.StatusCode, resp.Header, m
}

func TestOutboxAPI_RefusesUnauthenticatedClients(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	f.setStatus(http.StatusBadRequest)
	f.appendEvents(t, 1, 2, "Sns.CallbackFriendDelete")
	require.Eventually(t, func() bool { return f.stats(t).Dead == 2 }, 10*time.Second, 10*time.Millisecond)

	requests := []struct{ method, path, body string }{
		{"GET", "/outbox/stats", ""},
		{"GET", "/outbox/events?state=dead", ""},
		{"GET", "/outbox/events/1", ""},
		{"POST", "/outbox/replay-dead", `{"all":true}`},
		{"POST", "/outbox/purge-dead", `{"all":true}`},
		{"POST", "/outbox/retry", `{"all":true}`},
		{"POST", "/outbox/replay-delivered", `{"all":true}`},
		{"GET", "/outbox/nothing-here", ""},
	}
	for _, rq := range requests {
		for _, authz := range []string{"", "Bearer wrong-credential", "Bearer " + f.cred + "x", "Basic " + f.cred, "Bearer"} {
			code, h, m := f.raw(t, rq.method, rq.path, authz, rq.body)
			assert.Equal(t, http.StatusUnauthorized, code, "%s %s with %q", rq.method, rq.path, authz)
			assert.Contains(t, h.Get("WWW-Authenticate"), "Bearer", "%s %s", rq.method, rq.path)
			assert.NotEmpty(t, m["error"])
			assert.NotContains(t, m, "pending", "nothing of the outbox is revealed")
		}
	}
	assert.Empty(t, f.actions(t), "refused requests are not audited as actions")
	st := f.stats(t)
	assert.Equal(t, 2, st.Dead, "nothing replayed or purged")
	assert.Equal(t, 0, st.Pending)

	code, _, m := f.raw(t, "GET", "/outbox/stats", "Bearer "+f.cred, "")
	assert.Equal(t, http.StatusOK, code, "the right credential passes: %v", m)
	assert.Equal(t, float64(2), m["dead_letters"])

	// Plain HTTP from a peer off loopback never gets in, credential or not
	// (imedge refuses such a listener; this is the second line).
	for _, authz := range []string{"", "Bearer " + f.cred} {
		req := httptest.NewRequest("POST", "/outbox/purge-dead", strings.NewReader(`{"all":true}`))
		req.RemoteAddr = "192.0.2.7:40000"
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		f.adm.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusForbidden, rec.Code, "authorization %q", authz)
	}
	assert.Equal(t, 2, f.stats(t).Dead)
	assert.Empty(t, f.actions(t))

	// The other endpoints stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/status"} {
		resp, err := http.Get(f.plainURL + p)
		require.NoError(t, err)
		resp.Body.Close()
		assert.NotEqual(t, http.StatusUnauthorized, resp.StatusCode, p)
	}
}

func TestOutboxAPI_NoCredentialConfiguredRefusesPlainClients(t *testing.T) {
	box, err := forward.OpenOutbox(forward.OutboxOptions{Dir: filepath.Join(t.TempDir(), "outbox")})
	require.NoError(t, err)
	defer box.Close()
	aud := audit.New(io.Discard, audit.Options{})
	adm, err := admin.New(admin.Options{TLS: staticTLS{}, Outbox: box, OutboxAPI: &admin.OutboxAPI{Outbox: box, Audit: aud}})
	require.NoError(t, err)
	for _, authz := range []string{"", "Bearer ", "Bearer x"} {
		req := httptest.NewRequest("GET", "/outbox/stats", nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("Authorization", authz)
		rec := httptest.NewRecorder()
		adm.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "an empty Credential matches nothing (%q)", authz)
	}
	_, err = admin.New(admin.Options{TLS: staticTLS{}, Outbox: box, OutboxAPI: &admin.OutboxAPI{Outbox: box}})
	require.ErrorIs(t, err, admin.ErrInvalidOptions, "mutations need an audit log")
}

func TestOutboxAPI_StatsListAndShow(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	f.setStatus(http.StatusNotFound)
	t0 := time.Now()
	sns := f.appendEvents(t, 1, 5, "Sns.CallbackFriendDelete")
	grp := f.appendEvents(t, 100, 3, "Group.CallbackAfterSendMsg")
	require.Eventually(t, func() bool { return f.stats(t).Dead == 8 }, 10*time.Second, 10*time.Millisecond)
	c := f.localClient(t)
	ctx := t.Context()

	st, err := c.OutboxStats(ctx)
	require.NoError(t, err)
	assert.Equal(t, 8, st.DeadLetters)
	assert.Equal(t, 0, st.Pending)
	assert.Positive(t, st.DeadLetterBytes)
	require.Len(t, st.Destinations, 2)
	byName := map[string]admin.OutboxDestination{}
	for _, d := range st.Destinations {
		byName[d.Name] = d
	}
	assert.Equal(t, 5, byName["default"].DeadLetters)
	assert.Equal(t, 3, byName["Group.*"].DeadLetters)
	assert.Positive(t, byName["Group.*"].MaxEvents)

	p, err := c.ListEvents(ctx, admin.ListQuery{})
	require.NoError(t, err)
	assert.Empty(t, p.Events, "nothing pending")

	p, err = c.ListEvents(ctx, admin.ListQuery{State: forward.StateDead, Selection: admin.Selection{Command: "Group.*"}})
	require.NoError(t, err)
	require.Len(t, p.Events, 3)
	for i, e := range p.Events {
		assert.Equal(t, grp[i], e.ID)
		assert.Equal(t, "Group.*", e.Destination)
		assert.Equal(t, forward.StateDead, e.State)
		assert.Equal(t, 1, e.Attempts)
		assert.Contains(t, e.LastError, "404")
		assert.False(t, e.DeadAt.IsZero())
		assert.Nil(t, e.Body, "lists carry no bodies")
		assert.Nil(t, e.History)
	}
	p, err = c.ListEvents(ctx, admin.ListQuery{State: forward.StateDead, Selection: admin.Selection{Destination: "default"}})
	require.NoError(t, err)
	assert.Len(t, p.Events, 5)
	p, err = c.ListEvents(ctx, admin.ListQuery{State: forward.StateDead,
		Selection: admin.Selection{Command: "Sns.CallbackFriendDelete", Since: t0.Add(-time.Minute), Until: time.Now().Add(time.Minute)}})
	require.NoError(t, err)
	assert.Len(t, p.Events, 5)
	p, err = c.ListEvents(ctx, admin.ListQuery{State: forward.StateDead, Selection: admin.Selection{Since: time.Now().Add(time.Hour)}})
	require.NoError(t, err)
	assert.Empty(t, p.Events, "nothing accepted in the future")

	// Paging: 3 + 3 + 2, in sequence order, each event once.
	var seen []string
	var after uint64
	for page := 0; ; page++ {
		require.Less(t, page, 5, "paging ends")
		p, err = c.ListEvents(ctx, admin.ListQuery{State: forward.StateDead, Limit: 3, After: after})
		require.NoError(t, err)
		assert.LessOrEqual(t, len(p.Events), 3)
		for _, e := range p.Events {
			seen = append(seen, e.ID)
			assert.Greater(t, e.Seq, after)
		}
		if p.Next == 0 {
			break
		}
		after = p.Next
	}
	assert.ElementsMatch(t, append(append([]string{}, sns...), grp...), seen)
	assert.Len(t, seen, 8)

	ev, err := c.ShowEvent(ctx, grp[1])
	require.NoError(t, err)
	assert.Equal(t, grp[1], ev.ID)
	assert.Equal(t, "req-101", ev.RequestID)
	assert.JSONEq(t, `{"CallbackCommand":"Group.CallbackAfterSendMsg","n":101}`, string(ev.Body))
	require.Len(t, ev.History, 1, "the attempt is in the history")
	assert.Equal(t, http.StatusNotFound, ev.History[0].Status)
	assert.Contains(t, ev.History[0].Error, "404")
	assert.Positive(t, ev.History[0].Duration)
	assert.False(t, ev.History[0].At.IsZero())
	bySeq, err := c.ShowEvent(ctx, fmt.Sprint(ev.Seq))
	require.NoError(t, err)
	assert.Equal(t, ev.ID, bySeq.ID, "a sequence number is a ref too")

	// The wire shape: durations as Go strings, snake_case names.
	code, _, m := f.raw(t, "GET", "/outbox/events/"+grp[1], "Bearer "+f.cred, "")
	require.Equal(t, http.StatusOK, code)
	hist := m["history"].([]any)[0].(map[string]any)
	_, err = time.ParseDuration(hist["duration"].(string))
	assert.NoError(t, err, "duration is a Go duration string: %v", hist["duration"])
	assert.Equal(t, float64(404), hist["status"])
	for _, k := range []string{"seq", "state", "id", "destination", "sdkappid", "command", "client_ip", "accepted_at", "dead_at", "body", "last_error"} {
		assert.Contains(t, m, k)
	}

	_, err = c.ShowEvent(ctx, eventID(9999))
	var ae *admin.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusNotFound, ae.Status)
	assert.Empty(t, f.actions(t), "reads are not audited as actions")
}

func TestOutboxAPI_BadRequests(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	auth := "Bearer " + f.cred
	for _, q := range []string{
		"?stat=dead", "?state=gone", "?limit=0", "?limit=1001", "?limit=x", "?after=-1", "?since=yesterday",
		"?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "?command=Group.*.x", "?command=a%20b",
		"?state=dead&state=pending", "?destination=" + strings.Repeat("d", 300),
	} {
		code, _, m := f.raw(t, "GET", "/outbox/events"+q, auth, "")
		assert.Equal(t, http.StatusBadRequest, code, "GET /outbox/events%s: %v", q, m)
		assert.NotEmpty(t, m["error"])
	}
	code, _, _ := f.raw(t, "GET", "/outbox/events?state=delivered&command=Group.*&limit=1000", auth, "")
	assert.Equal(t, http.StatusOK, code)

	for _, body := range []string{
		"", "{}", `{"all":false}`, `{"all":true,"command":"Group.*"}`, `{"refs":["1"],"all":true}`, `{"comand":"Group.*"}`,
		`{"refs":[""]}`, `{"command":"Group.*"} {"all":true}`, `not json`,
		`{"refs":[` + strings.TrimSuffix(strings.Repeat(`"1",`, admin.MaxRefs+1), ",") + `]}`,
		`{"refs":["` + strings.Repeat("x", 300*1024) + `"]}`,
	} {
		code, _, m := f.raw(t, "POST", "/outbox/purge-dead", auth, body)
		assert.Equal(t, http.StatusBadRequest, code, "body %.60q: %v", body, m)
		assert.NotEmpty(t, m["error"])
	}
	recs := f.actions(t)
	require.Len(t, recs, 11, "every authenticated mutating call is audited, refused ones too")
	for _, r := range recs {
		assert.Equal(t, "outbox.purge-dead", r["action"])
		assert.Equal(t, float64(400), r["status"])
		assert.NotEmpty(t, r["error"])
		assert.Equal(t, float64(0), r["count"])
	}

	code, _, m := f.raw(t, "POST", "/outbox/replay-dead", auth, `{"refs":["`+eventID(1)+`","77"]}`)
	assert.Equal(t, http.StatusNotFound, code, "no ref matched: %v", m)
	assert.ElementsMatch(t, []any{eventID(1), "77"}, m["not_found"])
	code, _, m = f.raw(t, "GET", "/outbox/frobnicate", auth, "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, m["error"], "no outbox operation")
	code, _, _ = f.raw(t, "GET", "/outbox/replay-dead", auth, "")
	assert.Equal(t, http.StatusNotFound, code, "actions are POST only")
}

// Dead letters are replayed (some by ref, the rest by filter) once the
// internal service is fixed; each call is audited with the identity, the
// filter and the count.
func TestOutboxAPI_ReplayDeadIsDeliveredAndAudited(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	f.setStatus(http.StatusUnauthorized)
	sns := f.appendEvents(t, 1, 3, "Sns.CallbackFriendDelete")
	grp := f.appendEvents(t, 100, 2, "Group.CallbackAfterSendMsg")
	require.Eventually(t, func() bool { return f.stats(t).Dead == 5 }, 10*time.Second, 10*time.Millisecond)
	f.setStatus(0)
	c := f.localClient(t)

	res, err := c.Act(t.Context(), admin.ActionReplayDead, admin.Selection{Refs: []string{sns[0], eventID(4242)}})
	require.NoError(t, err, "one ref matched: the call succeeds and names the other")
	assert.Equal(t, 1, res.Count)
	assert.Equal(t, []string{eventID(4242)}, res.NotFound)
	require.Eventually(t, func() bool { return f.deliveries(sns[0]) == 1 }, 10*time.Second, 10*time.Millisecond)

	res, err = c.Act(t.Context(), admin.ActionReplayDead, admin.Selection{Command: "Group.*"})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Count)
	res, err = c.Act(t.Context(), admin.ActionReplayDead, admin.Selection{All: true})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Count, "the rest")
	require.Eventually(t, func() bool {
		for _, id := range append(sns, grp...) {
			if f.deliveries(id) != 1 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 0, f.stats(t).Dead)

	recs := f.actions(t)
	require.Len(t, recs, 3)
	for _, r := range recs {
		assert.Equal(t, "outbox.replay-dead", r["action"])
		assert.Equal(t, "local credential", r["identity"])
		assert.Equal(t, "credential", r["auth"])
		assert.Contains(t, r["remote_addr"], "127.0.0.1:")
		assert.Equal(t, float64(200), r["status"])
	}
	assert.Equal(t, []any{sns[0], eventID(4242)}, recs[0]["refs"])
	assert.Equal(t, float64(1), recs[0]["count"])
	assert.Contains(t, recs[0]["error"], "1 ref(s) not found")
	assert.Equal(t, map[string]any{"command": "Group.*"}, recs[1]["filter"])
	assert.Equal(t, float64(2), recs[1]["count"])
	assert.Equal(t, map[string]any{"all": "true"}, recs[2]["filter"])
}

// The internal service acknowledged events and lost them: the retained
// copies are delivered again on request.
func TestOutboxAPI_ReplayDeliveredArrivesTwice(t *testing.T) {
	f := newOpsFixture(t, opsOpts{})
	ids := f.appendEvents(t, 1, 4, "Sns.CallbackFriendDelete")
	grp := f.appendEvents(t, 100, 1, "Group.CallbackAfterSendMsg")
	require.Eventually(t, func() bool { st := f.stats(t); return st.Retained == 5 && st.Pending == 0 }, 10*time.Second, 10*time.Millisecond)
	c := f.localClient(t)

	p, err := c.ListEvents(t.Context(), admin.ListQuery{State: forward.StateDelivered})
	require.NoError(t, err)
	require.Len(t, p.Events, 5)
	assert.False(t, p.Events[0].DeliveredAt.IsZero())

	res, err := c.Act(t.Context(), admin.ActionReplayDelivered, admin.Selection{Destination: "default"})
	require.NoError(t, err)
	assert.Equal(t, 4, res.Count)
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if f.deliveries(id) != 2 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "each replayed event arrives a second time")
	assert.Equal(t, 1, f.deliveries(grp[0]), "the other destination's event was not selected")
	ev, err := c.ShowEvent(t.Context(), ids[0])
	require.NoError(t, err)
	assert.Len(t, ev.History, 2, "both deliveries are in its history")
}

// A pending event in a long backoff is attempted again at once on retry;
// its attempt count goes on (MaxAttempts still applies).
func TestOutboxAPI_RetryEndsTheBackoff(t *testing.T) {
	f := newOpsFixture(t, opsOpts{backoff: time.Hour})
	f.setStatus(http.StatusServiceUnavailable)
	ids := f.appendEvents(t, 1, 2, "Sns.CallbackFriendDelete")
	c := f.mtlsClient(t)
	require.Eventually(t, func() bool {
		p, err := c.ListEvents(t.Context(), admin.ListQuery{})
		require.NoError(t, err)
		return len(p.Events) == 2 && p.Events[0].Attempts == 1 && p.Events[1].Attempts == 1
	}, 10*time.Second, 10*time.Millisecond)
	ev, err := c.ShowEvent(t.Context(), ids[0])
	require.NoError(t, err)
	assert.True(t, ev.NextAttempt.After(time.Now()), "in its backoff")
	assert.Equal(t, http.StatusServiceUnavailable, ev.History[0].Status)

	f.setStatus(0)
	res, err := c.Act(t.Context(), admin.ActionRetry, admin.Selection{Refs: []string{ids[0]}})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Count)
	require.Eventually(t, func() bool { return f.deliveries(ids[0]) == 1 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 0, f.deliveries(ids[1]), "the other one waits out its backoff")
	// The outbox records the delivery when its applier next commits.
	require.Eventually(t, func() bool {
		ev, err = c.ShowEvent(t.Context(), ids[0])
		require.NoError(t, err)
		return ev.State == forward.StateDelivered
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, ev.History, 2)
	assert.Equal(t, 0, ev.History[1].Status, "the second attempt succeeded")

	recs := f.actions(t)
	require.Len(t, recs, 1)
	assert.Equal(t, "outbox.retry", recs[0]["action"])
	assert.Equal(t, "spiffe://ops/alice", recs[0]["identity"], "the certificate's identity")
	assert.Equal(t, "mtls", recs[0]["auth"])
	assert.Equal(t, certs.CertFingerprint(f.client.Cert), recs[0]["cert_sha256"])
	assert.NotEmpty(t, recs[0]["cert_subject"])
}

func TestOutboxAPI_PurgeDead(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	f.setStatus(http.StatusUnprocessableEntity)
	f.appendEvents(t, 1, 3, "Sns.CallbackFriendDelete")
	grp := f.appendEvents(t, 100, 2, "Group.CallbackAfterSendMsg")
	require.Eventually(t, func() bool { return f.stats(t).Dead == 5 }, 10*time.Second, 10*time.Millisecond)
	c := f.mtlsClient(t)

	res, err := c.Act(t.Context(), admin.ActionPurgeDead, admin.Selection{Refs: []string{grp[0]}})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Count)
	res, err = c.Act(t.Context(), admin.ActionPurgeDead, admin.Selection{Destination: "default", Command: "Sns.*"})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Count)
	st := f.stats(t)
	assert.Equal(t, 1, st.Dead)
	_, err = c.ShowEvent(t.Context(), grp[0])
	var ae *admin.APIError
	require.ErrorAs(t, err, &ae, "a purged event is gone")
	assert.Equal(t, http.StatusNotFound, ae.Status)

	_, err = c.Act(t.Context(), admin.ActionPurgeDead, admin.Selection{})
	require.ErrorAs(t, err, &ae, "an empty selection purges nothing")
	assert.Equal(t, http.StatusBadRequest, ae.Status)
	assert.Equal(t, 1, f.stats(t).Dead)
	res, err = c.Act(t.Context(), admin.ActionPurgeDead, admin.Selection{All: true})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Count)
	assert.Equal(t, 0, f.stats(t).Dead)
	assert.Len(t, f.actions(t), 4)
}

// Retained events of a destination whose share is full stay retained:
// 409, and the answer says why.
func TestOutboxAPI_ReplayDeliveredIntoAFullShareConflicts(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxEvents: 4, backoff: time.Hour}) // two destinations: a share of 2 each
	delivered := f.appendEvents(t, 1, 2, "Sns.CallbackFriendDelete")
	require.Eventually(t, func() bool { return f.stats(t).Retained == 2 }, 10*time.Second, 10*time.Millisecond)
	f.setStatus(http.StatusServiceUnavailable)
	f.appendEvents(t, 10, 2, "Sns.CallbackFriendDelete")
	require.Eventually(t, func() bool { return f.stats(t).Pending == 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 2, f.stats(t).Retained, "pending and retained fit the limits together")

	res, err := f.localClient(t).Act(t.Context(), admin.ActionReplayDelivered, admin.Selection{Refs: delivered})
	var ae *admin.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusConflict, ae.Status)
	assert.Contains(t, ae.Message, "full")
	assert.Equal(t, 0, res.Count)
	assert.Len(t, res.Skipped, 2)
	assert.Equal(t, 2, f.stats(t).Retained)
	recs := f.actions(t)
	require.Len(t, recs, 1)
	assert.Equal(t, float64(409), recs[0]["status"])
}

func TestClient_Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	c, err := admin.NewClient(admin.ClientOptions{Addr: addr, CredentialFile: "/nonexistent"})
	require.NoError(t, err)
	defer c.Close()
	require.ErrorIs(t, c.Ping(t.Context()), admin.ErrUnreachable)
	_, err = c.OutboxStats(t.Context())
	require.ErrorIs(t, err, admin.ErrNoCredential, "the credential is read before any request")
}

// The local credential goes to loopback addresses only, and a missing file
// is said to be missing; mutual TLS sends none.
func TestClient_CredentialRules(t *testing.T) {
	f := newOpsFixture(t, opsOpts{})
	c, err := admin.NewClient(admin.ClientOptions{Addr: "192.0.2.1:9443", CredentialFile: f.credFile, Timeout: time.Second})
	require.NoError(t, err)
	_, err = c.OutboxStats(t.Context())
	require.ErrorIs(t, err, admin.ErrNoCredential)
	assert.Contains(t, err.Error(), "loopback")

	c, err = admin.NewClient(admin.ClientOptions{Addr: f.plainURL, CredentialFile: filepath.Join(t.TempDir(), "missing")})
	require.NoError(t, err)
	require.NoError(t, c.Ping(t.Context()), "health needs no credential")
	_, err = c.OutboxStats(t.Context())
	require.ErrorIs(t, err, admin.ErrNoCredential)

	// A credential file from a previous start is refused.
	stale := filepath.Join(t.TempDir(), "stale")
	require.NoError(t, os.WriteFile(stale, []byte("an-old-credential"), 0o600))
	c, err = admin.NewClient(admin.ClientOptions{Addr: f.plainURL, CredentialFile: stale})
	require.NoError(t, err)
	_, err = c.OutboxStats(t.Context())
	var ae *admin.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnauthorized, ae.Status)

	for _, o := range []admin.ClientOptions{
		{Addr: "no-port"},
		{Addr: f.mtlsAddr, CertFile: "c.pem"},
		{Addr: f.mtlsAddr, CertFile: "c.pem", KeyFile: "k.pem"},
	} {
		_, err := admin.NewClient(o)
		assert.ErrorIs(t, err, admin.ErrInvalidOptions, "%+v", o)
	}

	// Without a client certificate the mutual-TLS listener refuses the
	// handshake.
	noCert, err := admin.NewClient(admin.ClientOptions{Addr: f.mtlsAddr, CAFile: f.caFile, CredentialFile: f.credFile})
	require.NoError(t, err)
	err = noCert.Ping(t.Context())
	require.Error(t, err)
	assert.NotErrorIs(t, err, admin.ErrUnreachable, "a refused handshake is an answer, not an absent listener")
}

// Local runs the same operations without HTTP, with the same answers.
func TestLocal_SameAnswersAsTheAPI(t *testing.T) {
	f := newOpsFixture(t, opsOpts{maxAttempts: 1})
	f.setStatus(http.StatusBadRequest)
	f.appendEvents(t, 1, 3, "Sns.CallbackFriendDelete")
	require.Eventually(t, func() bool { return f.stats(t).Dead == 3 }, 10*time.Second, 10*time.Millisecond)
	var buf [2]bytes.Buffer
	for i, op := range []admin.Operator{admin.Local{Outbox: f.box}, f.localClient(t)} {
		p, err := op.ListEvents(t.Context(), admin.ListQuery{State: forward.StateDead, Limit: 2})
		require.NoError(t, err)
		ev, err := op.ShowEvent(t.Context(), eventID(2))
		require.NoError(t, err)
		require.NoError(t, json.NewEncoder(&buf[i]).Encode([]any{p, ev}))
		_, err = op.ListEvents(t.Context(), admin.ListQuery{Limit: admin.MaxListLimit + 1})
		assert.Error(t, err)
	}
	assert.JSONEq(t, buf[0].String(), buf[1].String())
	_, err := admin.Local{Outbox: f.box}.Act(t.Context(), admin.ActionPurgeDead, admin.Selection{})
	require.ErrorIs(t, err, admin.ErrBadRequest)
}
