package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/decide"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

// decideAdmin is an admin server reporting a real decision path: a
// decide.Service calling a real decision service on loopback.
type decideAdmin struct {
	svc      *decide.Service
	adminURL string
	answer   chan string // the decision service's next replies
}

func newDecideAdmin(t *testing.T) *decideAdmin {
	t.Helper()
	ca := certstest.NewCA(t)
	paths := ca.WriteFiles(t, ca.Issue(t, certstest.Server("localhost")))
	src, err := tlsconf.New(t.Context(), tlsconf.Options{CertFile: paths.Cert, KeyFile: paths.Key, ClientCAFile: paths.CA})
	require.NoError(t, err)
	t.Cleanup(src.Close)
	box, err := forward.OpenOutbox(forward.OutboxOptions{Dir: filepath.Join(t.TempDir(), "outbox")})
	require.NoError(t, err)
	t.Cleanup(func() { box.Close() })

	d := &decideAdmin{answer: make(chan string, 16)}
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case a := <-d.answer:
			if a == "500" {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, a)
		default:
			_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
		}
	}))
	t.Cleanup(service.Close)
	d.svc, err = decide.New(decide.Options{
		Targets:         []decide.Target{{Pattern: "C2C.*", URL: "http://user:pw@" + strings.TrimPrefix(service.URL, "http://") + "/decide?key=secret"}},
		BreakerFailures: 1, BreakerCoolDown: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(d.svc.Close)
	h, err := receiver.New(receiver.Options{AppID: appID, Sink: discardSink{}, Decider: d.svc})
	require.NoError(t, err)

	adm, err := admin.New(admin.Options{TLS: src, Outbox: box, Receiver: h, Decide: d.svc, ProbeEvery: -1})
	require.NoError(t, err)
	srv := httptest.NewServer(adm.Handler())
	t.Cleanup(srv.Close)
	d.adminURL = srv.URL
	return d
}

type discardSink struct{}

func (discardSink) Accept(_ context.Context, _ receiver.Event) error { return nil }

func (d *decideAdmin) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(d.adminURL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	return b
}

func (d *decideAdmin) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	b := d.get(t, "/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	require.NoError(t, err, "/metrics parses:\n%s", b)
	return fams
}

// decideOne asks the Service about command's example (made unique by n).
func (d *decideAdmin) decideOne(t *testing.T, command string, n int) receiver.Decision {
	t.Helper()
	cmd, ok := catalog.New().Lookup(command)
	require.True(t, ok)
	ex := cmd.Example()
	body := append(ex[:len(ex)-1], []byte(`,"N":`+strconv.Itoa(n)+`}`)...)
	return d.svc.Decide(t.Context(), receiver.Event{ID: receiver.EventID(appID, command, body), AppID: appID,
		Command: command, ClientIP: "10.0.0.1", Body: body})
}

func TestDecideMetrics(t *testing.T) {
	d := newDecideAdmin(t)
	fams := d.scrape(t)
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_circuit_state", "target", "C2C.*", "state", "closed"))
	assert.Equal(t, 0.0, value(t, fams, "imedge_decide_circuit_state", "target", "C2C.*", "state", "open"))
	assert.Equal(t, 0.0, value(t, fams, "imedge_decide_fallbacks_total", "command", "C2C.CallbackBeforeSendMsg", "reason", "decide_timeout"),
		"every reason of a command with a decision service is exported from the start")
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_observe_mode", "command", "Group.CallbackBeforeSendMsg", "fallback", "allow"))
	_, ok := sample(fams, "imedge_decide_observe_mode", "command", "C2C.CallbackBeforeSendMsg", "fallback", "allow")
	assert.False(t, ok, "a command with a decision service is not in observe mode")

	d.answer <- `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"no"}`
	require.Empty(t, d.decideOne(t, "C2C.CallbackBeforeSendMsg", 1).Reason)
	d.answer <- `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}]}`
	require.Empty(t, d.decideOne(t, "C2C.CallbackBeforeSendMsg", 2).Reason)
	require.Empty(t, d.decideOne(t, "C2C.CallbackBeforeSendMsg", 2).Reason, "remembered")
	d.answer <- "500"
	require.Equal(t, audit.DecideError, d.decideOne(t, "C2C.CallbackBeforeSendMsg", 3).Reason)
	require.Equal(t, audit.DecideTimeout, d.decideOne(t, "C2C.CallbackBeforeSendMsg", 4).Reason, "circuit open")
	d.svc.Fallback("C2C.CallbackBeforeSendMsg", nil, audit.RateLimited)
	require.Empty(t, d.decideOne(t, "Group.CallbackBeforeSendMsg", 5).Reason, "observe mode: the fallback, not a failure")

	fams = d.scrape(t)
	c2c := "C2C.CallbackBeforeSendMsg"
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_decisions_total", "command", c2c, "outcome", "deny"))
	assert.Equal(t, 2.0, value(t, fams, "imedge_decide_decisions_total", "command", c2c, "outcome", "rewrite"))
	assert.Equal(t, 0.0, value(t, fams, "imedge_decide_decisions_total", "command", c2c, "outcome", "allow"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_reused_total", "command", c2c, "source", "cache"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_fallbacks_total", "command", c2c, "reason", "decide_error"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_fallbacks_total", "command", c2c, "reason", "decide_timeout"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_fallbacks_total", "command", c2c, "reason", "rate_limited"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_observed_total", "command", "Group.CallbackBeforeSendMsg"))
	assert.Equal(t, 5.0, value(t, fams, "imedge_decide_duration_seconds", "command", c2c), "one latency per answer of Decide")
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_circuit_state", "target", "C2C.*", "state", "open"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_circuit_opens_total", "target", "C2C.*"))
	assert.Equal(t, 3.0, value(t, fams, "imedge_decide_calls_total", "target", "C2C.*"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_call_failures_total", "target", "C2C.*"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_decide_circuit_rejected_total", "target", "C2C.*"))
	assert.Equal(t, 2.0, value(t, fams, "imedge_decide_cache_entries"))
	assert.Equal(t, 0.0, value(t, fams, "imedge_decide_observe_stored_total"))

	var st struct {
		Decide struct {
			Targets []map[string]any `json:"targets"`
			Observe []string         `json:"observe"`
			Cache   map[string]any   `json:"cache"`
		} `json:"decide"`
	}
	require.NoError(t, json.Unmarshal(d.get(t, "/status"), &st))
	require.Len(t, st.Decide.Targets, 1)
	tg := st.Decide.Targets[0]
	assert.Equal(t, "C2C.*", tg["pattern"])
	assert.Equal(t, "open", tg["state"])
	assert.NotNil(t, tg["opened_at"])
	assert.NotContains(t, tg["url"], "secret", "no credentials nor query in /status")
	assert.NotContains(t, tg["url"], "pw")
	assert.Len(t, st.Decide.Observe, 11, "every before-callback outside C2C.* is in observe mode")
	assert.Equal(t, 1.0, st.Decide.Cache["hits"])
}
