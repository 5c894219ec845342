package receiver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
)

// errLimiter fails every check with err.
type errLimiter struct{ err error }

func (l errLimiter) Allow(netip.Addr) (bool, time.Duration) { return true, 0 }
func (l errLimiter) AllowContext(context.Context, netip.Addr) (bool, time.Duration, error) {
	return false, 0, l.err
}

// panicDecider panics in Decide, and falls back like recDecider.
type panicDecider struct{ *recDecider }

func (panicDecider) Decide(context.Context, Event) Decision { panic("decider exploded") }

// TestHandler_BeforeCallbackRefusals: every refusal of a command the
// Decider answers, other than an authentication failure, is answered 200
// with the Decider's fallback (read from the body where it was not read
// yet) and audited with its own reason, status 200 and the fallback named.
func TestHandler_BeforeCallbackRefusals(t *testing.T) {
	cat := catalog.New()
	invite, _ := cat.Lookup("Group.CallbackBeforeInviteJoinGroup")
	body := string(invite.Example())
	query := queryFor(invite)
	denyAll := string(invite.Fallback(invite.Example(), true, 0))
	require.Contains(t, denyAll, `"RefusedMembers_Account":["jared","tommy"]`)
	denyBlind := string(invite.Fallback(nil, true, 0))

	for _, tc := range []struct {
		name   string
		mod    func(*Options, *recDecider)
		query  string
		body   string
		reason audit.Reason
		want   string
	}{
		{"over the decision rate", func(o *Options, _ *recDecider) {
			o.DecideLimiter = stubLimiter{deny: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
		}, query, body, audit.RateLimited, denyAll},
		{"shared state unavailable", func(o *Options, _ *recDecider) {
			o.DecideLimiter = errLimiter{fmt.Errorf("redis: %w", ErrStateUnavailable)}
		}, query, body, audit.RedisUnavailable, denyAll},
		{"shared state failing", func(o *Options, _ *recDecider) {
			o.DecideLimiter = errLimiter{errors.New("redis: protocol error")}
		}, query, body, audit.Internal, denyAll},
		{"a body that fails validation", nil, query, `{"CallbackCommand":"Group.CallbackBeforeInviteJoinGroup","GroupId":"@TGS#1"}`, audit.BadField, denyBlind},
		{"a body that is not JSON", nil, query, `{"CallbackCommand":`, audit.BadJSON, denyBlind},
		{"a body over the cap", func(o *Options, _ *recDecider) { o.MaxBody = 64 }, query, body, audit.BodyTooLarge, denyBlind},
		{"contenttype not json", nil, strings.Replace(query, "contenttype=json", "contenttype=xml", 1), body, audit.BadContentType, denyAll},
		{"a repeated parameter", nil, query + "&contenttype=json", body, audit.BadQuery, ""},
		{"ClientIP not an address", nil, strings.Replace(query, "ClientIP=127.0.0.1", "ClientIP=nope", 1), body, audit.BadClientIP, denyAll},
		{"a panic", func(o *Options, d *recDecider) { o.Decider = panicDecider{d} }, query, body, audit.Internal, denyAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := &recDecider{cat: cat}
			f := newFixture(t, func(o *Options) {
				o.Decider = dec
				if tc.mod != nil {
					tc.mod(o, dec)
				}
			})
			w := f.serve(f.request(tc.query, tc.body))
			recs := f.audit.records(t)
			require.Len(t, recs, 1, "exactly one audit record")
			assert.Equal(t, string(tc.reason), recs[0]["reason"])
			if tc.want == "" { // refused before the command is known: as for any command
				assert.Equal(t, http.StatusBadRequest, w.Code)
				return
			}
			assert.Equal(t, http.StatusOK, w.Code, "never 429, 503, 400 or 500 for an authentic before-callback")
			assert.Equal(t, tc.want, w.Body.String())
			assert.Empty(t, w.Header().Get("Retry-After"))
			assert.EqualValues(t, http.StatusOK, recs[0]["status"])
			assert.True(t, strings.HasSuffix(recs[0]["detail"].(string), " (answered fallback deny)"), recs[0]["detail"])
			assert.Equal(t, invite.Name, recs[0]["command"])
			assert.Equal(t, []audit.Reason{tc.reason}, dec.refused)
			assert.Equal(t, uint64(1), f.h.Stats().Rejected[tc.reason])
			assert.Empty(t, f.sink.got())
		})
	}
}

