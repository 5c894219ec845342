package admin_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/certs"
)

func TestNew_RequiresTLSAndOutbox(t *testing.T) {
	_, err := admin.New(admin.Options{})
	require.ErrorIs(t, err, admin.ErrInvalidOptions)
}

func TestServer_HealthReadyStatus(t *testing.T) {
	f := newFixture(t, fixtureOpts{})

	code, b := f.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", string(b))

	code, rd := f.getJSON(t, "/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, true, rd["ready"])
	assert.Equal(t, map[string]string{"tls": "", "outbox": "", "draining": ""}, checks(t, rd))

	require.Equal(t, http.StatusOK, f.callback(t, f.callbackClient(t, &f.client), appID, "10.0.0.1", body))
	var st map[string]any
	require.Eventually(t, func() bool {
		code, st = f.getJSON(t, "/status")
		return code == http.StatusOK && st["outbox"].(map[string]any)["pending"] == 0.0
	}, 10*time.Second, 20*time.Millisecond, "the event is delivered and leaves the outbox")
	assert.Equal(t, 1, f.delivered())
	assert.Equal(t, "imedge test", st["version"])
	assert.Equal(t, true, st["ready"])
	assert.Equal(t, false, st["draining"])
	assert.Greater(t, st["uptime_seconds"], 0.0)
	tlsSt := st["tls"].(map[string]any)
	assert.Equal(t, certs.CertFingerprint(f.server.Cert), tlsSt["server_cert"].(map[string]any)["sha256"],
		"rotation scripts read .tls.server_cert.sha256")
	assert.Len(t, tlsSt["client_cas"], 1)
	assert.Equal(t, "require", tlsSt["client_auth"])
	ob := st["outbox"].(map[string]any)
	assert.Equal(t, 0.0, ob["pending"])
	assert.Equal(t, 0.0, ob["dead_letters"])
	assert.Nil(t, ob["oldest_pending"])
	assert.Equal(t, 1.0, st["callbacks"].(map[string]any)["accepted"])
	delivery := st["delivery"].([]any)
	require.Len(t, delivery, 1, "one destination")
	assert.Equal(t, "default", delivery[0].(map[string]any)["destination"])
	assert.Equal(t, 1.0, delivery[0].(map[string]any)["successes"])
	dests := ob["destinations"].([]any)
	require.Len(t, dests, 1)
	assert.Equal(t, "default", dests[0].(map[string]any)["name"])
	assert.Equal(t, 1.0, st["dedupe"].(map[string]any)["keys"])
	assert.Equal(t, 1.0, st["rate_limiter"].(map[string]any)["keys"])
	assert.Contains(t, st["audit"], "by_reason")
}

func TestServer_Readyz_Draining(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.adm.SetDraining()
	code, rd := f.getJSON(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, false, rd["ready"])
	c := checks(t, rd)
	assert.NotEmpty(t, c["draining"])
	assert.Empty(t, c["tls"])
	assert.Empty(t, c["outbox"])

	code, _ = f.get(t, "/healthz")
	assert.Equal(t, http.StatusOK, code, "a draining process is still alive")
	fams := f.scrape(t)
	assert.Equal(t, 1.0, value(t, fams, "imedge_draining"))
	assert.Equal(t, 0.0, value(t, fams, "imedge_ready"))
}

// Root ignores permissions, so the spool directory is made unusable by
// moving it away and putting a file in its place; the open store then
// writes to a file no restart would find.
func TestServer_Readyz_OutboxUnwritable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	require.NoError(t, os.Rename(f.spool, f.spool+".moved"))
	require.NoError(t, os.WriteFile(f.spool, []byte("not a directory"), 0o600))

	code, rd := f.getJSON(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	c := checks(t, rd)
	assert.Contains(t, c["outbox"], "not writable")
	assert.Empty(t, c["tls"])
	assert.Empty(t, c["draining"])

	require.NoError(t, os.Remove(f.spool))
	require.NoError(t, os.Rename(f.spool+".moved", f.spool))
	code, _ = f.getJSON(t, "/readyz")
	assert.Equal(t, http.StatusOK, code, "ready again once the directory is back")
}

func TestServer_Readyz_ExpiredServerCertificate(t *testing.T) {
	f := newFixture(t, fixtureOpts{now: func() time.Time { return time.Now().Add(48 * time.Hour) }})
	code, rd := f.getJSON(t, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, checks(t, rd)["tls"], "expired")
	fams := f.scrape(t)
	assert.Less(t, value(t, fams, "imedge_certificate_expiry_seconds",
		"role", "server", "subject", f.server.Cert.Subject.String(), "sha256", certs.CertFingerprint(f.server.Cert)), 0.0)
}

func TestServer_Metrics_MoveWithCallbacks(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	good := f.callbackClient(t, &f.client)

	before := f.scrape(t)
	for _, reason := range []string{"bad_sdkappid", "rate_limited", "bad_json"} {
		assert.Equal(t, 0.0, value(t, before, "imedge_requests_rejected_total", "reason", reason), "reasons start at 0")
	}
	assert.Equal(t, 0.0, value(t, before, "imedge_tls_handshake_failures_total", "reason", "tls_no_cert"))
	assert.Equal(t, 0.0, value(t, before, "imedge_audit_records_total", "reason", "bad_sign"))
	assert.Equal(t, 0.0, value(t, before, "imedge_requests_total", "outcome", "accepted"))
	assert.Equal(t, 1.0, value(t, before, "imedge_ready"))
	assert.Equal(t, 1.0, value(t, before, "imedge_build_info", "version", "imedge test", "goversion", runtimeVersion()))

	// Two accepted, one duplicate, one refused for its SdkAppid, one over
	// the rate limit, one refused at the handshake.
	assert.Equal(t, http.StatusOK, f.callback(t, good, appID, "10.0.0.1", body))
	assert.Equal(t, http.StatusOK, f.callback(t, good, appID, "10.0.0.2", `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"c","To_Account":"d"}]}`))
	assert.Equal(t, http.StatusOK, f.callback(t, good, appID, "10.0.0.3", body), "duplicate")
	assert.Equal(t, http.StatusForbidden, f.callback(t, good, "1400000999", "10.0.0.4", body))
	for range 2 {
		f.callback(t, good, appID, "10.0.0.5", `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[]}`)
	}
	assert.Equal(t, http.StatusTooManyRequests, f.callback(t, good, appID, "10.0.0.5", body))
	_, err := f.callbackClient(t, nil).Post(f.edge.URL+"/", "application/json", nil)
	require.Error(t, err, "no client certificate: refused at the handshake")
	var after map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		after = f.scrape(t)
		v, ok := sample(after, "imedge_outbox_pending_events", "destination", "default")
		d, _ := sample(after, "imedge_delivery_duration_seconds", "destination", "default", "result", "success")
		return f.delivered() == 2 && ok && v == 0 && d == 2
	}, 10*time.Second, 20*time.Millisecond, "both events are delivered, timed and leave the outbox")
	assert.Equal(t, 2.0, value(t, after, "imedge_requests_total", "outcome", "accepted"))
	assert.Equal(t, 1.0, value(t, after, "imedge_requests_total", "outcome", "duplicate"))
	assert.Equal(t, 2.0, value(t, after, "imedge_requests_total", "outcome", "empty"))
	assert.Equal(t, 2.0, value(t, after, "imedge_requests_total", "outcome", "rejected"))
	assert.Equal(t, 0.0, value(t, after, "imedge_requests_in_progress"), "no callback is being served")
	assert.Equal(t, 1.0, value(t, after, "imedge_requests_rejected_total", "reason", "bad_sdkappid"))
	assert.Equal(t, 1.0, value(t, after, "imedge_requests_rejected_total", "reason", "rate_limited"))
	assert.Equal(t, 1.0, value(t, after, "imedge_tls_handshake_failures_total", "reason", "tls_no_cert"))
	assert.Equal(t, 1.0, value(t, after, "imedge_audit_records_total", "reason", "tls_no_cert"))
	assert.Equal(t, 3.0, value(t, after, "imedge_audit_written_total"))
	assert.Equal(t, 1.0, value(t, after, "imedge_dedupe_hits_total"))
	assert.Equal(t, 2.0, value(t, after, "imedge_dedupe_keys"))
	assert.Equal(t, 1.0, value(t, after, "imedge_ratelimit_limited_total"))
	assert.Equal(t, 4.0, value(t, after, "imedge_ratelimit_keys"), "the refused SdkAppid never reached the limiter")
	assert.Equal(t, 2.0, value(t, after, "imedge_delivery_successes_total", "destination", "default"))
	assert.Equal(t, 2.0, value(t, after, "imedge_delivery_attempts_total", "destination", "default"))
	assert.Equal(t, 2.0, value(t, after, "imedge_delivery_duration_seconds", "destination", "default", "result", "success"))
	assert.Equal(t, 0.0, value(t, after, "imedge_outbox_pending_events", "destination", "default"))
	assert.Equal(t, 0.0, value(t, after, "imedge_outbox_oldest_pending_age_seconds", "destination", "default"))
	assert.Equal(t, 0.0, value(t, after, "imedge_outbox_store_failing"))
	absorbed, ok := sample(after, "imedge_outbox_absorbed_total")
	assert.True(t, ok, "imedge_outbox_absorbed_total is exported")
	assert.LessOrEqual(t, absorbed, 2.0, "at most the two delivered events were absorbed")
	assert.Equal(t, 5.0, value(t, after, "imedge_request_duration_seconds", "code", "200"))
	assert.Equal(t, 5.0, value(t, after, "imedge_answer_duration_seconds", "code", "200"))
	assert.Equal(t, 1.0, value(t, after, "imedge_request_duration_seconds", "code", "429"))
	assert.Equal(t, 7.0, sumWhere(after, "imedge_tls_requests_total", "version", "TLS 1.3", "client_cert", "verified"),
		"every request that passed the handshake, by version")
	assert.Equal(t, 0.0, sumWhere(after, "imedge_tls_requests_total", "client_cert", "none"))

	exp := value(t, after, "imedge_certificate_expiry_seconds",
		"role", "server", "subject", f.server.Cert.Subject.String(), "sha256", certs.CertFingerprint(f.server.Cert))
	assert.InDelta(t, time.Until(f.server.Cert.NotAfter).Seconds(), exp, 60)
	assert.Equal(t, 0.0, value(t, after, "imedge_tls_reloads_total", "result", "success"))
	_, ok = sample(after, "imedge_tls_last_reload_success")
	assert.False(t, ok, "no reload yet")
	_, ok = sample(after, "go_goroutines")
	assert.True(t, ok, "Go runtime metrics are exported")
}

