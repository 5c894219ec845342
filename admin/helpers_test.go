package admin_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/tlsconf"
)

const (
	appID = "1400000000"
	body  = `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"a","To_Account":"b"}]}`
)

// fixture is a receiver wired like imedge serve wires it, from real parts:
// TLS material from files, a bbolt outbox in a temporary directory, the
// dedupe set, the rate limiter, the audit log, a dispatcher delivering to a
// real HTTP sink, and the admin server listening on loopback.
type fixture struct {
	ca       *certstest.CA
	server   *certs.Issued
	client   tls.Certificate
	spool    string
	box      *forward.Outbox
	adm      *admin.Server
	edge     *httptest.Server // the instrumented callback handler over mutual TLS
	adminURL string
	sink     *httptest.Server
	mu       sync.Mutex
	sinkGot  int
}

type fixtureOpts struct {
	pprof bool
	now   func() time.Time
}

// outboxSink adapts the outbox to receiver.Sink, as cmd/imedge does.
type outboxSink struct {
	box  *forward.Outbox
	disp *forward.Dispatcher
}

func (s outboxSink) Accept(ctx context.Context, ev receiver.Event) error {
	err := s.box.Append(ctx, forward.Event{ID: ev.ID, AppID: ev.AppID, Command: ev.Command, ClientIP: ev.ClientIP,
		RequestID: ev.RequestID, ReceivedAt: ev.ReceivedAt, Body: ev.Body})
	if errors.Is(err, forward.ErrFull) {
		return errors.Join(receiver.ErrSinkFull, err)
	}
	if err == nil {
		s.disp.Notify()
	}
	return err
}

func newFixture(t testing.TB, fo fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{ca: certstest.NewCA(t)}
	f.server = f.ca.Issue(t, certstest.Server("localhost", "127.0.0.1"))
	paths := f.ca.WriteFiles(t, f.server)
	f.client = certstest.TLSCertificate(t, f.ca.Issue(t, certstest.Client("spiffe://tencent-im/callback")))

	aud := audit.New(io.Discard, audit.Options{})
	src, err := tlsconf.New(t.Context(), tlsconf.Options{CertFile: paths.Cert, KeyFile: paths.Key, ClientCAFile: paths.CA, Audit: aud})
	require.NoError(t, err)
	t.Cleanup(src.Close)

	f.spool = filepath.Join(t.TempDir(), "outbox")
	f.box, err = forward.OpenOutbox(forward.OutboxOptions{Dir: f.spool})
	require.NoError(t, err)

	f.sink = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		f.sinkGot++
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(f.sink.Close)
	client, err := forward.NewClient(forward.ClientOptions{URL: f.sink.URL})
	require.NoError(t, err)
	timer := admin.NewDeliveryHistogram()
	disp, err := forward.NewDispatcher(forward.DispatcherOptions{Outbox: f.box, Deliverer: client, OnAttempt: timer.Observe})
	require.NoError(t, err)

	seen, err := dedupe.New(dedupe.Options{Size: 1000, TTL: time.Minute})
	require.NoError(t, err)
	lim, err := receiver.NewClientLimiter(receiver.LimiterOptions{Rate: 1, Burst: 2})
	require.NoError(t, err)
	h, err := receiver.New(receiver.Options{AppID: appID, RequireClientCert: true, Sink: outboxSink{f.box, disp},
		Seen: seen, Limiter: lim, Audit: aud})
	require.NoError(t, err)

	f.adm, err = admin.New(admin.Options{
		Version: "imedge test", TLS: src, Outbox: f.box, Dispatchers: []admin.Dispatcher{disp}, Receiver: h, Dedupe: seen,
		Limiter: lim, Audit: aud, Delivery: timer, Pprof: fo.pprof, ProbeEvery: -1, Now: fo.now,
	})
	require.NoError(t, err)

	f.edge = httptest.NewUnstartedServer(f.adm.Instrument(h))
	f.edge.TLS = src.ServerConfig()
	f.edge.StartTLS()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.adminURL = "http://" + ln.Addr().String()

	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	wg.Go(func() { _ = disp.Run(ctx) })
	wg.Go(func() { _ = f.adm.Serve(ctx, ln) })
	t.Cleanup(func() {
		f.edge.Close()
		cancel()
		wg.Wait()
		_ = f.box.Close()
	})
	return f
}

// callbackClient trusts the test CA and presents cert when it is not nil.
func (f *fixture) callbackClient(t *testing.T, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: certstest.Pool(f.ca), ServerName: "localhost"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// callback posts one callback and returns the status code.
func (f *fixture) callback(t *testing.T, c *http.Client, sdkappid, clientIP, b string) int {
	t.Helper()
	u := f.edge.URL + "/?SdkAppid=" + sdkappid + "&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=" + clientIP
	resp, err := c.Post(u, "application/json", strings.NewReader(b))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (f *fixture) delivered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sinkGot
}

// get fetches an admin path and returns the status and body.
func (f *fixture) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(f.adminURL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (f *fixture) getJSON(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	code, b := f.get(t, path)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "%s answers JSON: %s", path, b)
	return code, m
}

// checks maps each readiness check's name to its error ("" when OK).
func checks(t *testing.T, m map[string]any) map[string]string {
	t.Helper()
	list, ok := m["checks"].([]any)
	require.True(t, ok, "checks is a list: %v", m)
	out := map[string]string{}
	for _, c := range list {
		cm := c.(map[string]any)
		errText, _ := cm["error"].(string)
		if cm["ok"] == true {
			require.Empty(t, errText)
		} else {
			require.NotEmpty(t, errText, "a failing check says why")
		}
		out[cm["name"].(string)] = errText
	}
	return out
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, b := f.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code, "%s", b)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	require.NoError(t, err, "/metrics parses:\n%s", b)
	return fams
}

// sample returns the value of the metric name with exactly the given label
// values (a histogram's sample count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// sumWhere adds the values of the metrics of name whose labels include the
// given pairs.
func sumWhere(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	sum := 0.0
	fam, ok := fams[name]
	if !ok {
		return 0
	}
next:
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// value is sample that fails the test when the metric is missing.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(fams, name, labels...)
	require.True(t, ok, "metric %s%v is exported", name, labels)
	return v
}
