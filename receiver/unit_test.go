package receiver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestNew_ValidatesOptions(t *testing.T) {
	sink := &memSink{}
	for _, tc := range []struct {
		name string
		o    Options
		want error
	}{
		{"no app id", Options{Sink: sink}, ErrNoAppID},
		{"app id not decimal", Options{AppID: "14000x", Sink: sink}, ErrBadAppID},
		{"no sink", Options{AppID: "1"}, ErrNoSink},
		{"relative path", Options{AppID: "1", Sink: sink, Path: "im"}, ErrBadPath},
		{"negative body", Options{AppID: "1", Sink: sink, MaxBody: -1}, ErrNegativeLimit},
		{"negative account", Options{AppID: "1", Sink: sink, MaxAccountBytes: -1}, ErrNegativeLimit},
		{"negative window", Options{AppID: "1", Sink: sink, SignWindow: -time.Second}, ErrNegativeLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.o)
			require.ErrorIs(t, err, tc.want)
			assert.Nil(t, h)
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	h, err := New(Options{AppID: "1", Sink: &memSink{}})
	require.NoError(t, err)
	assert.Equal(t, "/", h.o.Path)
	assert.Equal(t, int64(1<<20), h.o.MaxBody)
	assert.Equal(t, 32, h.o.MaxAccountBytes)
	assert.Equal(t, 60*time.Second, h.o.SignWindow)
	assert.Nil(t, h.o.Token)
}

func TestNew_CopiesToken(t *testing.T) {
	tok := []byte(vectorToken)
	f := newFixture(t, func(o *Options) { o.Token = tok })
	copy(tok, "zzzzzzzz")
	w := f.serve(f.request(q("+Sign="+vectorSign, "+RequestTime="+vectorTime), goodBody))
	assert.Equal(t, http.StatusOK, w.Code, "the handler keeps its own copy of the token")
}

func TestSignDigest_OfficialVector(t *testing.T) {
	sum := signDigest([]byte(vectorToken), vectorTime)
	assert.Equal(t, vectorSign, hex.EncodeToString(sum[:]))
	// A token longer than the stack buffer takes the streaming path.
	long := bytes.Repeat([]byte("k"), 300)
	sum = signDigest(long, vectorTime)
	want := sha256.Sum256(append(append([]byte(nil), long...), vectorTime...))
	assert.Equal(t, want, sum)
}

func TestEventID(t *testing.T) {
	id := EventID(testAppID, CommandFriendDelete, []byte(goodBody))
	assert.Equal(t, eventIDOf(testAppID, CommandFriendDelete, goodBody), id)
	assert.Len(t, id, 64)
	// The separators keep field boundaries apart.
	assert.NotEqual(t, EventID("1", "2x", nil), EventID("12", "x", nil))
	assert.NotEqual(t, EventID(testAppID, CommandFriendDelete, []byte(goodBody)), EventID(testAppID, CommandFriendDelete, []byte(goodBody+" ")))
}

func TestIdentityOf(t *testing.T) {
	ca := certstest.NewCA(t)
	uri := ca.Issue(t, certstest.Client("spiffe://tencent.im/cb"))
	dns := ca.Issue(t, certstest.Client("im.example"))
	cn := ca.Issue(t, certstest.Usage(certs.UsageClient), certstest.CommonName("TencentQQ"))
	bare := ca.Issue(t, certstest.Usage(certs.UsageClient))

	assert.Equal(t, "spiffe://tencent.im/cb", IdentityOf(uri.Cert))
	assert.Equal(t, "im.example", IdentityOf(dns.Cert))
	assert.Equal(t, "TencentQQ", IdentityOf(cn.Cert))
	require.Empty(t, bare.Cert.Subject.CommonName)
	require.Empty(t, bare.Cert.DNSNames)
	assert.Equal(t, "spki:"+certs.Fingerprint(bare.Cert), IdentityOf(bare.Cert))
	assert.Empty(t, IdentityOf(nil))
}

func TestParseQuery_MatchesNetURL(t *testing.T) {
	for _, raw := range []string{
		goodQuery,
		"SdkAppid=1&&&CallbackCommand=a+b&ClientIP=%3A%3A1",
		"sdkappid=1&SDKAPPID=2",
		"SdkAppid",
		"=x&SdkAppid=",
		"RequestId=a&RequestId=b&requestid=c",
		"x=%zz",
		"x=%4",
		"x=1;y=2",
		"Sdk%41ppid=1&SdkAppid=2",
		"CallbackCommandX=1&Callback=2",
	} {
		t.Run(raw, func(t *testing.T) {
			var qq query
			_, ok := parseQuery(raw, &qq)
			checkQueryAgainstNetURL(t, raw, &qq, ok)
		})
	}
}

// checkQueryAgainstNetURL compares parseQuery's outcome with url.ParseQuery.
func checkQueryAgainstNetURL(t *testing.T, raw string, qq *query, ok bool) {
	t.Helper()
	ref, err := url.ParseQuery(raw)
	if err != nil {
		assert.False(t, ok, "url.ParseQuery refused %q: %v", raw, err)
		return
	}
	repeated := false
	for id := range numParams {
		var vals []string
		for k, vs := range ref {
			if equalFoldASCIIString(k, paramName(id)) {
				vals = append(vals, vs...)
			}
		}
		if len(vals) > 1 {
			repeated = true
			continue
		}
		if !ok {
			continue
		}
		got, has := qq.get(id)
		if len(vals) == 0 {
			assert.False(t, has, "%s present", paramName(id))
		} else {
			assert.True(t, has, "%s absent", paramName(id))
			assert.Equal(t, vals[0], got, paramName(id))
		}
	}
	assert.Equal(t, !repeated, ok, "refused iff a known parameter repeats")
}

func TestParseQuery_DoesNotAllocateForPlainValues(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		var qq query
		if _, ok := parseQuery(goodQuery+"&RequestId=abc", &qq); !ok {
			panic("refused")
		}
	})
	assert.Zero(t, allocs)
}

