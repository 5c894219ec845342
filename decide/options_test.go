package decide

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
)

func TestParseTarget(t *testing.T) {
	tg, err := ParseTarget("Group.*=https://mod.internal:8443/decide?tenant=a=b")
	require.NoError(t, err)
	assert.Equal(t, Target{Pattern: "Group.*", URL: "https://mod.internal:8443/decide?tenant=a=b"}, tg, "split at the first =")
	assert.Equal(t, "Group.*=https://mod.internal:8443/decide?…", tg.String())

	for _, bad := range []string{
		"http://mod.internal/decide",           // no pattern
		"Group.Callback*=http://mod.internal/", // bad pattern
		"*=mod.internal/decide",                // not absolute
		"*=ftp://mod.internal/",                // scheme
		"*=http://mod.internal/#frag",          // fragment
		"*=http://user:secret@[::1/x\x7f",      // unparsable
	} {
		_, err := ParseTarget(bad)
		assert.Error(t, err, bad)
		if err != nil {
			assert.NotContains(t, err.Error(), "secret", "credentials never in errors")
		}
	}
}

func TestParseFallback(t *testing.T) {
	for in, want := range map[string]FallbackRule{
		"*=allow":      {Pattern: "*"},
		"Group.*=deny": {Pattern: "Group.*", Deny: true},
		"C2C.CallbackBeforeSendMsg = deny:120001": {Pattern: "C2C.CallbackBeforeSendMsg", Deny: true, Code: 120001},
		"Sns.CallbackPrevFriendAdd=deny:38000":    {Pattern: "Sns.CallbackPrevFriendAdd", Deny: true, Code: 38000},
	} {
		got, err := ParseFallback(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	assert.Equal(t, "deny:120001", FallbackRule{Deny: true, Code: 120001}.String())
	assert.Equal(t, "deny", FallbackRule{Deny: true}.String())
	assert.Equal(t, "allow", FallbackRule{}.String())
	for _, bad := range []string{"allow", "*=block", "*=deny:", "*=deny:-1", "*=deny:x", "Group=deny"} {
		_, err := ParseFallback(bad)
		assert.Error(t, err, bad)
	}
}

func TestNew_Options(t *testing.T) {
	t.Run("timeout above IM's budget", func(t *testing.T) {
		_, err := New(Options{Timeout: 1901 * time.Millisecond})
		assert.ErrorIs(t, err, ErrTimeoutTooLong)
		_, err = New(Options{Timeout: MaxTimeout})
		assert.NoError(t, err)
	})
	t.Run("deny code checked per command", func(t *testing.T) {
		_, err := New(Options{Fallbacks: []FallbackRule{{Pattern: "*", Deny: true, Code: 1}}})
		assert.ErrorIs(t, err, catalog.ErrBadCode, "friend requests refuse with ResultCodes in [38000,39000]")
		_, err = New(Options{Fallbacks: []FallbackRule{
			{Pattern: "Sns.*", Deny: true, Code: 38001},
			{Pattern: "OfficialAccount.CallbackBeforeAddSubscriber", Deny: true},
			{Pattern: "*", Deny: true, Code: 1},
		}})
		assert.NoError(t, err, "first match wins, so * only covers the others")
		_, err = New(Options{Fallbacks: []FallbackRule{{Pattern: "Group.CallbackBeforeSendMsg", Deny: true, Code: 120001}}})
		assert.ErrorIs(t, err, catalog.ErrBadCode, "group messages refuse with [10100,10200]")
	})
	t.Run("a rule that matches nothing", func(t *testing.T) {
		_, err := New(Options{Targets: []Target{{Pattern: "Group.CallbackAfterSendMsg", URL: "http://127.0.0.1:1/"}}})
		assert.ErrorIs(t, err, ErrInvalidOptions, "an after-callback has no decision")
		_, err = New(Options{Targets: []Target{{Pattern: "*", URL: "http://127.0.0.1:1/"}, {Pattern: "Group.*", URL: "http://127.0.0.1:2/"}}})
		assert.ErrorIs(t, err, ErrInvalidOptions, "shadowed by the first")
		_, err = New(Options{Fallbacks: []FallbackRule{{Pattern: "Push.*"}}})
		assert.ErrorIs(t, err, ErrInvalidOptions)
	})
	t.Run("bad values", func(t *testing.T) {
		for _, o := range []Options{
			{MaxConns: -1},
			{CertFile: "/x"},
			{SigningSecret: []byte("whsec_!!!")},
			{Targets: []Target{{Pattern: "*", URL: "mod.internal"}}},
			{Fallbacks: []FallbackRule{{Pattern: "*", Code: 5}}},
			{CAFile: "/nonexistent/ca.pem"},
		} {
			_, err := New(o)
			assert.Error(t, err, "%+v", o)
		}
	})
	t.Run("observe mode is one start line naming its commands", func(t *testing.T) {
		var logs bytes.Buffer
		s, err := New(Options{
			Targets: []Target{{Pattern: "Group.*", URL: "http://127.0.0.1:1/"}},
			Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		require.NoError(t, err)
		require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("observe mode")), "one line for one fallback: %s", logs.String())
		var line struct {
			Commands []string `json:"commands"`
			Fallback string   `json:"fallback"`
			Stored   bool     `json:"stored"`
		}
		require.NoError(t, json.Unmarshal(logs.Bytes(), &line))
		assert.Equal(t, "allow", line.Fallback)
		assert.False(t, line.Stored)
		st := s.Stats()
		require.Len(t, st.Commands, 12)
		var observed []string
		for _, c := range st.Commands {
			if c.Target == "" {
				observed = append(observed, c.Command)
			} else {
				assert.Equal(t, "Group.*", c.Target)
				assert.Equal(t, "Group", c.Command[:5])
			}
		}
		assert.Len(t, observed, 7, "12 commands, 5 in the Group family")
		assert.ElementsMatch(t, observed, line.Commands)
	})
}
