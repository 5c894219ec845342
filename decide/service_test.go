package decide

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/internal/testkit"
	"github.com/imedge/imedge/receiver"
)

// closedURL returns an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr + "/decide"
}

// TestDecide_WhatIMReceives drives the real receiver over mutual TLS with a
// real decision service answering in every way the issue lists, and checks
// what IM receives, within its budget, and the audit record.
func TestDecide_WhatIMReceives(t *testing.T) {
	svc := newDecisionService(t)
	r := newRig(t, Options{
		Targets: []Target{
			{Pattern: "Chatbot.OnC2CSignalMessage", URL: closedURL(t)},
			{Pattern: "*", URL: svc.srv.URL + "/decide"},
		},
		Fallbacks: []FallbackRule{{Pattern: "*", Deny: true}},
		Timeout:   time.Second,
		CacheTTL:  -1, // the cases repeat the catalog's examples: each must be a new question
	}, nil)

	for _, tc := range []struct {
		name, command string
		service       func(http.ResponseWriter, *http.Request, []byte)
		want          string       // the reply IM receives
		reason        audit.Reason // the fallback's audit reason; empty for a decision
	}{
		{"allow", "C2C.CallbackBeforeSendMsg",
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","Unlisted":"dropped"}`),
			`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, ""},
		{"deny", "C2C.CallbackBeforeSendMsg",
			reply(`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"spam"}`),
			`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"spam"}`, ""},
		{"deny with a custom code", "Group.CallbackBeforeSendMsg",
			reply(`{"ActionStatus":"OK","ErrorCode":10150,"ErrorInfo":"muted in this group"}`),
			`{"ActionStatus":"OK","ErrorCode":10150,"ErrorInfo":"muted in this group"}`, ""},
		{"MsgBody rewrite", "C2C.CallbackBeforeSendMsg",
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[ {"MsgType":"TIMTextElem","MsgContent":{"Text":"***"}} ]}`),
			`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"***"}}]}`, ""},
		{"partial refusal of invited members", "Group.CallbackBeforeInviteJoinGroup",
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RefusedMembers_Account":["tommy"]}`),
			`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RefusedMembers_Account":["tommy"]}`, ""},
		{"per-target ResultCodes of a friend request", "Sns.CallbackPrevFriendAdd",
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id2","ResultCode":38001,"ResultInfo":"blocked"},{"To_Account":"id1","ResultCode":0}]}`),
			`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id2","ResultCode":38001,"ResultInfo":"blocked"},{"To_Account":"id1","ResultCode":0,"ResultInfo":""}]}`, ""},
		{"garbage", "C2C.CallbackBeforeSendMsg",
			reply(`<html>oops</html>`),
			`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`, audit.DecideBadReply},
		{"a refusal of a member not invited", "Group.CallbackBeforeInviteJoinGroup",
			reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RefusedMembers_Account":["mallory"]}`),
			`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"","RefusedMembers_Account":["jared","tommy"]}`, audit.DecideBadReply},
		{"a 500", "Group.CallbackBeforeCreateGroup",
			status(http.StatusInternalServerError),
			`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`, audit.DecideError},
		{"a 3 s stall", "Sns.CallbackPrevFriendAdd",
			stall(3*time.Second, nil),
			`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id1","ResultCode":38000,"ResultInfo":""},{"To_Account":"id2","ResultCode":38000,"ResultInfo":""}]}`, audit.DecideTimeout},
		{"connection refused", "Chatbot.OnC2CSignalMessage",
			nil,
			`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"","RspData":""}`, audit.DecideError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc.set(tc.service)
			before := len(r.audit.records(t))
			_, body := r.example(t, tc.command)
			a := r.post(t, tc.command, body)
			assert.Equal(t, http.StatusOK, a.status)
			assert.Equal(t, tc.want, a.body)
			assert.Less(t, a.elapsed, imDeadline, "answered within IM's budget")
			recs := r.audit.records(t)
			if tc.reason == "" {
				assert.Len(t, recs, before, "a decision is not audited")
				return
			}
			require.Len(t, recs, before+1, "one audit record per fallback")
			rec := recs[before]
			assert.Equal(t, string(tc.reason), rec["reason"])
			assert.EqualValues(t, http.StatusOK, rec["status"])
			assert.Equal(t, tc.command, rec["command"])
			assert.Contains(t, rec["detail"], "(answered fallback deny)")
		})
	}

	st := r.svc.Stats()
	byName := map[string]CommandStats{}
	for _, c := range st.Commands {
		byName[c.Command] = c
	}
	c2c := byName["C2C.CallbackBeforeSendMsg"]
	assert.Equal(t, map[string]uint64{"allow": 1, "deny": 1, "rewrite": 1, "drop": 0, "partial": 0}, c2c.Decisions)
	assert.Equal(t, map[audit.Reason]uint64{audit.DecideBadReply: 1}, c2c.Fallbacks)
	assert.Equal(t, uint64(4), c2c.Latency.Count)
	assert.Equal(t, uint64(1), byName["Sns.CallbackPrevFriendAdd"].Decisions["partial"])
	assert.Equal(t, map[audit.Reason]uint64{audit.DecideTimeout: 1}, byName["Sns.CallbackPrevFriendAdd"].Fallbacks)
	assert.Equal(t, map[audit.Reason]uint64{audit.DecideError: 1}, byName["Chatbot.OnC2CSignalMessage"].Fallbacks)
	rej := r.h.Stats().Rejected
	assert.Equal(t, []uint64{2, 2, 1}, []uint64{rej[audit.DecideBadReply], rej[audit.DecideError], rej[audit.DecideTimeout]},
		"the receiver counts every fallback by reason too")
}

