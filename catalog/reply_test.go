package catalog

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type replyCase struct {
	name    string
	reply   string
	outcome Outcome // 0: refused with ErrBadReply
	// has lists members the relay must carry; lacks those it must not.
	has, lacks []string
}

func replyCases() map[string][]replyCase {
	msgRewrite := `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","MsgBody":[ {"MsgType":"TIMTextElem","MsgContent":{"Text":"***"}} ]}`
	common := func(custom int, otherCustom int) []replyCase {
		return []replyCase{
			{name: "allow", reply: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, outcome: Allow},
			{name: "allow without ActionStatus", reply: `{"ErrorCode":0}`, outcome: Allow},
			{name: "deny", reply: `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"no"}`, outcome: Deny},
			{name: "custom code", reply: `{"ActionStatus":"OK","ErrorCode":` + itoa(custom) + `,"ErrorInfo":"blocked word"}`, outcome: Deny},
			{name: "other command's custom code", reply: `{"ErrorCode":` + itoa(otherCustom) + `}`},
			{name: "extra fields dropped", reply: `{"ErrorCode":0,"Evil":"x","errorcode":7}`, outcome: Allow, lacks: []string{"Evil", "errorcode"}},
			{name: "code 3", reply: `{"ErrorCode":3}`},
			{name: "code as string", reply: `{"ErrorCode":"0"}`},
			{name: "code fractional", reply: `{"ErrorCode":0.5}`},
			{name: "code missing", reply: `{"ActionStatus":"OK"}`},
			{name: "code null", reply: `{"ErrorCode":null}`},
			{name: "not JSON", reply: `OK`},
			{name: "array", reply: `[{"ErrorCode":0}]`},
			{name: "null", reply: `null`},
			{name: "ErrorInfo not a string", reply: `{"ErrorCode":1,"ErrorInfo":5}`},
			{name: "invalid UTF-8", reply: "{\"ErrorCode\":1,\"ErrorInfo\":\"\xff\"}"},
		}
	}
	sendMsg := func(custom, otherCustom int) []replyCase {
		return append(common(custom, otherCustom),
			replyCase{name: "drop silently", reply: `{"ErrorCode":2}`, outcome: Drop},
			replyCase{name: "rewrite body", reply: msgRewrite, outcome: Rewrite, has: []string{"MsgBody"}},
			replyCase{name: "rewrite custom data", reply: `{"ErrorCode":0,"CloudCustomData":"{\"x\":1}"}`, outcome: Rewrite, has: []string{"CloudCustomData"}, lacks: []string{"MsgBody"}},
			replyCase{name: "rewrite with deny", reply: `{"ErrorCode":1,"CloudCustomData":"x"}`},
			replyCase{name: "rewrite with drop", reply: `{"ErrorCode":2,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{}}]}`},
			replyCase{name: "body not an array", reply: `{"ErrorCode":0,"MsgBody":{"MsgType":"TIMTextElem"}}`},
			replyCase{name: "body empty", reply: `{"ErrorCode":0,"MsgBody":[]}`},
			replyCase{name: "element without MsgType", reply: `{"ErrorCode":0,"MsgBody":[{"MsgContent":{}}]}`},
			replyCase{name: "element with empty MsgType", reply: `{"ErrorCode":0,"MsgBody":[{"MsgType":"","MsgContent":{}}]}`},
			replyCase{name: "content not an object", reply: `{"ErrorCode":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":"hi"}]}`},
			replyCase{name: "custom data not a string", reply: `{"ErrorCode":0,"CloudCustomData":{"x":1}}`},
			replyCase{name: "refusal list dropped", reply: `{"ErrorCode":0,"RefusedMembers_Account":["jared"]}`, outcome: Allow, lacks: []string{"RefusedMembers_Account"}},
		)
	}
	noRewrite := func(custom, otherCustom int) []replyCase {
		return append(common(custom, otherCustom),
			replyCase{name: "drop not allowed", reply: `{"ErrorCode":2}`},
			replyCase{name: "rewrite not relayed", reply: msgRewrite, outcome: Allow, lacks: []string{"MsgBody"}},
		)
	}
	friend := []replyCase{
		{name: "allow all", reply: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id1","ResultCode":0,"ResultInfo":""},{"To_Account":"id2","ResultCode":0}]}`, outcome: Allow, has: []string{"ResultItem"}},
		{name: "refuse one", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id2","ResultCode":38000,"ResultInfo":"spam"},{"To_Account":"id1","ResultCode":0}]}`, outcome: Partial},
		{name: "refuse all", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":39000},{"To_Account":"id2","ResultCode":38500}]}`, outcome: Deny},
		{name: "target missing", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":0}]}`},
		{name: "target not in request", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":0},{"To_Account":"id2","ResultCode":0},{"To_Account":"id9","ResultCode":0}]}`},
		{name: "target twice", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":0},{"To_Account":"id1","ResultCode":0},{"To_Account":"id2","ResultCode":0}]}`},
		{name: "ResultCode outside range", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":1},{"To_Account":"id2","ResultCode":0}]}`},
		{name: "ResultCode missing", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1"},{"To_Account":"id2","ResultCode":0}]}`},
		{name: "ResultInfo not a string", reply: `{"ErrorCode":0,"ResultItem":[{"To_Account":"id1","ResultCode":0,"ResultInfo":1},{"To_Account":"id2","ResultCode":0}]}`},
		{name: "ResultItem missing", reply: `{"ErrorCode":0}`},
		{name: "ResultItem element not an object", reply: `{"ErrorCode":0,"ResultItem":["id1","id2"]}`},
		{name: "app failure is not a decision", reply: `{"ErrorCode":1,"ResultItem":[{"To_Account":"id1","ResultCode":0},{"To_Account":"id2","ResultCode":0}]}`},
	}
	return map[string][]replyCase{
		"C2C.CallbackBeforeSendMsg":             sendMsg(120001, 10100),
		"Group.CallbackBeforeSendMsg":           sendMsg(10200, 130000),
		"OfficialAccount.CallbackBeforeSendMsg": sendMsg(130000, 10150),
		"Group.CallbackBeforeCreateGroup":       noRewrite(10100, 120001),
		"Group.CallbackBeforeCreateTopic":       noRewrite(10150, 38000),
		"Group.CallbackBeforeApplyJoinGroup":    noRewrite(10200, 10099),
		"Group.CallbackBeforeInviteJoinGroup": append(noRewrite(10100, 10201),
			replyCase{name: "refuse some", reply: `{"ErrorCode":0,"RefusedMembers_Account":["tommy"]}`, outcome: Partial, has: []string{"RefusedMembers_Account"}},
			replyCase{name: "refuse every member", reply: `{"ErrorCode":0,"RefusedMembers_Account":["tommy","jared"]}`, outcome: Deny},
			replyCase{name: "refuse none", reply: `{"ErrorCode":0,"RefusedMembers_Account":[]}`, outcome: Allow, lacks: []string{"RefusedMembers_Account"}},
			replyCase{name: "refuse a stranger", reply: `{"ErrorCode":0,"RefusedMembers_Account":["mallory"]}`},
			replyCase{name: "refuse twice", reply: `{"ErrorCode":0,"RefusedMembers_Account":["jared","jared"]}`},
			replyCase{name: "list not strings", reply: `{"ErrorCode":0,"RefusedMembers_Account":[{"Member_Account":"jared"}]}`},
			replyCase{name: "list with deny dropped", reply: `{"ErrorCode":1,"RefusedMembers_Account":["jared"]}`, outcome: Deny, lacks: []string{"RefusedMembers_Account"}},
		),
		"OfficialAccount.CallbackBeforeCreateOfficialAccount": {
			{name: "allow", reply: `{"ErrorCode":0}`, outcome: Allow},
			{name: "deny", reply: `{"ErrorCode":1,"ErrorInfo":"quota"}`, outcome: Deny},
			{name: "no custom range", reply: `{"ErrorCode":10100}`},
			{name: "no drop", reply: `{"ErrorCode":2}`},
		},
		"OfficialAccount.CallbackBeforeAddSubscriber": {
			{name: "allow", reply: `{"ErrorCode":0}`, outcome: Allow},
			{name: "refuse one", reply: `{"ErrorCode":0,"RefusedSubscribers_Account":["peter"]}`, outcome: Partial, has: []string{"RefusedSubscribers_Account"}},
			{name: "refuse both", reply: `{"ErrorCode":0,"RefusedSubscribers_Account":["bob","peter"]}`, outcome: Deny},
			{name: "refuse a stranger", reply: `{"ErrorCode":0,"RefusedSubscribers_Account":["eve"]}`},
			{name: "prose's name not relayed", reply: `{"ErrorCode":0,"RefusedMembers_Account":["bob"]}`, outcome: Allow, lacks: []string{"RefusedMembers_Account"}},
			{name: "no refusal code", reply: `{"ErrorCode":1}`},
		},
		"Sns.CallbackPrevFriendAdd":      friend,
		"Sns.CallbackPrevFriendResponse": friend[:4],
		"Chatbot.OnC2CSignalMessage": {
			{name: "answer", reply: `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RspData":"{\"text\":\"hi\"}"}`, outcome: Allow, has: []string{"RspData"}},
			{name: "empty answer", reply: `{"ErrorCode":0,"RspData":""}`, outcome: Allow, has: []string{"RspData"}},
			{name: "no answer", reply: `{"ErrorCode":0}`},
			{name: "answer not a string", reply: `{"ErrorCode":0,"RspData":{"text":"hi"}}`},
			{name: "answer null", reply: `{"ErrorCode":0,"RspData":null}`},
			{name: "ignore", reply: `{"ErrorCode":1}`, outcome: Deny, lacks: []string{"RspData"}},
			{name: "ignore drops answer", reply: `{"ErrorCode":1,"RspData":"x"}`, outcome: Deny, lacks: []string{"RspData"}},
			{name: "no custom range", reply: `{"ErrorCode":10100}`},
		},
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCheckReply(t *testing.T) {
	c := New()
	cases := replyCases()
	covered := 0
	for _, cmd := range c.Commands() {
		if !cmd.Kind.Decides() {
			continue
		}
		covered++
		require.Contains(t, cases, cmd.Name, "every reply-consuming command has reply cases")
		for _, tc := range cases[cmd.Name] {
			t.Run(cmd.Name+"/"+tc.name, func(t *testing.T) {
				relay, outcome, err := cmd.CheckReply(cmd.Example(), []byte(tc.reply))
				if tc.outcome == 0 {
					require.ErrorIs(t, err, ErrBadReply)
					assert.Nil(t, relay)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, tc.outcome, outcome)
				var m map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(relay, &m), "the relay is JSON: %s", relay)
				assert.JSONEq(t, `"OK"`, string(m["ActionStatus"]))
				assert.Contains(t, m, "ErrorCode")
				assert.Contains(t, m, "ErrorInfo")
				for _, k := range tc.has {
					assert.Contains(t, m, k)
				}
				for _, k := range tc.lacks {
					assert.NotContains(t, m, k)
				}
				// A relayed reply is itself a valid reply with the same outcome.
				again, o2, err := cmd.CheckReply(cmd.Example(), relay)
				require.NoError(t, err)
				assert.Equal(t, outcome, o2)
				assert.JSONEq(t, string(relay), string(again))
			})
		}
	}
	assert.Equal(t, len(cases), covered, "no reply cases for a command that is not in the table")
}

func TestCheckReply_ExactRelay(t *testing.T) {
	c := New()
	cmd, _ := c.Lookup("C2C.CallbackBeforeSendMsg")
	relay, outcome, err := cmd.CheckReply(cmd.Example(), []byte(` {"ErrorInfo":"ok","X":1, "ErrorCode":0,"MsgBody":[ {"MsgType":"TIMTextElem","MsgContent":{"Text":"a"}} ],"ActionStatus":"FAIL"} `))
	require.NoError(t, err)
	assert.Equal(t, Rewrite, outcome)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"ok","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"a"}}]}`, string(relay))

	fr, _ := c.Lookup("Sns.CallbackPrevFriendAdd")
	relay, _, err = fr.CheckReply(fr.Example(), []byte(`{"ErrorCode":0,"ResultItem":[{"To_Account":"id2","ResultCode":38001,"X":1},{"To_Account":"id1","ResultCode":0}]}`))
	require.NoError(t, err)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id2","ResultCode":38001,"ResultInfo":""},{"To_Account":"id1","ResultCode":0,"ResultInfo":""}]}`, string(relay))
}

func TestCheckReply_BadRequest(t *testing.T) {
	c := New()
	for _, name := range []string{"Sns.CallbackPrevFriendAdd", "Group.CallbackBeforeInviteJoinGroup"} {
		cmd, _ := c.Lookup(name)
		reply := `{"ErrorCode":0,"ResultItem":[],"RefusedMembers_Account":["jared"]}`
		_, _, err := cmd.CheckReply([]byte(`{"garbage`), []byte(reply))
		assert.ErrorIs(t, err, ErrBadReply, "targets cannot be checked against an unreadable request: %s", name)
	}
}

func TestCheckReply_AfterCommand(t *testing.T) {
	cmd, _ := New().Lookup("Sns.CallbackFriendDelete")
	_, _, err := cmd.CheckReply(cmd.Example(), []byte(`{"ErrorCode":0}`))
	assert.ErrorIs(t, err, ErrNotDecided)
	assert.ErrorIs(t, cmd.CheckDenyCode(1), ErrNotDecided)
	assert.Zero(t, cmd.DefaultDenyCode())
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, string(cmd.Fallback(cmd.Example(), true, 0)))
}

// TestFallback checks every reply-consuming command's fallbacks: each is a
// reply the command's own schema accepts, with the outcome asked for.
func TestFallback(t *testing.T) {
	for _, cmd := range New().Commands() {
		if !cmd.Kind.Decides() {
			continue
		}
		t.Run(cmd.Name, func(t *testing.T) {
			req := cmd.Example()
			require.NoError(t, cmd.CheckDenyCode(cmd.DefaultDenyCode()), "the default deny code is allowed")

			allow := cmd.Fallback(req, false, 0)
			_, outcome, err := cmd.CheckReply(req, allow)
			require.NoError(t, err, "allow fallback %s", allow)
			assert.Equal(t, Allow, outcome)

			deny := cmd.Fallback(req, true, 0)
			_, outcome, err = cmd.CheckReply(req, deny)
			require.NoError(t, err, "deny fallback %s", deny)
			assert.Equal(t, Deny, outcome, "deny fallback %s", deny)

			// With a request that cannot be read, still a JSON reply
			// carrying the decision where the command has a code for it.
			for _, bad := range [][]byte{nil, []byte(`{"x":`), []byte(`[]`)} {
				var m map[string]any
				require.NoError(t, json.Unmarshal(cmd.Fallback(bad, false, 0), &m))
				assert.EqualValues(t, 0, m["ErrorCode"])
				assert.NotContains(t, m, "ResultItem")
				require.NoError(t, json.Unmarshal(cmd.Fallback(bad, true, 0), &m))
				assert.Equal(t, "OK", m["ActionStatus"])
				if cmd.Reply.Deny || cmd.Reply.Targets != nil {
					assert.EqualValues(t, 1, m["ErrorCode"], "deny without targets is ErrorCode 1")
				}
			}
		})
	}
}

func TestFallback_Bodies(t *testing.T) {
	c := New()
	get := func(name string) *Command { cmd, _ := c.Lookup(name); return cmd }

	cmd := get("Group.CallbackBeforeCreateGroup")
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":10150,"ErrorInfo":""}`, string(cmd.Fallback(cmd.Example(), true, 10150)))
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`, string(cmd.Fallback(cmd.Example(), false, 10150)))

	cmd = get("Sns.CallbackPrevFriendAdd")
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"id1","ResultCode":38123,"ResultInfo":""},{"To_Account":"id2","ResultCode":38123,"ResultInfo":""}]}`,
		string(cmd.Fallback(cmd.Example(), true, 38123)))

	cmd = get("Group.CallbackBeforeInviteJoinGroup")
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"","RefusedMembers_Account":["jared","tommy"]}`, string(cmd.Fallback(cmd.Example(), true, 0)))
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":""}`, string(cmd.Fallback([]byte("nope"), true, 0)))

	cmd = get("OfficialAccount.CallbackBeforeAddSubscriber")
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RefusedSubscribers_Account":["bob","peter"]}`, string(cmd.Fallback(cmd.Example(), true, 0)))

	cmd = get("Chatbot.OnC2CSignalMessage")
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","RspData":""}`, string(cmd.Fallback(nil, false, 0)))
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":1,"ErrorInfo":"","RspData":""}`, string(cmd.Fallback(nil, true, 0)))
}

func TestCheckDenyCode(t *testing.T) {
	c := New()
	for _, tc := range []struct {
		command string
		ok, bad []int
	}{
		{"C2C.CallbackBeforeSendMsg", []int{1, 120001, 125000, 130000}, []int{0, 2, 3, 120000, 130001, 10100}},
		{"Group.CallbackBeforeSendMsg", []int{1, 10100, 10200}, []int{0, 2, 10099, 10201, 120001}},
		{"OfficialAccount.CallbackBeforeSendMsg", []int{1, 120001}, []int{2, 10100}},
		{"Group.CallbackBeforeCreateGroup", []int{1, 10100}, []int{2, 120001}},
		{"Group.CallbackBeforeCreateTopic", []int{1, 10200}, []int{0}},
		{"Group.CallbackBeforeApplyJoinGroup", []int{1, 10150}, []int{10201}},
		{"Group.CallbackBeforeInviteJoinGroup", []int{1, 10100}, []int{0, 2}},
		{"OfficialAccount.CallbackBeforeCreateOfficialAccount", []int{1}, []int{0, 2, 10100, 120001}},
		{"OfficialAccount.CallbackBeforeAddSubscriber", []int{0}, []int{1, 2, 10100}},
		{"Sns.CallbackPrevFriendAdd", []int{38000, 38500, 39000}, []int{0, 1, 37999, 39001}},
		{"Sns.CallbackPrevFriendResponse", []int{38000}, []int{1}},
		{"Chatbot.OnC2CSignalMessage", []int{1}, []int{0, 2, 10100}},
	} {
		cmd, ok := c.Lookup(tc.command)
		require.True(t, ok, tc.command)
		for _, code := range tc.ok {
			assert.NoError(t, cmd.CheckDenyCode(code), "%s %d", tc.command, code)
		}
		for _, code := range tc.bad {
			assert.ErrorIs(t, cmd.CheckDenyCode(code), ErrBadCode, "%s %d", tc.command, code)
		}
	}
}

func TestCheckReply_RepeatedTarget(t *testing.T) {
	cmd, _ := New().Lookup("Sns.CallbackPrevFriendAdd")
	req := []byte(`{"CallbackCommand":"Sns.CallbackPrevFriendAdd","From_Account":"a","FriendItem":[{"To_Account":"b"},{"To_Account":"b"},{"To_Account":"c"}]}`)
	_, outcome, err := cmd.CheckReply(req, []byte(`{"ErrorCode":0,"ResultItem":[{"To_Account":"b","ResultCode":38000},{"To_Account":"c","ResultCode":38000}]}`))
	require.NoError(t, err, "a target the request repeats is answered once")
	assert.Equal(t, Deny, outcome)
	deny := cmd.Fallback(req, true, 0)
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","ResultItem":[{"To_Account":"b","ResultCode":38000,"ResultInfo":""},{"To_Account":"c","ResultCode":38000,"ResultInfo":""}]}`, string(deny))
}
