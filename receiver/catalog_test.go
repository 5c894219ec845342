package receiver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/certs/certstest"
	"github.com/imedge/imedge/internal/testkit"
)

// queryFor returns the query IM sends for cmd: ClientIP and OptPlatform
// only where the catalog says IM sends them.
func queryFor(cmd *catalog.Command) string {
	q := "SdkAppid=" + testAppID + "&CallbackCommand=" + cmd.Name + "&contenttype=json"
	if cmd.ClientIP {
		q += "&ClientIP=127.0.0.1"
	}
	if cmd.OptPlatform {
		q += "&OptPlatform=iOS"
	}
	return q
}

// recDecider answers every Before or Reply callback with the command's
// allow fallback as its decision, records what it was given, and gives the
// command's deny fallback (recording the reason) for a refused callback.
type recDecider struct {
	cat     *catalog.Catalog
	observe bool // answers in observe mode
	mu      sync.Mutex
	evs     []Event
	refused []audit.Reason
}

func (d *recDecider) Decide(_ context.Context, ev Event) Decision {
	d.mu.Lock()
	d.evs = append(d.evs, ev)
	d.mu.Unlock()
	cmd, _ := d.cat.Lookup(ev.Command)
	return Decision{Body: cmd.Fallback(ev.Body, false, 0), Observe: d.observe}
}

func (d *recDecider) Fallback(command string, body []byte, reason audit.Reason) Decision {
	d.mu.Lock()
	d.refused = append(d.refused, reason)
	d.mu.Unlock()
	cmd, _ := d.cat.Lookup(command)
	return Decision{Body: cmd.Fallback(body, true, 0), Fallback: "deny"}
}

func (d *recDecider) got() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Event(nil), d.evs...)
}

// httpsFixture serves a fixture's handler over real mutual TLS on
// loopback and returns a keep-alive client for it.
type httpsFixture struct {
	*fixture
	url    string
	client *http.Client
}

func newHTTPSFixture(t *testing.T, mod func(*Options)) *httpsFixture {
	t.Helper()
	f := newFixture(t, func(o *Options) {
		o.Now = nil
		if mod != nil {
			mod(o)
		}
	})
	ca := certstest.NewCA(t)
	srv := mtlsServer(t, f.h, ca, tls.RequireAndVerifyClientCert)
	cert := certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://tencent.im/callback")))
	return &httpsFixture{fixture: f, url: srv.URL, client: mtlsClient(t, ca, &cert)}
}