// TestDecide_TheRequestTheServiceSees: the same body, IM's query without
// its signature, the headers and Standard Webhooks signature of a delivery.
func TestDecide_TheRequestTheServiceSees(t *testing.T) {
	svc := newDecisionService(t)
	r := newRig(t, Options{Targets: []Target{{Pattern: "*", URL: svc.srv.URL + "/decide?tenant=a"}}}, nil)
	_, body := r.example(t, "Group.CallbackBeforeCreateGroup")
	a := r.post(t, "Group.CallbackBeforeCreateGroup", body)
	require.Equal(t, http.StatusOK, a.status)

	got := svc.last()
	assert.Equal(t, "/decide", got.path)
	assert.Equal(t, "tenant=a&SdkAppid="+testAppID+"&CallbackCommand=Group.CallbackBeforeCreateGroup&contenttype=json&ClientIP=127.0.0.1&OptPlatform=iOS", got.query,
		"IM's query, Sign and RequestTime left out, after the URL's own")
	assert.Equal(t, body, got.body, "byte for byte")
	id := got.header.Get(forward.HeaderEventID)
	assert.Len(t, id, 64)
	assert.Equal(t, id, got.header.Get(forward.HeaderWebhookID))
	assert.Equal(t, testAppID, got.header.Get(forward.HeaderSdkAppID))
	assert.Equal(t, "Group.CallbackBeforeCreateGroup", got.header.Get(forward.HeaderCommand))
	assert.Equal(t, "127.0.0.1", got.header.Get(forward.HeaderClientIP))
	assert.Equal(t, "iOS", got.header.Get(forward.HeaderOptPlatform))
	assert.Equal(t, "spiffe://tencent.im/callback", got.header.Get(forward.HeaderClientIdentity))
	assert.Len(t, got.header.Get(forward.HeaderClientCertSHA256), 64)
	assert.NotEmpty(t, got.header.Get(forward.HeaderRequestID))
	assert.NotEmpty(t, got.header.Get(forward.HeaderReceivedAt))
	assert.Equal(t, "1", got.header.Get(forward.HeaderAttempt))
	ts, err := strconv.ParseInt(got.header.Get(forward.HeaderWebhookTimestamp), 10, 64)
	require.NoError(t, err)
	assert.Equal(t, forward.Sign([]byte(testSecret), id, ts, body), got.header.Get(forward.HeaderWebhookSignature),
		"signed as a delivery is")
	assert.Equal(t, webhookID, http.CanonicalHeaderKey(forward.HeaderWebhookID))
	assert.Equal(t, webhookTimestamp, http.CanonicalHeaderKey(forward.HeaderWebhookTimestamp))
	assert.Equal(t, webhookSignature, http.CanonicalHeaderKey(forward.HeaderWebhookSignature))

	// A whsec_ secret is decoded as deliveries decode it.
	r2 := newRig(t, Options{Targets: []Target{{Pattern: "*", URL: svc.srv.URL}}, SigningSecret: []byte("whsec_c2VjcmV0")}, nil)
	r2.post(t, "Group.CallbackBeforeCreateGroup", body)
	got = svc.last()
	ts, _ = strconv.ParseInt(got.header.Get(forward.HeaderWebhookTimestamp), 10, 64)
	assert.Equal(t, forward.Sign([]byte("secret"), id, ts, body), got.header.Get(forward.HeaderWebhookSignature))
}