func TestRetryAfter(t *testing.T) {
	assert.Equal(t, "1", retryAfter(0))
	assert.Equal(t, "1", retryAfter(time.Millisecond))
	assert.Equal(t, "1", retryAfter(time.Second))
	assert.Equal(t, "2", retryAfter(time.Second+time.Nanosecond))
	assert.Equal(t, "60", retryAfter(time.Minute))
}

func TestHandler_AuditFieldsAsReceived(t *testing.T) {
	f := newFixture(t, nil)
	w := f.serve(f.request(q("ClientIP=not-an-ip", "+RequestId=im-req-7"), goodBody))
	require.Equal(t, http.StatusBadRequest, w.Code)
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	r := recs[0]
	assert.Equal(t, "not-an-ip", r["client_ip"])
	assert.Equal(t, testAppID, r["sdkappid"])
	assert.Equal(t, CommandFriendDelete, r["command"])
	assert.Equal(t, "im-req-7", r["im_request_id"])
	assert.Equal(t, "192.0.2.1:1234", r["remote_addr"]) // httptest.NewRequest's peer
	assert.Equal(t, certs.CertFingerprint(f.client), r["cert_sha256"])
	assert.Nil(t, r["body_sha256"], "the body was not read yet")
}

func TestHandler_AuditBodyHashOnceRead(t *testing.T) {
	f := newFixture(t, nil)
	body := pairs("a", "")
	w := f.serve(f.request(goodQuery, body))
	require.Equal(t, http.StatusBadRequest, w.Code)
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	sum := sha256.Sum256([]byte(body))
	assert.Equal(t, hex.EncodeToString(sum[:]), recs[0]["body_sha256"])
	assert.EqualValues(t, len(body), recs[0]["body_size"])
	assert.NotContains(t, f.audit.String(), `"From_Account"`, "never the body")
}

func TestHandler_AccessLogOneDebugLine(t *testing.T) {
	var logBuf auditBuf
	f := newFixture(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f.serve(f.request(goodQuery, goodBody))
	f.serve(f.request(q("SdkAppid=9"), goodBody))
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	require.Len(t, lines, 2)
	var ok, bad map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &ok))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &bad))
	assert.Equal(t, "DEBUG", ok["level"])
	assert.EqualValues(t, 200, ok["status"])
	assert.Equal(t, "spiffe://im.test/sender", ok["client_id"])
	assert.EqualValues(t, 403, bad["status"])
	assert.Equal(t, string(audit.BadAppID), bad["reason"])
	assert.NotContains(t, logBuf.String(), "PairList", "no body in the log")
}

func TestHandler_RequestIDs(t *testing.T) {
	f := newFixture(t, nil)
	g := newFixture(t, nil)
	a := f.serve(f.request(goodQuery, goodBody)).Header().Get("X-Request-Id")
	b := f.serve(f.request(goodQuery, goodBody)).Header().Get("X-Request-Id")
	c := g.serve(g.request(goodQuery, goodBody)).Header().Get("X-Request-Id")
	assert.NotEqual(t, a, b)
	assert.NotEqual(t, a, c, "handlers draw different prefixes")
	assert.Equal(t, a[:13], b[:13], "one prefix per handler")
}

// countingReader records whether anything read it.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) { c.reads++; return c.r.Read(p) }
func (c *countingReader) Close() error               { return nil }

func TestHandler_ContentLengthOverCapNotRead(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBody = 16 })
	r := f.request(goodQuery, goodBody)
	cr := &countingReader{r: strings.NewReader(goodBody)}
	r.Body = cr
	w := f.serve(r)
	assert.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	assert.Equal(t, failJSON(audit.BodyTooLarge), w.Body.String())
	assert.Equal(t, "close", w.Header().Get("Connection"))
	assert.Zero(t, cr.reads, "refused on Content-Length alone")
	recs := f.audit.records(t)
	require.Len(t, recs, 1)
	assert.Equal(t, "Content-Length over the cap", recs[0]["detail"])
}