// post sends one callback and returns the status and reply body.
func (f *httpsFixture) post(t *testing.T, query string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/?"+query, bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestHandler_Corpus_Accepted sends every catalog command's example body
// over mutual TLS: each is answered OK and reaches the Sink (or, for a
// command whose reply IM reads, the Decider) byte for byte, with its
// command and with a ClientIP exactly where IM sends one.
func TestHandler_Corpus_Accepted(t *testing.T) {
	cat := catalog.New()
	dec := &recDecider{cat: cat}
	f := newHTTPSFixture(t, func(o *Options) { o.Catalog = cat; o.Decider = dec; o.Seen = newRecSeen() })
	sunk, decided := 0, 0
	for _, cmd := range cat.Commands() {
		t.Run(cmd.Name, func(t *testing.T) {
			body := cmd.Example()
			require.NotEmpty(t, body)
			status, reply := f.post(t, queryFor(&cmd), body)
			require.Equal(t, http.StatusOK, status, reply)

			var ev Event
			if cmd.Kind.Decides() {
				decided++
				evs := dec.got()
				require.Len(t, evs, decided)
				ev = evs[decided-1]
				assert.JSONEq(t, string(cmd.Fallback(body, false, 0)), reply, "the Decider's answer is relayed")
			} else {
				sunk++
				evs := f.sink.got()
				require.Len(t, evs, sunk)
				ev = evs[sunk-1]
				assert.Equal(t, okJSON, reply)
			}
			assert.Equal(t, body, ev.Body, "byte for byte")
			assert.Equal(t, cmd.Name, ev.Command)
			assert.True(t, ev.Known)
			assert.Equal(t, eventIDOf(testAppID, cmd.Name, string(body)), ev.ID)
			if cmd.ClientIP {
				assert.Equal(t, "127.0.0.1", ev.ClientIP)
			} else {
				assert.Empty(t, ev.ClientIP)
			}
			if cmd.OptPlatform {
				assert.Equal(t, "iOS", ev.OptPlatform)
			} else {
				assert.Empty(t, ev.OptPlatform)
			}
			assert.Equal(t, "spiffe://tencent.im/callback", ev.Identity)
		})
	}
	assert.Equal(t, cat.Len(), sunk+decided)
	assert.GreaterOrEqual(t, sunk, 49)
	assert.Equal(t, 12, decided)
	st := f.h.Stats()
	assert.Equal(t, uint64(sunk), st.Accepted)
	assert.Equal(t, uint64(decided), st.Decided)
	assert.Empty(t, st.Rejected)
	assert.Empty(t, f.audit.records(t))
}

// mutation is one way to break a command's example body.
type mutation struct {
	name   string
	body   []byte
	reason audit.Reason
	detail string // expected audit detail, when the mutation pins it
}

// mutations derives broken bodies from cmd's example and catalog entry:
// each required top-level field removed, each checked top-level field
// present given the wrong type, each account present made too long, a
// required field of an array's first element removed, array bounds
// crossed, and the body's CallbackCommand changed where it has one.
func mutations(t *testing.T, cmd *catalog.Command, maxAccount int) []mutation {
	t.Helper()
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(cmd.Example(), &top))
	with := func(k string, v json.RawMessage) []byte {
		m := make(map[string]json.RawMessage, len(top))
		for kk, vv := range top {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	var out []mutation
	if cmd.BodyCommand {
		out = append(out,
			mutation{name: "command differs", body: with("CallbackCommand", json.RawMessage(`"Other.CallbackCommand"`)), reason: audit.CommandMismatch},
			mutation{name: "command missing", body: with("CallbackCommand", nil), reason: audit.CommandMismatch})
	} else {
		out = append(out, mutation{name: "command present and differs", body: with("CallbackCommand", json.RawMessage(`"X.Y"`)), reason: audit.CommandMismatch})
	}
	for _, fl := range cmd.Fields {
		raw, present := top[fl.Name]
		if fl.Required {
			out = append(out, mutation{name: fl.Path + " missing", body: with(fl.Name, nil), reason: fl.Reason, detail: fl.Path + ": missing"})
		}
		if !present {
			continue
		}
		wrong := fl.Reason
		if fl.Account && fl.Type == catalog.String {
			wrong = audit.BadAccount
		}
		out = append(out, mutation{name: fl.Path + " wrong type", body: with(fl.Name, json.RawMessage(`true`)), reason: wrong})
		if fl.Account && fl.Type == catalog.String {
			limit := maxAccount
			if fl.MaxBytes > 0 {
				limit = fl.MaxBytes
			}
			long, _ := json.Marshal(strings.Repeat("a", limit+1))
			out = append(out, mutation{name: fl.Path + " too long", body: with(fl.Name, long), reason: audit.BadAccount, detail: fl.Path + ": too long"})
		}
		if fl.Type != catalog.Objects {
			continue
		}
		var elems []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &elems), fl.Path)
		if fl.MinItems > 0 {
			out = append(out, mutation{name: fl.Path + " empty", body: with(fl.Name, json.RawMessage(`[]`)), reason: fl.Reason})
		}
		if fl.MaxItems < catalog.MaxItems {
			many := make([]map[string]json.RawMessage, fl.MaxItems+1)
			for i := range many {
				many[i] = elems[0]
			}
			b, _ := json.Marshal(many)
			out = append(out, mutation{name: fl.Path + " too many", body: with(fl.Name, b), reason: fl.Reason, detail: fl.Path + ": too many elements"})
		}
		out = append(out, mutation{name: fl.Path + " element not an object", body: with(fl.Name, json.RawMessage(`[1]`)), reason: fl.Reason})
		for _, sub := range fl.Fields {
			if !sub.Required || len(elems) == 0 {
				continue
			}
			first := make(map[string]json.RawMessage)
			for k, v := range elems[0] {
				first[k] = v
			}
			delete(first, sub.Name)
			b, _ := json.Marshal(append([]map[string]json.RawMessage{first}, elems[1:]...))
			out = append(out, mutation{name: sub.Path + " missing", body: with(fl.Name, b), reason: sub.Reason, detail: sub.Path + ": missing"})
		}
	}
	return out
}

