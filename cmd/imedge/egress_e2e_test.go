package main

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
)

// fakeIMAPI is IM's REST API for GetIPList over real TLS: it recomputes the
// admin UserSig of every call (independently of package egress) and answers
// with the list the test sets.
type fakeIMAPI struct {
	srv    *httptest.Server
	caFile string
	key    []byte
	list   atomic.Pointer[[]string]
	fail   atomic.Bool // answer 500 instead
	calls  atomic.Int64
	mu     sync.Mutex
	errors []string // what a call got wrong
}

func newFakeIMAPI(t *testing.T, key string) *fakeIMAPI {
	f := &fakeIMAPI{key: []byte(key)}
	ca := certstest.NewCA(t)
	leaf := ca.Issue(t, certstest.Server("127.0.0.1"))
	f.caFile = ca.WriteFiles(t, leaf).CA
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{certstest.TLSCertificate(t, leaf)}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIMAPI) setList(ips ...string) { f.list.Store(&ips) }

func (f *fakeIMAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	q := r.URL.Query()
	if err := f.check(r, q.Get("usersig")); err != "" {
		f.mu.Lock()
		f.errors = append(f.errors, err)
		f.mu.Unlock()
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if f.fail.Load() {
		http.Error(w, "unavailable", http.StatusInternalServerError)
		return
	}
	ips := []string{}
	if l := f.list.Load(); l != nil {
		ips = *l
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", "IPList": ips})
}

// check verifies the request as IM would: POST to GetIPList with the
// documented query, and a UserSig whose HMAC the key reproduces.
func (f *fakeIMAPI) check(r *http.Request, sig string) string {
	q := r.URL.Query()
	if r.Method != http.MethodPost || r.URL.Path != "/v4/ConfigSvc/GetIPList" {
		return "method or path: " + r.Method + " " + r.URL.Path
	}
	if q.Get("sdkappid") != appID || q.Get("identifier") != "administrator" || q.Get("contenttype") != "json" {
		return "query: " + r.URL.RawQuery
	}
	if nt := q.Get("nettype"); nt != "5" && nt != "6" {
		return "nettype " + nt
	}
	raw, err := base64.StdEncoding.DecodeString(strings.NewReplacer("*", "+", "-", "/", "_", "=").Replace(sig))
	if err != nil {
		return "usersig base64"
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "usersig zlib"
	}
	js, _ := io.ReadAll(zr)
	var doc struct {
		Ver        string `json:"TLS.ver"`
		Identifier string `json:"TLS.identifier"`
		AppID      int64  `json:"TLS.sdkappid"`
		Time       int64  `json:"TLS.time"`
		Expire     int64  `json:"TLS.expire"`
		Sig        string `json:"TLS.sig"`
	}
	if json.Unmarshal(js, &doc) != nil || doc.Ver != "2.0" || doc.Identifier != "administrator" || strconv.FormatInt(doc.AppID, 10) != appID {
		return "usersig fields: " + string(js)
	}
	content := fmt.Sprintf("TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n", doc.Identifier, doc.AppID, doc.Time, doc.Expire)
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(content))
	if base64.StdEncoding.EncodeToString(m.Sum(nil)) != doc.Sig {
		return "usersig HMAC does not match"
	}
	if now := time.Now().Unix(); doc.Time > now+60 || doc.Time+doc.Expire < now {
		return "usersig not valid now"
	}
	return ""
}

// handshakeFrom opens a TLS connection to addr from the loopback address
// src and reports whether the handshake completed.
func handshakeFrom(p *pki, addr, src string) error {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: certstest.Pool(p.ca),
		Certificates: []tls.Certificate{p.client}, ServerName: "127.0.0.1"})
	if err != nil {
		return err
	}
	return c.Close()
}