// TestDecide_StalledServiceUnderLoad: with the decision service stalled,
// every answer under load is the fallback and arrives before IM's
// deadline; the circuit opens and later answers no longer wait for the
// budget; once the service is back and the cool-down has passed, one
// trial call closes the circuit and decisions resume.
func TestDecide_StalledServiceUnderLoad(t *testing.T) {
	svc := newDecisionService(t)
	release := make(chan struct{})
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0)) // the breaker's clock: the cool-down passes when the test says
	const timeout = time.Second
	r := newRig(t, Options{
		Targets:   []Target{{Pattern: "*", URL: svc.srv.URL}},
		Fallbacks: []FallbackRule{{Pattern: "*", Deny: true}},
		Timeout:   timeout, BreakerFailures: 5, BreakerCoolDown: 10 * time.Second, Now: clk.Now,
	}, nil)
	deny := `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`

	// IM keeps its connections open: the test's client opens its own
	// (TLS handshakes, slow under -race) before the measured answers.
	const workers, each = 16, 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { r.post(t, "C2C.CallbackBeforeSendMsg", distinct(t, r.cat, 10_000+w)) })
	}
	wg.Wait()
	calls0 := svc.calls.Load()
	svc.set(stall(time.Minute, release))

	var mu sync.Mutex
	var answers []answer
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a := r.post(t, "C2C.CallbackBeforeSendMsg", distinct(t, r.cat, w*100+i))
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, answers, workers*each)
	for _, a := range answers {
		assert.Equal(t, http.StatusOK, a.status)
		assert.Equal(t, deny, a.body, "the fallback, never a pass-through")
		assert.Less(t, a.elapsed, imDeadline, "before IM's deadline")
	}
	ts := r.svc.Stats().Targets[0]
	assert.Equal(t, "open", ts.State)
	assert.Equal(t, uint64(1), ts.Opens)
	assert.Positive(t, ts.Rejected, "once open, callbacks got the fallback without a call")
	assert.Less(t, svc.calls.Load()-calls0, int64(workers*each), "not every callback waited for the service")

	// Open: the next answers do not wait for the budget, nor call.
	calls := svc.calls.Load()
	for i := range 5 {
		a := r.post(t, "C2C.CallbackBeforeSendMsg", distinct(t, r.cat, 1000+i))
		assert.Equal(t, deny, a.body)
		assert.Less(t, a.elapsed, timeout, "answered without waiting out the budget")
	}
	assert.Equal(t, calls, svc.calls.Load(), "no call while the circuit is open")
	recs := r.audit.records(t)
	require.Len(t, recs, workers*each+5, "one audit record per fallback")
	assert.Contains(t, recs[len(recs)-1]["detail"], "circuit open")

	// The service comes back; after the cool-down one trial closes the
	// circuit and decisions resume.
	close(release)
	svc.set(reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"back"}`))
	clk.Advance(10 * time.Second)
	a := r.post(t, "C2C.CallbackBeforeSendMsg", distinct(t, r.cat, 2000))
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"back"}`, a.body, "the trial call's decision")
	assert.Equal(t, "closed", r.svc.Stats().Targets[0].State)
	a = r.post(t, "C2C.CallbackBeforeSendMsg", distinct(t, r.cat, 2001))
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"back"}`, a.body)
}

// TestDecide_SameQuestionSameAnswer: an identical callback within the
// window gets the remembered decision without a call, one after it a new
// call; identical callbacks at once share one call; fallbacks are not
// remembered.
func TestDecide_SameQuestionSameAnswer(t *testing.T) {
	svc := newDecisionService(t)
	clk := testkit.NewClock(time.Now())
	r := newRig(t, Options{Targets: []Target{{Pattern: "*", URL: svc.srv.URL}}, CacheTTL: time.Minute, Now: clk.Now}, nil)
	svc.set(reply(`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"first"}`))
	body := distinct(t, r.cat, 1)

	first := r.post(t, "C2C.CallbackBeforeSendMsg", body)
	svc.set(reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"second"}`))
	again := r.post(t, "C2C.CallbackBeforeSendMsg", body)
	assert.Equal(t, first.body, again.body, "the remembered decision")
	assert.Equal(t, int64(1), svc.calls.Load())
	other := r.postFrom(t, "C2C.CallbackBeforeSendMsg", body, "10.1.2.3")
	assert.Contains(t, other.body, "second", "another ClientIP is another question")

	clk.Advance(time.Minute)
	later := r.post(t, "C2C.CallbackBeforeSendMsg", body)
	assert.Contains(t, later.body, "second", "a decision goes stale after the window")
	assert.Equal(t, int64(3), svc.calls.Load())

	// Two at once: one call, both get its answer.
	release := make(chan struct{})
	svc.set(func(w http.ResponseWriter, r *http.Request, b []byte) {
		<-release
		reply(`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"together"}`)(w, r, b)
	})
	body2 := distinct(t, r.cat, 2)
	var wg sync.WaitGroup
	got := make([]answer, 2)
	for i := range got {
		wg.Go(func() { got[i] = r.post(t, "C2C.CallbackBeforeSendMsg", body2) })
	}
	require.Eventually(t, func() bool { return r.svc.Stats().Cache.Joined == 1 }, 20*time.Second, 5*time.Millisecond)
	close(release)
	wg.Wait()
	assert.Equal(t, int64(4), svc.calls.Load())
	for _, a := range got {
		assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"together"}`, a.body)
	}

	// A fallback is not remembered: the next identical callback asks.
	svc.set(status(http.StatusBadGateway))
	body3 := distinct(t, r.cat, 3)
	r.post(t, "C2C.CallbackBeforeSendMsg", body3)
	svc.set(reply(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"recovered"}`))
	a := r.post(t, "C2C.CallbackBeforeSendMsg", body3)
	assert.Contains(t, a.body, "recovered")

	var c2c CommandStats
	for _, c := range r.svc.Stats().Commands {
		if c.Command == "C2C.CallbackBeforeSendMsg" {
			c2c = c
		}
	}
	assert.Equal(t, uint64(1), c2c.Cached)
	assert.Equal(t, uint64(1), c2c.Joined)
}

