package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
)

func lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "each audit line is JSON: %s", sc.Text())
		out = append(out, m)
	}
	return out
}

func TestLogger_RecordFields(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, audit.Options{})
	l.Log(audit.Record{
		Reason: audit.BadSign, Status: 401, RemoteAddr: "127.0.0.1:5555", ClientIP: "10.0.0.1",
		SdkAppid: "1400000000", Command: "Sns.CallbackFriendDelete", RequestID: "r-1",
		CertSubject: "CN=im", CertSerial: "ab", CertSHA256: strings.Repeat("0", 64),
		BodySHA256: strings.Repeat("1", 64), BodySize: 120,
	})
	got := lines(t, buf.Bytes())
	require.Len(t, got, 1)
	r := got[0]
	assert.Equal(t, "bad_sign", r["reason"])
	assert.Equal(t, float64(401), r["status"])
	assert.Equal(t, "127.0.0.1:5555", r["remote_addr"])
	assert.Equal(t, "10.0.0.1", r["client_ip"])
	assert.Equal(t, "r-1", r["request_id"])
	assert.Equal(t, "CN=im", r["cert_subject"])
	assert.Equal(t, float64(120), r["body_size"])
	assert.Contains(t, r, "time")
	assert.NotContains(t, r, "detail", "empty fields are left out")
}

func TestLogger_ClipsAttackerStrings(t *testing.T) {
	var buf bytes.Buffer
	audit.New(&buf, audit.Options{}).Log(audit.Record{Reason: audit.BadClientIP, ClientIP: strings.Repeat("x", 5000)})
	got := lines(t, buf.Bytes())
	require.Len(t, got, 1)
	assert.Less(t, len(got[0]["client_ip"].(string)), 80)
}

func TestLogger_SamplingWritesSummary(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := audit.New(&buf, audit.Options{Interval: time.Second, Burst: 3, Now: func() time.Time { return now }})
	for range 10 {
		l.Log(audit.Record{Reason: audit.RateLimited, ClientIP: "1.2.3.4"})
	}
	l.Log(audit.Record{Reason: audit.RateLimited, ClientIP: "5.6.7.8"})
	assert.Len(t, lines(t, buf.Bytes()), 4, "three for the flooding key, one for the other")

	now = now.Add(2 * time.Second)
	l.Flush(false)
	got := lines(t, buf.Bytes())
	require.Len(t, got, 5)
	s := got[4]
	assert.Equal(t, "audit summary", s["msg"])
	assert.Equal(t, "1.2.3.4", s["key"])
	assert.Equal(t, float64(7), s["suppressed"])
	w, sup := l.Stats()
	assert.Equal(t, uint64(4), w)
	assert.Equal(t, uint64(7), sup)

	l.Log(audit.Record{Reason: audit.RateLimited, ClientIP: "1.2.3.4"})
	assert.Len(t, lines(t, buf.Bytes()), 6, "a new window writes again")
}

func TestLogger_SamplingBoundedKeys(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := audit.New(&buf, audit.Options{Interval: time.Minute, Burst: 1, MaxKeys: 5, Now: func() time.Time { return now }})
	for i := range 1000 {
		l.Log(audit.Record{Reason: audit.TLSUnknownCA, RemoteAddr: "10.0.0." + string(rune('0'+i%10)) + ":1"})
		l.Log(audit.Record{Reason: audit.TLSUnknownCA, RemoteAddr: strings.Repeat("a", i%50) + ":1"})
	}
	l.Flush(true)
	got := lines(t, buf.Bytes())
	assert.LessOrEqual(t, len(got), 5+1+5+1, "MaxKeys keys and the overflow key: one record and one summary each")
}

func TestNilLogger(t *testing.T) {
	var l *audit.Logger
	assert.NotPanics(t, func() { l.Log(audit.Record{Reason: audit.Internal}); l.Flush(true) })
}

func TestFile_Reopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	f, err := audit.OpenFile(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	l := audit.New(f, audit.Options{})
	l.Log(audit.Record{Reason: audit.BadPath})
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, f.Reopen())
	l.Log(audit.Record{Reason: audit.BadMethod})

	old, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	cur, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Len(t, lines(t, old), 1)
	require.Len(t, lines(t, cur), 1)
	assert.Equal(t, "bad_method", lines(t, cur)[0]["reason"])
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestReasons_Unique(t *testing.T) {
	seen := map[audit.Reason]bool{}
	for _, r := range audit.Reasons() {
		assert.False(t, seen[r], "duplicate %s", r)
		seen[r] = true
	}
	assert.Len(t, seen, len(audit.Reasons()))
}

// An admin action is written whole, at Info, with its identity, filter and
// count; sampling, which drops the 11th refusal of a key, never drops one;
// it counts as written and under no reason.
func TestLogger_AdminActionNeverSampled(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, audit.Options{Interval: time.Hour, Burst: 1})
	for range 3 {
		l.Log(audit.Record{Reason: audit.BadSign, ClientIP: "10.0.0.1"})
	}
	refs := make([]string, audit.MaxAdminRefs+5)
	for i := range refs {
		refs[i] = strings.Repeat("a", 63) + string(rune('a'+i%26))
	}
	for i := range 30 {
		a := audit.AdminAction{Action: "outbox.replay-dead", Identity: "spiffe://ops/alice", Auth: "mtls", CertSubject: "CN=alice,O=ops", CertSHA256: strings.Repeat("f", 64),
			RemoteAddr: "10.9.0.1:4444", Filter: map[string]string{"command": "Group.*", "destination": "default"}, Count: i, Status: 200}
		if i == 0 {
			a.Refs = refs
		}
		l.Admin(a)
	}
	got := lines(t, buf.Bytes())
	var actions []map[string]any
	for _, r := range got {
		if r["msg"] == "admin action" {
			actions = append(actions, r)
		}
	}
	require.Len(t, actions, 30, "every action is written")
	a := actions[0]
	assert.Equal(t, "INFO", a["level"])
	assert.Equal(t, "outbox.replay-dead", a["action"])
	assert.Equal(t, "spiffe://ops/alice", a["identity"])
	assert.Equal(t, "CN=alice,O=ops", a["cert_subject"])
	assert.Equal(t, "mtls", a["auth"])
	assert.Equal(t, "10.9.0.1:4444", a["remote_addr"])
	assert.Equal(t, map[string]any{"command": "Group.*", "destination": "default"}, a["filter"])
	assert.Len(t, a["refs"], audit.MaxAdminRefs, "refs are bounded")
	assert.Equal(t, float64(len(refs)), a["refs_total"])
	assert.Equal(t, float64(0), a["count"], "a count of zero is written")
	assert.Equal(t, float64(29), actions[29]["count"])
	assert.NotContains(t, actions[1], "refs")
	assert.NotContains(t, a, "reason", "an action is not a refusal")

	written, suppressed := l.Stats()
	assert.Equal(t, uint64(31), written, "one refusal and 30 actions")
	assert.Equal(t, uint64(2), suppressed)
	assert.Equal(t, map[audit.Reason]uint64{audit.BadSign: 3}, l.Counts())

	var none *audit.Logger
	assert.NotPanics(t, func() { none.Admin(audit.AdminAction{Action: "x"}) }, "a nil Logger discards actions too")
}