// TestHandler_Corpus_MutationsRefused breaks every catalog command's
// example in every way the catalog describes: each is refused 400 with the
// right reason and exactly one audit record, and nothing reaches the Sink.
// A command whose reply IM acts on is answered 200 with its fallback
// instead (refusing at the edge is not a decision), audited the same way.
func TestHandler_Corpus_MutationsRefused(t *testing.T) {
	cat := catalog.New()
	dec := &recDecider{cat: cat}
	f := newHTTPSFixture(t, func(o *Options) { o.Catalog = cat; o.Decider = dec })
	total := 0
	for _, cmd := range cat.Commands() {
		muts := mutations(t, &cmd, DefaultMaxAccountBytes)
		require.GreaterOrEqual(t, len(muts), 2, "%s has mutations", cmd.Name)
		for _, m := range muts {
			t.Run(cmd.Name+"/"+m.name, func(t *testing.T) {
				before := f.audit.lines()
				status, reply := f.post(t, queryFor(&cmd), m.body)
				wantStatus, wantReply, suffix := http.StatusBadRequest, failJSON(m.reason), ""
				if cmd.Kind.Decides() {
					wantStatus, wantReply, suffix = http.StatusOK, string(cmd.Fallback(m.body, true, 0)), " (answered fallback deny)"
				}
				require.Equal(t, wantStatus, status, "body %s", m.body)
				assert.Equal(t, wantReply, reply)
				recs := f.audit.recordsFrom(t, before)
				require.Len(t, recs, 1, "exactly one audit record")
				rec := recs[0]
				assert.Equal(t, string(m.reason), rec["reason"])
				assert.Equal(t, cmd.Name, rec["command"])
				assert.EqualValues(t, wantStatus, rec["status"])
				if m.detail != "" {
					assert.Equal(t, m.detail+suffix, rec["detail"])
				}
				assert.NotContains(t, rec["detail"], "aaaaaaaa", "the detail never echoes the body")
			})
			total++
		}
	}
	assert.Empty(t, f.sink.got(), "nothing refused reached the Sink")
	assert.Empty(t, dec.got(), "nor the Decider")
	assert.Equal(t, uint64(total), f.h.Stats().Rejected[audit.BadField]+f.h.Stats().Rejected[audit.BadAccount]+
		f.h.Stats().Rejected[audit.BadPairList]+f.h.Stats().Rejected[audit.CommandMismatch])
}