// TestDecide_RefusalsAreFallbacks: a before-callback the receiver refuses
// for anything but authentication is answered 200 with its fallback and
// audited with the original reason; an authentication failure is refused
// as before.
func TestDecide_RefusalsAreFallbacks(t *testing.T) {
	svc := newDecisionService(t)
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	lim, err := receiver.NewClientLimiter(receiver.LimiterOptions{Rate: 1, Burst: 1, Now: clk.Now})
	require.NoError(t, err)
	r := newRig(t, Options{
		Targets:   []Target{{Pattern: "*", URL: svc.srv.URL}},
		Fallbacks: []FallbackRule{{Pattern: "Group.*", Deny: true, Code: 10100}},
	}, func(o *receiver.Options) { o.DecideLimiter = lim })
	cmd, body := r.example(t, "Group.CallbackBeforeInviteJoinGroup")
	denyAll := string(cmd.Fallback(body, true, 10100))
	require.Contains(t, denyAll, `"RefusedMembers_Account":["jared","tommy"]`)

	a := r.post(t, cmd.Name, body)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, a.body, "within the decision rate")
	a = r.post(t, cmd.Name, body)
	assert.Equal(t, http.StatusOK, a.status, "over the decision rate: not a 429")
	assert.Equal(t, denyAll, a.body, "the fallback, naming the request's members")
	rec := r.audit.records(t)[0]
	assert.Equal(t, string(audit.RateLimited), rec["reason"])
	assert.EqualValues(t, http.StatusOK, rec["status"])
	assert.Equal(t, "ClientIP over its decision rate (answered fallback deny:10100)", rec["detail"])
	assert.NotEmpty(t, rec["body_sha256"], "the body was read for the fallback")

	bad := []byte(`{"CallbackCommand":"Group.CallbackBeforeInviteJoinGroup","GroupId":7}`)
	a = r.postFrom(t, cmd.Name, bad, "10.0.0.9")
	assert.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":10100,"ErrorInfo":""}`, a.body,
		"a body that fails validation gets the fallback too (without a member list it cannot read)")
	rec = r.audit.records(t)[1]
	assert.Equal(t, string(audit.BadField), rec["reason"])
	assert.EqualValues(t, http.StatusOK, rec["status"])

	// An authentication failure is refused: the caller is not IM.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		r.url+"/?SdkAppid="+testAppID+"&CallbackCommand="+cmd.Name+"&contenttype=json&ClientIP=10.0.0.8&Sign=00&RequestTime=1", nil)
	require.NoError(t, err)
	resp, err := r.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	var invite CommandStats
	for _, c := range r.svc.Stats().Commands {
		if c.Command == cmd.Name {
			invite = c
		}
	}
	assert.Equal(t, map[audit.Reason]uint64{audit.RateLimited: 1, audit.BadField: 1}, invite.Fallbacks)
	assert.Equal(t, int64(1), svc.calls.Load(), "refused callbacks never reach the service")
}