// With --im-egress, imedge fetches IM's egress list with a valid admin
// UserSig, admits only the listed peers (others are closed before the
// handshake and audited source_denied), follows a change of the list
// without a restart, and keeps the list when a fetch fails.
func TestEgress_E2E_FetchesEnforcesAndFollowsIMsList(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	api := newFakeIMAPI(t, "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e")
	api.setList("127.0.0.1", "192.0.2.0/25")
	keyFile := writeFile(t, dir, "im.key", string(api.key)+"\n")
	auditLog := filepath.Join(dir, "audit.log")
	s := newSink(t)
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog),
		"--im-egress", "--im-admin", "administrator", "--im-secret-key-file", keyFile,
		"--im-api-url", api.srv.URL, "--im-api-ca", api.caFile, "--im-egress-interval", "1s")...)

	require.NoError(t, handshakeFrom(p, im.addr, "127.0.0.1"), "127.0.0.1 is on IM's list")
	require.Error(t, handshakeFrom(p, im.addr, "127.0.0.2"), "127.0.0.2 is not")
	require.Eventually(t, func() bool {
		for _, r := range auditRecords(t, auditLog) {
			if r["reason"] == "source_denied" && strings.HasPrefix(fmt.Sprint(r["remote_addr"]), "127.0.0.2:") {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the refusal is audited source_denied")

	api.setList("127.0.0.1", "127.0.0.2")
	require.Eventually(t, func() bool { return handshakeFrom(p, im.addr, "127.0.0.2") == nil },
		15*time.Second, 100*time.Millisecond, "a change of IM's list applies without a restart")
	// A refresh fetches both of IM's lists (nettype 5 and 6); the change is
	// whole once both answers of one refresh carry it.
	metrics := "http://" + im.adminAddr(t) + "/metrics"
	require.Eventually(t, func() bool {
		resp, err := http.Get(metrics)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return err == nil && regexp.MustCompile(`(?m)^imedge_im_egress_entries 2$`).Match(b)
	}, 15*time.Second, 50*time.Millisecond, "the old list's 192.0.2.0/25 is gone")
	assert.Contains(t, im.stderr.String(), "127.0.0.2/32", "the change is logged with what was added")

	api.fail.Store(true)
	// The fake API counts a call when it is made, imedge a refresh once it
	// has ended: wait for imedge's count of failed refreshes.
	failed := regexp.MustCompile(`(?m)^imedge_im_egress_refreshes_total\{result="error"\} [1-9]`)
	require.Eventually(t, func() bool {
		resp, err := http.Get(metrics)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return err == nil && failed.Match(b)
	}, 15*time.Second, 50*time.Millisecond, "a failed refresh is counted")
	assert.NoError(t, handshakeFrom(p, im.addr, "127.0.0.2"), "a failed fetch keeps the last good list")

	base := "http://" + im.adminAddr(t)
	fams := scrapeMetrics(t, base)
	assert.Equal(t, float64(2), metric(fams, "imedge_im_egress_entries"))
	assert.Equal(t, float64(1), metric(fams, "imedge_im_egress_ready"))
	assert.GreaterOrEqual(t, metric(fams, "imedge_im_egress_refreshes_total", "result", "error"), float64(1))
	code, checks := readyChecks(t, base)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "", checks["im_egress"], "a held list keeps the instance ready")
	_, b := adminGet(t, http.DefaultClient, base+"/status")
	var st struct {
		IMEgress struct {
			Networks   []string
			LastResult string `json:"last_result"`
		} `json:"im_egress"`
	}
	require.NoError(t, json.Unmarshal(b, &st))
	assert.ElementsMatch(t, []string{"127.0.0.1/32", "127.0.0.2/32"}, st.IMEgress.Networks)
	assert.Equal(t, "error", st.IMEgress.LastResult)

	api.mu.Lock()
	assert.Empty(t, api.errors, "every GetIPList call was well formed with a valid UserSig")
	api.mu.Unlock()
	assert.NotContains(t, im.stderr.String(), string(api.key), "the secret key is never logged")
	im.stop(t)
}

// With --im-egress and IM's API unreachable at start, imedge still listens
// but admits nobody outside --allow-source: it fails closed.
func TestEgress_E2E_NoListYetFailsClosed(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	api := newFakeIMAPI(t, "k")
	api.fail.Store(true)
	keyFile := writeFile(t, dir, "im.key", "k")
	s := newSink(t)
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")),
		"--im-egress", "--im-admin", "administrator", "--im-secret-key-file", keyFile,
		"--im-api-url", api.srv.URL, "--im-api-ca", api.caFile, "--im-egress-start-wait", "1s",
		"--allow-source", "127.0.0.3")...)
	assert.Contains(t, im.stderr.String(), "listening without IM's egress list")
	assert.Error(t, handshakeFrom(p, im.addr, "127.0.0.1"), "no list yet: nobody outside --allow-source")
	assert.NoError(t, handshakeFrom(p, im.addr, "127.0.0.3"), "--allow-source still admits")
	code, checks := readyChecks(t, "http://"+im.adminAddr(t))
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready without a list")
	assert.Contains(t, checks["im_egress"], "no IM egress list yet")
	im.stop(t)
}