func TestHandler_FieldDetails(t *testing.T) {
	const full = "Group.CallbackAfterGroupFull"
	query := q("CallbackCommand=" + full)
	for _, tc := range []struct {
		name, body string
		reason     audit.Reason
		detail     string
	}{
		{"id not a string", `{"CallbackCommand":"` + full + `","GroupId":7}`, audit.BadField, "GroupId: not a string"},
		{"id empty", `{"CallbackCommand":"` + full + `","GroupId":""}`, audit.BadField, "GroupId: empty"},
		{"id too long", `{"CallbackCommand":"` + full + `","GroupId":"` + strings.Repeat("g", catalog.MaxIDBytes+1) + `"}`, audit.BadField, "GroupId: too long"},
		{"id not UTF-8", "{\"CallbackCommand\":\"" + full + "\",\"GroupId\":\"@TGS#\xff\"}", audit.BadField, "GroupId: not valid UTF-8"},
		{"id case-folded twin", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","groupid":"x"}`, audit.BadJSON, "key differs from a checked key only in case"},
		{"id null is missing", `{"CallbackCommand":"` + full + `","GroupId":null}`, audit.BadField, "GroupId: not a string"},
		{"time not digits", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","EventTime":"12a"}`, audit.BadField, "EventTime: not a number or a string of digits"},
		{"time empty string", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","EventTime":""}`, audit.BadField, "EventTime: not a number or a string of digits"},
		{"time negative string", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","EventTime":"-1"}`, audit.BadField, "EventTime: not a number or a string of digits"},
		{"time too many digits", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","EventTime":"123456789012345678901"}`, audit.BadField, "EventTime: not a number or a string of digits"},
		{"time bool", `{"CallbackCommand":"` + full + `","GroupId":"@TGS#1","EventTime":true}`, audit.BadField, "EventTime: not a number or a string of digits"},
		{"account wins over field", `{"CallbackCommand":"Group.CallbackAfterChangeGroupOwner","GroupId":5,"NewOwner_Account":""}`, audit.BadAccount, "NewOwner_Account: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			qq := query
			if strings.Contains(tc.body, "ChangeGroupOwner") {
				qq = q("CallbackCommand=Group.CallbackAfterChangeGroupOwner")
			}
			w := f.serve(f.request(qq, tc.body))
			require.Equal(t, http.StatusBadRequest, w.Code)
			assert.Equal(t, failJSON(tc.reason), w.Body.String())
			recs := f.audit.records(t)
			require.Len(t, recs, 1)
			assert.Equal(t, tc.detail, recs[0]["detail"])
		})
	}
}

func TestHandler_EventTimeForms(t *testing.T) {
	const full = "Group.CallbackAfterGroupFull"
	for _, et := range []string{`1670574414123`, `"1670574414123"`, `1670574414`, `"0"`, `-1`, `1.5e3`, `null`, `"\u0031\u0036"`} {
		t.Run(et, func(t *testing.T) {
			f := newFixture(t, nil)
			body := `{"CallbackCommand":"` + full + `","GroupId":"@TGS#2J4SZEAEL","EventTime":` + et + `}`
			w := f.serve(f.request(q("CallbackCommand="+full), body))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			got := f.sink.got()
			require.Len(t, got, 1)
			assert.Equal(t, []byte(body), got[0].Body)
		})
	}
}

func TestHandler_EmptyPairListForEveryPairListCommand(t *testing.T) {
	for _, name := range []string{"Sns.CallbackFriendAdd", CommandFriendDelete, "Sns.CallbackBlackListAdd", "Sns.CallbackBlackListDelete"} {
		t.Run(name, func(t *testing.T) {
			seen := newRecSeen()
			f := newFixture(t, func(o *Options) { o.Seen = seen })
			w := f.serve(f.request(q("CallbackCommand="+name), `{"CallbackCommand":"`+name+`","PairList":[]}`))
			require.Equal(t, http.StatusOK, w.Code)
			assert.Equal(t, okJSON, w.Body.String())
			assert.Empty(t, f.sink.got(), "an empty PairList carries nothing to forward")
			assert.Equal(t, uint64(1), f.h.Stats().Empty)
			claims, _ := seen.calls()
			assert.Empty(t, claims)
		})
	}
}

// denyAll is a Limiter that refuses every address, valid or not.
type denyAll struct{}

func (denyAll) Allow(netip.Addr) (bool, time.Duration) { return false, time.Second }

// TestHandler_ClientIPLessFamilies: the families IM triggers itself are
// accepted without ClientIP and not limited per client; a ClientIP they do
// carry must still be an address, and then it is limited like any other.
func TestHandler_ClientIPLessFamilies(t *testing.T) {
	cat := catalog.New()
	for _, name := range []string{"Push.OfflinePush", "Push.AllMemberPush", "ContentCallback.ResultNotify", "Alert.RequestOverLimit"} {
		cmd, ok := cat.Lookup(name)
		require.True(t, ok)
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Limiter = denyAll{} })
			body := string(cmd.Example())
			for range 3 {
				w := f.serve(f.request(queryFor(cmd), body))
				require.Equal(t, http.StatusOK, w.Code, "no per-client limit without a ClientIP: %s", w.Body.String())
			}
			got := f.sink.got()
			require.Len(t, got, 3, "no Seen configured: each copy is forwarded")
			assert.Empty(t, got[0].ClientIP)
			assert.Equal(t, []byte(body), got[0].Body, "a Push batch is one event, as IM sent it")

			w := f.serve(f.request(queryFor(cmd)+"&ClientIP=not-an-ip", body))
			assert.Equal(t, http.StatusBadRequest, w.Code)
			assert.Equal(t, failJSON(audit.BadClientIP), w.Body.String())

			w = f.serve(f.request(queryFor(cmd)+"&ClientIP=10.0.0.1", body))
			assert.Equal(t, http.StatusTooManyRequests, w.Code, "a ClientIP that is sent is limited")
			assert.Equal(t, map[audit.Reason]uint64{audit.BadClientIP: 1, audit.RateLimited: 1}, f.h.Stats().Rejected)
		})
	}
	t.Run("other families still need a ClientIP", func(t *testing.T) {
		f := newFixture(t, nil)
		cmd, _ := cat.Lookup("Group.CallbackAfterGroupFull")
		w := f.serve(f.request(strings.Replace(queryFor(cmd), "&ClientIP=127.0.0.1", "", 1), string(cmd.Example())))
		assert.Equal(t, http.StatusBadRequest, w.Code)
		assert.Equal(t, failJSON(audit.BadClientIP), w.Body.String())
	})
}