// TestDecide_ObserveMode: a before-callback without a decision service is
// answered with its fallback at once and, when a route names it, handed to
// the Sink afterwards; a Sink failure does not change the answer.
func TestDecide_ObserveMode(t *testing.T) {
	svc := newDecisionService(t)
	r := newRig(t, Options{
		Targets:   []Target{{Pattern: "Group.*", URL: svc.srv.URL}},
		Fallbacks: []FallbackRule{{Pattern: "C2C.*", Deny: true, Code: 120002}},
		Observe:   func(command string) bool { return command == "C2C.CallbackBeforeSendMsg" },
	}, nil)
	cmd, body := r.example(t, "C2C.CallbackBeforeSendMsg")
	a := r.post(t, cmd.Name, body)
	assert.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":120002,"ErrorInfo":""}`, a.body, "the configured fallback")
	assert.Zero(t, svc.calls.Load())
	assert.Empty(t, r.audit.records(t), "observe mode is not a failure")
	evs := r.sink.got()
	require.Len(t, evs, 1)
	assert.True(t, evs[0].Observe)
	assert.Equal(t, body, evs[0].Body)
	assert.Equal(t, cmd.Name, evs[0].Command)

	r.sink.mu.Lock()
	r.sink.err = errors.New("outbox full")
	r.sink.mu.Unlock()
	a = r.post(t, cmd.Name, distinct(t, r.cat, 5))
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":120002,"ErrorInfo":""}`, a.body, "a Sink error changes nothing")
	st := r.h.Stats()
	assert.Equal(t, uint64(1), st.Observed)
	assert.Equal(t, uint64(1), st.ObserveFailed)
	for _, c := range r.svc.Stats().Commands {
		if c.Command == cmd.Name {
			assert.Equal(t, uint64(2), c.Observed)
			assert.Empty(t, c.Target)
		}
	}

	// A command no route names is answered the same way, and not stored.
	other, body := r.example(t, "OfficialAccount.CallbackBeforeSendMsg")
	a = r.post(t, other.Name, body)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, a.body, "allow: no fallback rule names it")
	assert.Len(t, r.sink.got(), 1)
	assert.Equal(t, uint64(1), r.h.Stats().Observed)
}