func TestServer_Pprof(t *testing.T) {
	off := newFixture(t, fixtureOpts{})
	code, _ := off.get(t, "/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, code, "pprof is off by default")

	on := newFixture(t, fixtureOpts{pprof: true})
	code, b := on.get(t, "/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(b), "goroutine")
	code, _ = on.get(t, "/debug/pprof/goroutine?debug=1")
	assert.Equal(t, http.StatusOK, code)
}

func TestServer_OnlyGETAndKnownPaths(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	code, _ := f.get(t, "/nope")
	assert.Equal(t, http.StatusNotFound, code)
	resp, err := http.Post(f.adminURL+"/readyz", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
}

func TestServer_Serve_StopsWithContext(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.adm.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	assert.Error(t, err, "the listener is closed")
}

// MetricNames lists what a scrape of a fully configured server shows.
func TestMetricNames_MatchWhatIsExported(t *testing.T) {
	names := admin.MetricNames()
	assert.IsIncreasing(t, names)
	for _, n := range names {
		assert.True(t, strings.HasPrefix(n, "imedge_"), n)
	}
	f := newFixture(t, fixtureOpts{})
	require.Equal(t, http.StatusOK, f.callback(t, f.callbackClient(t, &f.client), appID, "10.0.0.1", body))
	require.Eventually(t, func() bool { return f.delivered() == 1 }, 10*time.Second, 10*time.Millisecond)
	for name := range f.scrape(t) {
		if strings.HasPrefix(name, "imedge_") {
			assert.Contains(t, names, name, "a scraped metric is listed")
		}
	}
	for _, n := range []string{"imedge_ready", "imedge_outbox_dead_letters", "imedge_delivery_failures_total",
		"imedge_request_duration_seconds", "imedge_delivery_duration_seconds", "imedge_im_egress_stale", "imedge_crl_next_update_seconds",
		"imedge_decide_fallbacks_total", "imedge_decide_circuit_state", "imedge_decide_duration_seconds"} {
		assert.Contains(t, names, n)
	}
}