// TestHandler_PushBatchBounds: a Push batch holds 1 to 100 events.
func TestHandler_PushBatchBounds(t *testing.T) {
	ev := `{"CallbackCommand":"Push.OfflinePush","EventType":1,"EventTime":1557481127,"To_Account":"user2"}`
	batch := func(n int) string {
		return `{"Events":[` + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + `]}`
	}
	query := "SdkAppid=" + testAppID + "&CallbackCommand=Push.OfflinePush&contenttype=json"
	for n, want := range map[int]int{0: 400, 1: 200, 100: 200, 101: 400} {
		f := newFixture(t, nil)
		w := f.serve(f.request(query, batch(n)))
		assert.Equal(t, want, w.Code, "%d events", n)
	}
}

func TestHandler_UnknownCommands(t *testing.T) {
	const name = "Group.CallbackAfterSomethingNew"
	query := q("CallbackCommand=" + name)
	body := `{"CallbackCommand":"` + name + `","GroupId":7,"Anything":[1,2]}`

	t.Run("forwarded by default, warned once a minute", func(t *testing.T) {
		var logs auditBuf
		clk := testkit.NewClock(testNow)
		f := newFixture(t, func(o *Options) {
			o.Now = clk.Now
			o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		})
		for range 3 {
			w := f.serve(f.request(query, body))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		}
		clk.Advance(time.Minute)
		w := f.serve(f.request(query, `{"other":true}`))
		require.Equal(t, http.StatusOK, w.Code, "no CallbackCommand in the body is fine")
		w = f.serve(f.request(q("CallbackCommand=Group.CallbackAfterOtherNew", "-ClientIP"), `{}`))
		require.Equal(t, http.StatusOK, w.Code, "an unknown command may come without ClientIP")

		got := f.sink.got()
		require.Len(t, got, 5)
		assert.Equal(t, name, got[0].Command)
		assert.False(t, got[0].Known)
		assert.Equal(t, []byte(body), got[0].Body)
		assert.Empty(t, got[4].ClientIP)
		assert.Equal(t, uint64(5), f.h.Stats().Unknown)
		assert.Equal(t, 3, strings.Count(logs.String(), "callback command not in the catalog"),
			"one warning per command per minute: %s", logs.String())
	})
	t.Run("generic checks", func(t *testing.T) {
		for b, reason := range map[string]audit.Reason{
			`{"CallbackCommand":"Group.CallbackAfterOther"}`: audit.CommandMismatch,
			`{"CallbackCommand":7}`:                          audit.CommandMismatch,
			`{"callbackcommand":"x"}`:                        audit.BadJSON,
			`[1]`:                                            audit.BadJSON,
			`{"a":1,"a":2}`:                                  audit.BadJSON,
		} {
			f := newFixture(t, nil)
			w := f.serve(f.request(query, b))
			assert.Equal(t, failJSON(reason), w.Body.String(), b)
		}
	})
	t.Run("refused under refuse", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.UnknownCommands = UnknownRefuse })
		w := f.serve(f.request(query, body))
		assert.Equal(t, http.StatusBadRequest, w.Code)
		assert.Equal(t, failJSON(audit.UnsupportedCommand), w.Body.String())
		assert.Zero(t, f.h.Stats().Unknown)
	})
	t.Run("only plain command names", func(t *testing.T) {
		f := newFixture(t, nil)
		for _, bad := range []string{"Group.Callback%0D%0AX-Evil:1", "NoDot", ".Lead", "Trail.", "A.B.C", "Group.Caf%C3%A9",
			"Group." + strings.Repeat("x", 100)} {
			w := f.serve(f.request(q("CallbackCommand="+bad), `{}`))
			assert.Equal(t, failJSON(audit.UnsupportedCommand), w.Body.String(), bad)
		}
		assert.Zero(t, f.h.Stats().Unknown, "none was forwarded")
		assert.Empty(t, f.sink.got())
	})
	t.Run("only where the patterns match", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Commands = []string{"Group.*"} })
		assert.Equal(t, http.StatusOK, f.serve(f.request(query, body)).Code)
		w := f.serve(f.request(q("CallbackCommand=Sns.CallbackSomethingNew"), `{}`))
		assert.Equal(t, failJSON(audit.UnsupportedCommand), w.Body.String())
	})
}