// TestDecide_HTTPSService: an https decision service that requires a
// client certificate is reached with the delivery's CA bundle and client
// certificate, over HTTP/2 when it offers it.
func TestDecide_HTTPSService(t *testing.T) {
	ca := certstest.NewCA(t)
	client := ca.WriteFiles(t, ca.Issue(t, certstest.Client("spiffe://imedge/decide")))
	var mu sync.Mutex
	var proto, peer, query string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proto, query = r.Proto, r.URL.RawQuery
		if len(r.TLS.PeerCertificates) > 0 {
			peer = r.TLS.PeerCertificates[0].URIs[0].String()
		}
		mu.Unlock()
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"over https"}`)
	}))
	srv.TLS = certstest.MutualServerTLS(t, ca, "127.0.0.1")
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	r := newRig(t, Options{
		Targets: []Target{{Pattern: "*", URL: srv.URL + "/decide?k=v"}},
		CAFile:  client.CA, CertFile: client.Cert, KeyFile: client.Key,
	}, nil)
	_, body := r.example(t, "Group.CallbackBeforeCreateGroup")
	a := r.post(t, "Group.CallbackBeforeCreateGroup", body)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"over https"}`, a.body)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "HTTP/2.0", proto)
	assert.Equal(t, "spiffe://imedge/decide", peer)
	assert.True(t, strings.HasPrefix(query, "k=v&SdkAppid="), query)
	assert.NotContains(t, query, "Sign=")

	// Without the CA bundle the service's certificate is not trusted: a
	// decide_error, answered with the fallback.
	r2 := newRig(t, Options{Targets: []Target{{Pattern: "*", URL: srv.URL}}}, nil)
	a = r2.post(t, "Group.CallbackBeforeCreateGroup", body)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, a.body)
	assert.Equal(t, string(audit.DecideError), r2.audit.records(t)[0]["reason"])
}

// TestDecide_CircuitLogs: a circuit opening is one Warn line, however many
// trial calls fail afterwards; closing is one Info line.
func TestDecide_CircuitLogs(t *testing.T) {
	svc := newDecisionService(t)
	svc.set(status(http.StatusServiceUnavailable))
	var logs auditBuf
	clk := testkit.NewClock(time.Unix(1_700_000_000, 0))
	s, err := New(Options{Targets: []Target{{Pattern: "*", URL: svc.srv.URL}}, BreakerFailures: 2, BreakerCoolDown: time.Second,
		Now: clk.Now, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	require.NoError(t, err)
	defer s.Close()
	cmd, _ := s.o.Catalog.Lookup("Group.CallbackBeforeCreateGroup")
	ask := func(n int) receiver.Decision {
		body := []byte(strings.Replace(string(cmd.Example()), `"leckie"`, `"u`+strconv.Itoa(n)+`"`, 1))
		return s.Decide(t.Context(), receiver.Event{ID: strconv.Itoa(n), Command: cmd.Name, Body: body})
	}
	for i := range 6 {
		assert.Equal(t, audit.DecideError, ask(i).Reason, "call %d: a call, failing (the trial after each cool-down)", i)
		clk.Advance(time.Second) // every later call is a trial, and fails
	}
	svc.set(nil)
	assert.Empty(t, ask(7).Reason, "a trial succeeds")
	text := logs.String()
	assert.Equal(t, 1, strings.Count(text, "circuit open, callbacks answered with their fallback"), text)
	assert.Equal(t, 1, strings.Count(text, "circuit closed"))
	assert.Equal(t, uint64(1), s.Stats().Targets[0].Opens)
	assert.Equal(t, int64(7), svc.calls.Load(), "every call reached the service")
}
