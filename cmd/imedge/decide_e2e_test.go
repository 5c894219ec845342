package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/forward"
)

// decisionService is a real internal decision service for the end-to-end
// tests: it answers with the reply the test sets, or stalls.
type decisionService struct {
	srv   *httptest.Server
	mu    sync.Mutex
	reply string
	stall bool
	seen  []http.Header
	query []string
}

func newDecisionService(t *testing.T) *decisionService {
	d := &decisionService{reply: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		d.mu.Lock()
		d.seen = append(d.seen, r.Header.Clone())
		d.query = append(d.query, r.URL.RawQuery)
		reply, stall := d.reply, d.stall
		d.mu.Unlock()
		if stall {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *decisionService) set(reply string, stall bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reply, d.stall = reply, stall
}

func (d *decisionService) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// TestE2E_Decide: the real binary relays a decision service's checked
// reply to IM, answers the fallback on a stall (audited, status 200),
// serves the commands without --decide in observe mode, and shows it all
// in /status and /metrics; imedge send prints IM's view of the decision.
func TestE2E_Decide(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	observed := newSink(t) // the --route of one command in observe mode
	svc := newDecisionService(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("im-token-18\n"), 0o600))
	secretFile := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("decide-secret\n"), 0o600))
	auditLog := filepath.Join(dir, "audit.log")
	im := start(t, append(baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), auditLog),
		"--token-file", tokenFile, "--forward-secret-file", secretFile,
		"--decide", "C2C.*="+svc.srv.URL+"/decide", "--decide-fallback", "Group.*=deny",
		"--decide-timeout", "500ms", "--route", "Group.CallbackBeforeCreateGroup="+observed.srv.URL)...)
	logs := im.stderr.String()
	observe := observeModeLog(t, logs)
	total := 0
	for _, cmds := range observe {
		total += len(cmds)
	}
	assert.Equal(t, 11, total, "every command without --decide is named once")
	assert.Contains(t, observe["deny stored=true"], "Group.CallbackBeforeCreateGroup")
	assert.Contains(t, observe["deny stored=false"], "Group.CallbackBeforeApplyJoinGroup")
	assert.Contains(t, observe["allow stored=false"], "Sns.CallbackPrevFriendAdd")

	// imedge send: IM's view of a decision.
	svc.set(`{"ActionStatus":"OK","ErrorCode":120001,"ErrorInfo":"links are not allowed"}`, false)
	out, errOut, err := runBin(t, nil, append([]string{"send"}, append(simArgs(p, im.addr),
		"--token-file", tokenFile, "--command", "C2C.CallbackBeforeSendMsg")...)...)
	require.NoError(t, err, "a deny is an answer\nstdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "status 200\n")
	assert.Contains(t, out, `reply {"ActionStatus":"OK","ErrorCode":120001,"ErrorInfo":"links are not allowed"}`)
	assert.Contains(t, out, "decision deny (ErrorCode 120001)\n")
	require.Equal(t, 1, svc.calls())
	svc.mu.Lock()
	h, q := svc.seen[0], svc.query[0]
	svc.mu.Unlock()
	assert.Equal(t, "C2C.CallbackBeforeSendMsg", h.Get(forward.HeaderCommand))
	assert.NotEmpty(t, h.Get(forward.HeaderWebhookSignature), "signed with --forward-secret-file")
	assert.NotContains(t, q, "Sign=")
	assert.Contains(t, q, "CallbackCommand=C2C.CallbackBeforeSendMsg")

	// A stall: the fallback (allow, the default) within the budget, audited.
	svc.set("", true)
	cat := catalog.New()
	c2c, _ := cat.Lookup("C2C.CallbackBeforeSendMsg")
	body := strings.Replace(string(c2c.Example()), `"MsgRandom":2837546`, `"MsgRandom":7`, 1)
	start := time.Now()
	status, reply := postSigned(t, p, im.addr, c2c.Name, body, "im-token-18")
	assert.Less(t, time.Since(start), 2*time.Second, "before IM's deadline")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, reply)
	var rec map[string]any
	require.Eventually(t, func() bool {
		for _, r := range auditRecords(t, auditLog) {
			if r["reason"] == "decide_timeout" {
				rec = r
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the fallback is audited")
	assert.EqualValues(t, 200, rec["status"])
	assert.Equal(t, c2c.Name, rec["command"])
	assert.Contains(t, rec["detail"], "(answered fallback allow)")

	// Observe mode: the fallback at once, no call; stored for the route that
	// names the command, never for the catch-all --forward-url.
	calls := svc.calls()
	group, _ := cat.Lookup("Group.CallbackBeforeCreateGroup")
	status, reply = postSigned(t, p, im.addr, group.Name, string(group.Example()), "im-token-18")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`, reply, "--decide-fallback Group.*=deny")
	assert.Equal(t, calls, svc.calls())
	require.Eventually(t, func() bool { return observed.count() == 1 }, 10*time.Second, 20*time.Millisecond, "the observed callback reaches its route")
	apply, _ := cat.Lookup("Group.CallbackBeforeApplyJoinGroup")
	status, reply = postSigned(t, p, im.addr, apply.Name, string(apply.Example()), "im-token-18")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`, reply)

	// /status and /metrics.
	admin := "http://" + im.adminAddr(t)
	code, b := adminGet(t, http.DefaultClient, admin+"/status")
	require.Equal(t, http.StatusOK, code)
	var st struct {
		Decide struct {
			Targets []struct{ Pattern, State string }
			Observe []string
		}
	}
	require.NoError(t, json.Unmarshal(b, &st))
	require.Len(t, st.Decide.Targets, 1)
	assert.Equal(t, "C2C.*", st.Decide.Targets[0].Pattern)
	assert.Equal(t, "closed", st.Decide.Targets[0].State)
	assert.Len(t, st.Decide.Observe, 11)
	code, b = adminGet(t, http.DefaultClient, admin+"/metrics")
	require.Equal(t, http.StatusOK, code)
	m := string(b)
	assert.Contains(t, m, `imedge_decide_decisions_total{command="C2C.CallbackBeforeSendMsg",outcome="deny"} 1`)
	assert.Contains(t, m, `imedge_decide_fallbacks_total{command="C2C.CallbackBeforeSendMsg",reason="decide_timeout"} 1`)
	assert.Contains(t, m, `imedge_decide_observed_total{command="Group.CallbackBeforeCreateGroup"} 1`)
	assert.Contains(t, m, `imedge_decide_observe_stored_total 1`)
	assert.Contains(t, m, `imedge_decide_circuit_state{state="closed",target="C2C.*"} 1`)
	assert.Contains(t, m, `imedge_decide_duration_seconds_count{command="C2C.CallbackBeforeSendMsg"} 2`)
	assert.Zero(t, s.count(), "no before-callback reached the catch-all forward URL")
	assert.Equal(t, 1, observed.count(), "only the routed command was stored")
	im.stop(t)
}

// postSigned posts a callback signed with token, as IM does.
func postSigned(t *testing.T, p *pki, addr, command, body, token string) (int, string) {
	t.Helper()
	u := "https://" + addr + "/?SdkAppid=" + appID + "&CallbackCommand=" + command +
		"&contenttype=json&ClientIP=10.0.0.7&OptPlatform=iOS" + signQuery(token, time.Now())
	resp, err := p.httpsClient().Post(u, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// observeModeLog reads the start log's observe-mode lines: one per
// (fallback, stored) pair, keyed "FALLBACK stored=BOOL", listing commands.
func observeModeLog(t *testing.T, logs string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "before-callbacks in observe mode") {
			continue
		}
		var rec struct {
			Commands []string `json:"commands"`
			Fallback string   `json:"fallback"`
			Stored   bool     `json:"stored"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		key := rec.Fallback + " stored=" + strconv.FormatBool(rec.Stored)
		require.NotContains(t, out, key, "one line per (fallback, stored)")
		out[key] = rec.Commands
	}
	return out
}