func TestHandler_CommandsPatterns(t *testing.T) {
	cat := catalog.New()
	send := func(t *testing.T, f *fixture, name string) int {
		cmd, ok := cat.Lookup(name)
		require.True(t, ok)
		return f.serve(f.request(queryFor(cmd), string(cmd.Example()))).Code
	}
	t.Run("family glob", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Commands = []string{"Group.*", CommandFriendDelete} })
		assert.Equal(t, 200, send(t, f, "Group.CallbackAfterSendMsg"))
		assert.Equal(t, 200, send(t, f, CommandFriendDelete))
		assert.Equal(t, 400, send(t, f, "Sns.CallbackFriendAdd"))
		assert.Equal(t, 400, send(t, f, "C2C.CallbackAfterSendMsg"))
		assert.Equal(t, 400, send(t, f, "Group.CallbackBeforeSendMsg"), "before commands need a Decider")
		assert.Equal(t, map[audit.Reason]uint64{audit.UnsupportedCommand: 3}, f.h.Stats().Rejected)
	})
	t.Run("star without a Decider serves after commands only", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Commands = []string{"*"} })
		for _, cmd := range cat.Commands() {
			want := 200
			if cmd.Kind.Decides() {
				want = 400
			}
			assert.Equal(t, want, send(t, f, cmd.Name), cmd.Name)
		}
	})
	t.Run("exact before command with a Decider", func(t *testing.T) {
		dec := &recDecider{cat: cat}
		f := newFixture(t, func(o *Options) { o.Commands = []string{"C2C.CallbackBeforeSendMsg"}; o.Decider = dec })
		assert.Equal(t, 200, send(t, f, "C2C.CallbackBeforeSendMsg"))
		assert.Equal(t, 400, send(t, f, "C2C.CallbackAfterSendMsg"))
		assert.Len(t, dec.got(), 1)
		assert.Empty(t, f.sink.got(), "a decided callback is not stored")
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []Options{
			{AppID: "1", Sink: &memSink{}, Commands: []string{"Group.Callback*"}},
			{AppID: "1", Sink: &memSink{}, Commands: []string{""}},
		} {
			_, err := New(o)
			assert.ErrorIs(t, err, catalog.ErrBadPattern)
		}
		_, err := New(Options{AppID: "1", Sink: &memSink{}, UnknownCommands: "drop"})
		assert.ErrorIs(t, err, ErrBadMode)
		_, err = New(Options{AppID: "1", Sink: &memSink{}, Validation: "lenient"})
		assert.ErrorIs(t, err, ErrBadMode)
	})
	t.Run("a pattern naming no catalog command is logged", func(t *testing.T) {
		var logs auditBuf
		_, err := New(Options{AppID: "1", Sink: &memSink{}, Commands: []string{"Group.CallbackAfterSomethingNew", "Group.*"},
			Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		require.NoError(t, err)
		assert.Equal(t, 1, strings.Count(logs.String(), "command pattern matches no catalog command"))
	})
}

func TestHandler_WarnMode(t *testing.T) {
	const full = "Group.CallbackAfterGroupFull"
	query := q("CallbackCommand=" + full)
	bad := `{"CallbackCommand":"` + full + `","GroupId":7}`

	strict := newFixture(t, nil)
	assert.Equal(t, failJSON(audit.BadField), strict.serve(strict.request(query, bad)).Body.String(), "strict is the default")

	var logs auditBuf
	f := newFixture(t, func(o *Options) {
		o.Validation = ValidateWarn
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	for _, b := range []string{bad, `{"CallbackCommand":"` + full + `","GroupId":8}`, `{"CallbackCommand":"` + full + `"}`} {
		w := f.serve(f.request(query, b))
		assert.Equal(t, http.StatusOK, w.Code, "forwarded anyway: %s", b)
	}
	w := f.serve(f.request(q("CallbackCommand="+CommandFriendDelete), `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":""}]}`))
	assert.Equal(t, http.StatusOK, w.Code, "bad_pairlist and bad_account too")
	assert.Len(t, f.sink.got(), 4)
	assert.Equal(t, uint64(4), f.h.Stats().Nonconforming)
	assert.Equal(t, 2, strings.Count(logs.String(), "breaks its catalog entry"), "once a minute per command: %s", logs.String())
	assert.Contains(t, logs.String(), `"detail":"GroupId: not a string"`)

	for b, reason := range map[string]audit.Reason{
		`{"CallbackCommand":"` + full + `","GroupId":7`:  audit.BadJSON,
		`{"CallbackCommand":"Other","GroupId":"@TGS#1"}`: audit.CommandMismatch,
	} {
		w := f.serve(f.request(query, b))
		assert.Equal(t, failJSON(reason), w.Body.String(), "still refused in warn mode: %s", b)
	}
}

// TestHandler_DedupeAndLimitAcrossCommands: de-duplication keys on the
// command as well as the body, and the per-ClientIP limit counts every
// command of that client together.
func TestHandler_DedupeAndLimitAcrossCommands(t *testing.T) {
	cat := catalog.New()
	names := []string{"C2C.CallbackAfterSendMsg", "Group.CallbackAfterSendMsg", CommandFriendDelete}

	t.Run("dedupe", func(t *testing.T) {
		f := newHTTPSFixture(t, func(o *Options) { o.Seen = newRecSeen() })
		for range 2 {
			for _, n := range names {
				cmd, _ := cat.Lookup(n)
				status, reply := f.post(t, queryFor(cmd), cmd.Example())
				require.Equal(t, http.StatusOK, status, reply)
			}
		}
		// The same body under another (unknown) command is another event.
		cmd, _ := cat.Lookup(names[0])
		status, _ := f.post(t, q("CallbackCommand=C2C.CallbackAfterSendMsgV2"), bytes.Replace(cmd.Example(), []byte(names[0]), []byte("C2C.CallbackAfterSendMsgV2"), 1))
		require.Equal(t, http.StatusOK, status)
		st := f.h.Stats()
		assert.Equal(t, uint64(4), st.Accepted)
		assert.Equal(t, uint64(3), st.Duplicates)
	})
	t.Run("rate limit", func(t *testing.T) {
		clk := testkit.NewClock(testNow)
		lim, err := NewClientLimiter(LimiterOptions{Rate: 1, Burst: 2, Now: clk.Now})
		require.NoError(t, err)
		f := newHTTPSFixture(t, func(o *Options) { o.Limiter = lim })
		var codes []int
		for _, n := range names {
			cmd, _ := cat.Lookup(n)
			status, _ := f.post(t, queryFor(cmd), cmd.Example())
			codes = append(codes, status)
		}
		assert.Equal(t, []int{200, 200, 429}, codes, "one bucket per ClientIP across commands")
		push, _ := cat.Lookup("Push.OfflinePush")
		status, _ := f.post(t, queryFor(push), push.Example())
		assert.Equal(t, http.StatusOK, status, "a Push batch has no ClientIP to limit")
	})
}

// TestHandler_Decider: a Before command goes to the Decider after
// validation, is answered with its reply, and is neither de-duplicated nor
// stored; a Before command that fails validation never reaches Decide and
// is answered with the Decider's fallback.
func TestHandler_Decider(t *testing.T) {
	cat := catalog.New()
	dec := &recDecider{cat: cat}
	seen := newRecSeen()
	f := newFixture(t, func(o *Options) { o.Decider = dec; o.Seen = seen })
	cmd, _ := cat.Lookup("Sns.CallbackPrevFriendAdd")
	for range 2 {
		w := f.serve(f.request(queryFor(cmd), string(cmd.Example())))
		require.Equal(t, http.StatusOK, w.Code)
		assert.JSONEq(t, string(cmd.Fallback(cmd.Example(), false, 0)), w.Body.String())
	}
	assert.Len(t, dec.got(), 2, "each copy is decided")
	claims, _ := seen.calls()
	assert.Empty(t, claims)
	assert.Empty(t, f.sink.got())

	bad := `{"CallbackCommand":"Sns.CallbackPrevFriendAdd","From_Account":"id"}`
	w := f.serve(f.request(queryFor(cmd), bad))
	assert.Equal(t, http.StatusOK, w.Code, "refusing at the edge is not a decision")
	assert.Equal(t, string(cmd.Fallback([]byte(bad), true, 0)), w.Body.String())
	assert.Len(t, dec.got(), 2)
	assert.Equal(t, []audit.Reason{audit.BadField}, dec.refused)
	assert.Equal(t, uint64(2), f.h.Stats().Decided)
	assert.Equal(t, uint64(1), f.h.Stats().Rejected[audit.BadField])
}

func TestWarnGate(t *testing.T) {
	g := warnGate{interval: time.Minute}
	now := testNow
	assert.True(t, g.allow("a", now))
	assert.False(t, g.allow("a", now.Add(59*time.Second)))
	assert.True(t, g.allow("b", now))
	assert.True(t, g.allow("a", now.Add(time.Minute)))
	for i := range maxWarnKeys {
		g.allow(fmt.Sprint("k", i), now.Add(time.Minute))
	}
	assert.LessOrEqual(t, len(g.last), maxWarnKeys, "bounded")
	assert.False(t, g.allow("new", now.Add(time.Minute)), "full of fresh keys: skipped")
	assert.True(t, g.allow("new", now.Add(3*time.Minute)), "stale keys make room")
	assert.LessOrEqual(t, len(g.last), maxWarnKeys)
}

func TestValidate_NoAllocations(t *testing.T) {
	cat := catalog.New()
	s := new(scanner)
	for _, cmd := range cat.Commands() {
		rule := compileCommand(&cmd, DefaultMaxAccountBytes)
		body := cmd.Example()
		s.validate(body, rule, cmd.Name) // warm the scratch buffers
		allocs := testing.AllocsPerRun(20, func() {
			if v := s.validate(body, rule, cmd.Name); v.reason != "" {
				panic(v.detail)
			}
		})
		assert.Zero(t, allocs, cmd.Name)
	}
}

// The access log has one line per callback, with its outcome.
func TestHandler_AccessLog(t *testing.T) {
	var logs auditBuf
	f := newFixture(t, func(o *Options) { o.AccessLog = slog.New(slog.NewJSONHandler(&logs, nil)); o.Seen = newRecSeen() })
	cmd, _ := catalog.New().Lookup(CommandFriendDelete)
	query := queryFor(cmd)
	body := string(cmd.Example())
	require.Equal(t, http.StatusOK, f.serve(f.request(query, body)).Code)
	require.Equal(t, http.StatusOK, f.serve(f.request(query, body)).Code)
	require.Equal(t, http.StatusOK, f.serve(f.request(query, `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[]}`)).Code)
	require.Equal(t, http.StatusBadRequest, f.serve(f.request(query, `{"CallbackCommand":"Sns.CallbackFriendDelete"}`)).Code)

	var outcomes []string
	for _, m := range testkit.JSONLines(t, logs.String()) {
		assert.Equal(t, "callback", m["msg"])
		assert.Equal(t, CommandFriendDelete, m["command"])
		assert.NotEmpty(t, m["request_id"])
		assert.Regexp(t, `^[0-9.]+[µnm]?s$`, m["latency"])
		outcomes = append(outcomes, m["outcome"].(string))
	}
	assert.Equal(t, []string{"accepted", "duplicate", "empty", "refused"}, outcomes)
}