// TestHandler_BeforeCallbackAuthFailures: a caller that is not IM is
// refused as for any command, with no fallback.
func TestHandler_BeforeCallbackAuthFailures(t *testing.T) {
	cat := catalog.New()
	invite, _ := cat.Lookup("Group.CallbackBeforeInviteJoinGroup")
	for _, tc := range []struct {
		name   string
		query  string
		status int
		reason audit.Reason
	}{
		{"no Sign", queryFor(invite), http.StatusUnauthorized, audit.MissingSign},
		{"bad Sign", queryFor(invite) + "&Sign=" + strings.Repeat("0", 64) + "&RequestTime=1669872112", http.StatusUnauthorized, audit.BadSign},
		{"stale Sign", queryFor(invite) + "&Sign=" + strings.Repeat("0", 64) + "&RequestTime=1", http.StatusUnauthorized, audit.StaleSign},
		{"another SdkAppid", strings.Replace(queryFor(invite), testAppID, "1400000009", 1), http.StatusForbidden, audit.BadAppID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := &recDecider{cat: cat}
			f := newFixture(t, func(o *Options) { o.Decider = dec; withToken(o) })
			w := f.serve(f.request(tc.query, string(invite.Example())))
			assert.Equal(t, tc.status, w.Code)
			assert.Equal(t, failJSON(tc.reason), w.Body.String())
			assert.Empty(t, dec.refused, "no fallback for a caller that is not IM")
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		dec := &recDecider{cat: cat}
		f := newFixture(t, func(o *Options) { o.Decider = dec })
		r := f.request(queryFor(invite), string(invite.Example()))
		r.TLS.PeerCertificates = nil
		w := f.serve(r)
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Empty(t, dec.refused)
	})
}

// TestHandler_DecideLimiterReplacesTheLimiter: the per-ClientIP limit of
// after-callbacks does not apply to before-callbacks, which have their own.
func TestHandler_DecideLimiterReplacesTheLimiter(t *testing.T) {
	cat := catalog.New()
	invite, _ := cat.Lookup("Group.CallbackBeforeInviteJoinGroup")
	all := stubLimiter{deny: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}, wait: time.Second}
	dec := &recDecider{cat: cat}
	f := newFixture(t, func(o *Options) { o.Decider = dec; o.Limiter = all })
	w := f.serve(f.request(queryFor(invite), string(invite.Example())))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Len(t, dec.got(), 1, "decided: --rate does not limit before-callbacks")
	w = f.serve(f.request(goodQuery, goodBody))
	assert.Equal(t, http.StatusTooManyRequests, w.Code, "it limits the others")
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
}

// TestHandler_DecideEvent: the Decider gets IM's query without its
// signature, and an observe-mode answer is stored after it is sent.
func TestHandler_DecideEvent(t *testing.T) {
	cat := catalog.New()
	cmd, _ := cat.Lookup("C2C.CallbackBeforeSendMsg")
	dec := &recDecider{cat: cat, observe: true}
	f := newFixture(t, func(o *Options) { o.Decider = dec; withToken(o) })
	query := "sign=" + vectorSign + "&" + queryFor(cmd) + "&RequestId=abc&Request%54ime=" + vectorTime
	w := f.serve(f.request(query, string(cmd.Example())))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	evs := dec.got()
	require.Len(t, evs, 1)
	assert.Equal(t, queryFor(cmd)+"&RequestId=abc", evs[0].Query, "Sign and RequestTime left out under any spelling")
	assert.False(t, evs[0].Observe)
	sunk := f.sink.got()
	require.Len(t, sunk, 1, "observe mode: handed to the Sink")
	assert.True(t, sunk[0].Observe)
	assert.Equal(t, cmd.Example(), sunk[0].Body)
	assert.Equal(t, uint64(1), f.h.Stats().Observed)
}

func TestSignFree(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"Sign=x&RequestTime=1":             "",
		"a=1&Sign=x&b=2&RequestTime=1&c=3": "a=1&b=2&c=3",
		"a=1&&SIGN=x&requesttime=2":        "a=1",
		"a=1&Sig%6E=x":                     "a=1",
		"Signature=x&a=1":                  "Signature=x&a=1",
	} {
		assert.Equal(t, want, signFree(in), in)
	}
}
