package imsim

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadDecision(t *testing.T) {
	for body, want := range map[string]Decision{
		`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`:                                                     {Outcome: "allow"},
		`{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`:                                                     {Outcome: "deny", ErrorCode: 1},
		`{"ActionStatus":"OK","ErrorCode":120001,"ErrorInfo":"no ads"}`:                                          {Outcome: "deny", ErrorCode: 120001, ErrorInfo: "no ads"},
		`{"ActionStatus":"OK","ErrorCode":2,"ErrorInfo":""}`:                                                     {Outcome: "drop", ErrorCode: 2},
		`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[{}]}`:                                      {Outcome: "rewrite"},
		`{"ActionStatus":"OK","ErrorCode":0,"CloudCustomData":""}`:                                               {Outcome: "rewrite"},
		`{"ErrorCode":0,"RefusedMembers_Account":["a"]}`:                                                         {Outcome: "partial", Refused: []string{"a"}},
		`{"ErrorCode":0,"RefusedSubscribers_Account":["b","c"]}`:                                                 {Outcome: "partial", Refused: []string{"b", "c"}},
		`{"ErrorCode":0,"ResultItem":[{"To_Account":"x","ResultCode":0}]}`:                                       {Outcome: "allow"},
		`{"ErrorCode":0,"ResultItem":[{"To_Account":"x","ResultCode":38000}]}`:                                   {Outcome: "deny", Refused: []string{"x"}},
		`{"ErrorCode":0,"ResultItem":[{"To_Account":"x","ResultCode":38000},{"To_Account":"y","ResultCode":0}]}`: {Outcome: "partial", Refused: []string{"x"}},
		`{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"rate_limited"}`:                                       {Outcome: "deny", ErrorCode: 1, ErrorInfo: "rate_limited"},
		`<html>`:                {},
		`{"ActionStatus":"OK"}`: {},
	} {
		assert.Equal(t, want, ReadDecision([]byte(body)), body)
	}
	assert.Equal(t, "deny (ErrorCode 10016)", Decision{Outcome: "deny", ErrorCode: 10016}.String())
	assert.Equal(t, `partial refused ["x"]`, Decision{Outcome: "partial", Refused: []string{"x"}}.String())
	assert.Equal(t, "none (not IM's reply JSON)", Decision{}.String())
}

// TestLoad_BeforeCommand: a load of another command with a body template,
// each new body made unique, replies counted by decision.
func TestLoad_BeforeCommand(t *testing.T) {
	s := newIMServer(t, 0)
	var n atomic.Int64
	s.respond = func(w http.ResponseWriter, _ *http.Request) bool {
		if n.Add(1)%2 == 0 {
			_, _ = w.Write([]byte(`{"ActionStatus":"OK","ErrorCode":10016,"ErrorInfo":"no"}`))
			return true
		}
		return false
	}
	tmpl := []byte(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1"}`)
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 2, Requests: 20,
		Command: "Group.CallbackBeforeSendMsg", Body: tmpl, DistinctBodies: true, Decisions: true, RunID: "bc"})
	require.NoError(t, err)
	assert.Equal(t, int64(20), res.OK, "a deny is an answer")
	assert.Equal(t, map[string]int64{"allow": 10, "deny": 10}, res.Decisions)
	assert.Zero(t, res.Failed())
	bodies := map[string]bool{}
	for _, r := range requireSeen(t, s, 20) {
		assert.Equal(t, []string{"Group.CallbackBeforeSendMsg"}, r.query["CallbackCommand"])
		assert.True(t, strings.HasPrefix(r.body, `{"ImsimSeq":"bc-`), r.body)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.body), &m), "still JSON: %s", r.body)
		assert.Equal(t, "@TGS#1", m["GroupId"])
		bodies[r.body] = true
	}
	assert.Len(t, bodies, 20, "each a new question")

	same, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Requests: 3,
		Command: "Group.CallbackBeforeSendMsg", Body: tmpl})
	require.NoError(t, err)
	assert.Nil(t, same.Decisions)
	assert.Equal(t, string(tmpl), requireSeen(t, s, 23)[22].body, "the template itself without DistinctBodies")

	_, err = Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Requests: 1, Body: []byte(`[1]`)})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}

// TestLoad_Rate: a paced run sends no faster than its rate.
func TestLoad_Rate(t *testing.T) {
	s := newIMServer(t, 0)
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 4, Requests: 21, Rate: 100})
	require.NoError(t, err)
	assert.Equal(t, int64(21), res.OK)
	assert.GreaterOrEqual(t, res.Elapsed, 200*time.Millisecond, "21 requests at 100/s take at least 0.2 s")
	_, err = Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Requests: 1, Rate: -1})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}
