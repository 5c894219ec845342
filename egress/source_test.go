package egress_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/egress"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// Both lists are fetched with a UserSig the fake verifies by recomputing
// it, merged and published; Status tells what was fetched.
func TestSource_FetchesBothListsWithAVerifiedUserSig(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("183.192.202.0/25", "127.0.0.2"))
	e.im.answer("6", okReply("43.132.0.0/24", "2001:db8::/64"))
	s := e.source(t)

	require.NoError(t, s.Refresh(t.Context()))

	calls, problems := e.im.seen()
	assert.Empty(t, problems, "every request passed the fake's checks")
	require.Len(t, calls, 2)
	assert.ElementsMatch(t, []string{"5", "6"}, []string{calls[0].netType, calls[1].netType})
	assert.NotEqual(t, calls[0].userSig, "", "a UserSig was sent")

	for _, a := range []string{"183.192.202.77", "127.0.0.2", "43.132.0.9", "2001:db8::1"} {
		assert.True(t, s.Contains(addr(a)), a)
	}
	assert.False(t, s.Contains(addr("127.0.0.1")))
	assert.Equal(t, 4, s.Set().Len())

	st := s.Status()
	assert.True(t, st.Ready)
	assert.False(t, st.Stale)
	assert.Equal(t, 4, st.Entries)
	assert.Equal(t, egress.ResultOK, st.LastResult)
	assert.Equal(t, e.clock.Now(), st.UpdatedAt)
	assert.Equal(t, "127.0.0.1", strings.Split(st.Host, ":")[0])
	assert.Equal(t, []egress.NetType{5, 6}, st.NetTypes)
	require.Len(t, st.Lists, 2)
	assert.Equal(t, 2, st.Lists[0].Entries)
	assert.Equal(t, 2, st.Lists[1].Entries)
	assert.Equal(t, uint64(1), st.Changes)

	loaded := e.logs.records(t, "im egress list loaded")
	require.Len(t, loaded, 1)
	assert.EqualValues(t, 4, loaded[0]["added_count"])
	e.noSecrets(t, "the log", e.logs.String())
}

func TestSource_OneNetType(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeOutside}
	e.im.answer("6", okReply("43.132.0.0/24"))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))
	calls, problems := e.im.seen()
	assert.Empty(t, problems)
	require.Len(t, calls, 1, "only the list asked for is fetched")
	assert.Equal(t, "6", calls[0].netType)
	assert.True(t, s.Contains(addr("43.132.0.1")))
}

// A changed answer takes effect at the next refresh, without a restart,
// and the change is logged with what was added and removed.
func TestSource_RefreshAppliesAndLogsChanges(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("10.1.0.0/24", "10.2.0.0/24"))
	e.im.answer("6", okReply("10.9.0.0/24"))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))
	require.True(t, s.Contains(addr("10.1.0.1")))

	e.im.answer("5", okReply("10.2.0.0/24", "10.3.0.0/24"))
	e.clock.Advance(egress.DefaultInterval)
	require.NoError(t, s.Refresh(t.Context()))
	assert.False(t, s.Contains(addr("10.1.0.1")), "removed")
	assert.True(t, s.Contains(addr("10.3.0.1")), "added")
	assert.True(t, s.Contains(addr("10.9.0.1")), "the other list is unchanged")

	changed := e.logs.records(t, "im egress list changed")
	require.Len(t, changed, 1)
	assert.Equal(t, []any{"10.3.0.0/24"}, changed[0]["added"])
	assert.Equal(t, []any{"10.1.0.0/24"}, changed[0]["removed"])
	assert.EqualValues(t, 3, changed[0]["entries"])

	// The same answer again changes nothing and logs nothing.
	require.NoError(t, s.Refresh(t.Context()))
	assert.Len(t, e.logs.records(t, "im egress list changed"), 1)
	assert.Equal(t, uint64(2), s.Status().Changes)
	assert.Equal(t, e.clock.Now(), s.Status().UpdatedAt, "a confirmed list is fresh")
}

// A large change is logged with at most 20 networks per side and the
// counts.
func TestSource_ChangeLogIsBounded(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
	var first, second []string
	for i := range 50 {
		first = append(first, netip.AddrFrom4([4]byte{10, 1, byte(i), 0}).String()+"/24")
		second = append(second, netip.AddrFrom4([4]byte{10, 2, byte(i), 0}).String()+"/24")
	}
	e.im.answer("5", okReply(first...))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))
	e.im.answer("5", okReply(second...))
	require.NoError(t, s.Refresh(t.Context()))

	changed := e.logs.records(t, "im egress list changed")
	require.Len(t, changed, 1)
	assert.EqualValues(t, 50, changed[0]["added_count"])
	assert.EqualValues(t, 50, changed[0]["removed_count"])
	assert.Len(t, changed[0]["added"], 20)
	assert.Len(t, changed[0]["removed"], 20)
}

// Keep-last-good: no kind of failed or empty answer changes the enforced
// list or its age; each is reported in Status, and none leaks a secret.
func TestSource_KeepsLastGoodListOnFailure(t *testing.T) {
	var many []string
	for i := range egress.MaxEntries + 1 {
		many = append(many, netip.AddrFrom4([4]byte{10, 50, byte(i >> 8), byte(i)}).String())
	}
	for _, tc := range []struct {
		name   string
		reply  reply
		result egress.Result
		check  func(t *testing.T, err error)
	}{
		{"HTTP 500", reply{status: 500, body: "oops"}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrBadResponse)
			assert.ErrorContains(t, err, "status 500")
		}},
		{"ErrorCode", reply{body: `{"ActionStatus":"FAIL","ErrorCode":70013,"ErrorInfo":"usersig is invalid\u0007"}`}, egress.ResultError, func(t *testing.T, err error) {
			var ae *egress.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, 70013, ae.Code)
			assert.Equal(t, "usersig is invalid?", ae.Info, "control characters replaced")
		}},
		{"ErrorInfo quoting the UserSig", reply{echo: true}, egress.ResultError, func(t *testing.T, err error) {
			var ae *egress.APIError
			require.ErrorAs(t, err, &ae)
			assert.Contains(t, ae.Info, "usersig <usersig> is invalid (<usersig>)")
		}},
		{"not OK without a code", reply{body: `{"ActionStatus":"FAIL","ErrorCode":0}`}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrBadResponse)
		}},
		{"garbage", reply{body: "<html>gateway</html>"}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrBadResponse)
		}},
		{"too large", reply{body: `{"ActionStatus":"OK","ErrorCode":0,"IPList":["` + strings.Repeat("1", egress.MaxResponseBytes) + `"]}`}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrResponseTooLarge)
		}},
		{"too many entries", okReply(many...), egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrTooManyEntries)
		}},
		{"redirect", reply{status: 307, header: map[string][]string{"Location": {"https://127.0.0.1:1/elsewhere"}}}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrBadResponse, "a redirect is not followed")
		}},
		{"timeout", reply{hang: true}, egress.ResultError, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, context.DeadlineExceeded)
		}},
		{"empty list", okReply(), egress.ResultEmpty, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrEmptyAnswer)
		}},
		{"no IPList", reply{body: `{"ActionStatus":"OK","ErrorCode":0}`}, egress.ResultEmpty, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrEmptyAnswer)
		}},
		{"only malformed entries", okReply("0.0.0.0/0", "not-an-ip", "10.0.0.0/8"), egress.ResultEmpty, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, egress.ErrEmptyAnswer)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
			if tc.reply.hang {
				e.opts.FetchTimeout = 200 * time.Millisecond // the fake never answers; any bound will do
			}
			e.im.answer("5", okReply("183.192.202.0/25"))
			s := e.source(t)
			require.NoError(t, s.Refresh(t.Context()))
			good := s.Status().UpdatedAt

			e.clock.Advance(egress.DefaultInterval)
			e.im.answer("5", tc.reply)
			err := s.Refresh(t.Context())
			require.Error(t, err)
			tc.check(t, err)

			assert.True(t, s.Contains(addr("183.192.202.1")), "the last good list is still enforced")
			st := s.Status()
			assert.Equal(t, 1, st.Entries)
			assert.True(t, st.Ready)
			assert.Equal(t, tc.result, st.LastResult)
			assert.Equal(t, good, st.UpdatedAt, "the list's age runs on")
			assert.Equal(t, egress.DefaultInterval.Seconds(), st.AgeSeconds)
			if tc.result == egress.ResultError {
				assert.Equal(t, uint64(1), st.Failures)
				assert.NotEmpty(t, st.LastError)
				assert.Len(t, e.logs.records(t, "im egress list: fetch failed; keeping the previous list"), 1)
			} else {
				assert.Equal(t, uint64(1), st.EmptyAnswers)
				assert.Len(t, e.logs.records(t, "im egress list: empty answer; keeping the previous list"), 1)
			}
			_, problems := e.im.seen()
			assert.Empty(t, problems)
			statusJSON, err := json.Marshal(st)
			require.NoError(t, err)
			e.noSecrets(t, "the status", string(statusJSON))
			e.noSecrets(t, "the log", e.logs.String())
		})
	}
}

// Malformed entries are skipped and counted; the rest is used.
func TestSource_SkipsMalformedEntries(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
	e.im.answer("5", reply{body: `{"ActionStatus":"OK","ErrorCode":0,"IPList":["183.192.202.0/25","0.0.0.0/0","nonsense",42,"127.0.0.2"]}`})
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))
	assert.Equal(t, 2, s.Set().Len())
	assert.False(t, s.Contains(addr("8.8.8.8")), "a too-broad entry does not open the list")
	st := s.Status()
	assert.Equal(t, 3, st.Skipped)
	assert.Equal(t, 3, st.Lists[0].Skipped)
	skipped := e.logs.records(t, "im egress list: entries skipped")
	require.Len(t, skipped, 1)
	assert.EqualValues(t, 3, skipped[0]["skipped"])
	assert.Equal(t, []any{`"0.0.0.0/0"`, `"nonsense"`, "42"}, skipped[0]["sample"])
}

// When one list fails and the other succeeds, the failed one keeps its last
// good entries and the other is updated.
func TestSource_PartialFailureKeepsThatListOnly(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("10.5.0.0/24"))
	e.im.answer("6", okReply("10.6.0.0/24"))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))

	e.im.answer("5", okReply("10.55.0.0/24"))
	e.im.answer("6", reply{status: 502})
	require.Error(t, s.Refresh(t.Context()))
	assert.True(t, s.Contains(addr("10.55.0.1")), "the list that answered is updated")
	assert.False(t, s.Contains(addr("10.5.0.1")))
	assert.True(t, s.Contains(addr("10.6.0.1")), "the list that failed keeps its last good entries")
	st := s.Status()
	assert.Equal(t, egress.ResultError, st.LastResult)
	assert.Equal(t, egress.ResultOK, st.Lists[0].LastResult)
	assert.Equal(t, egress.ResultError, st.Lists[1].LastResult)
	assert.Contains(t, st.LastError, "nettype 6")

	// One list empty and the other not: a success, and the empty one keeps
	// what it had.
	e.im.answer("6", okReply())
	require.NoError(t, s.Refresh(t.Context()))
	assert.True(t, s.Contains(addr("10.6.0.1")))
	assert.Equal(t, egress.ResultEmpty, s.Status().Lists[1].LastResult)
}

// The list is stale once its last successful fetch is older than
// StaleAfter intervals, and fresh again after a success.
func TestSource_StaleAfterIntervals(t *testing.T) {
	e := newEnv(t)
	e.opts.NetTypes = []egress.NetType{egress.NetTypeChina}
	e.opts.Interval = time.Minute
	e.opts.StaleAfter = 3
	e.im.answer("5", okReply("10.5.0.0/24"))
	s := e.source(t)
	require.NoError(t, s.Refresh(t.Context()))
	assert.Equal(t, float64(180), s.Status().StaleAfterSeconds)

	e.im.answer("5", reply{status: 503})
	e.clock.Advance(3 * time.Minute)
	require.Error(t, s.Refresh(t.Context()))
	assert.False(t, s.Status().Stale, "exactly three intervals old is not yet stale")

	e.clock.Advance(time.Second)
	assert.True(t, s.Status().Stale, "stale is computed when asked, without a refresh")
	require.Error(t, s.Refresh(t.Context()))
	st := s.Status()
	assert.True(t, st.Stale)
	assert.True(t, st.Ready, "a stale list is still enforced")
	assert.True(t, s.Contains(addr("10.5.0.1")))
	assert.Len(t, e.logs.records(t, "im egress list: stale"), 1)

	e.im.answer("5", okReply("10.5.0.0/24"))
	require.NoError(t, s.Refresh(t.Context()))
	assert.False(t, s.Status().Stale)
	assert.Len(t, e.logs.records(t, "im egress list: fresh again"), 1)
}

// Before the first successful fetch the list is empty: Contains admits
// nobody, the Source is not ready, WaitReady waits; a later success makes
// it ready.
func TestSource_NoListYet(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", reply{status: 500})
	e.im.answer("6", reply{status: 500})
	s := e.source(t)

	assert.False(t, s.Contains(addr("127.0.0.1")))
	st := s.Status()
	assert.False(t, st.Ready)
	assert.Equal(t, egress.ResultNone, st.LastResult)
	assert.True(t, st.UpdatedAt.IsZero())

	require.Error(t, s.Refresh(t.Context()))
	st = s.Status()
	assert.False(t, st.Ready)
	assert.False(t, st.Stale, "no list is not a stale list; Ready says it")
	assert.Zero(t, st.AgeSeconds)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, s.WaitReady(ctx), context.Canceled, "WaitReady gives up with its context")

	e.im.answer("5", okReply("10.5.0.0/24"))
	e.im.answer("6", okReply())
	require.NoError(t, s.Refresh(t.Context()))
	assert.NoError(t, s.WaitReady(ctx), "ready once a list is held, even with an ended context")
	assert.True(t, s.Status().Ready)
}

// Transport failures (nothing listening, an untrusted certificate) are
// failures like the others, and their error text never quotes the request
// URL, which carries the UserSig.
func TestClient_TransportErrorsHideTheURL(t *testing.T) {
	e := newEnv(t)
	e.im.answer("5", okReply("10.5.0.0/24"))

	untrusted := e.opts
	untrusted.RootCAs = nil // the system roots do not know the test CA
	c, err := egress.NewClient(untrusted)
	require.NoError(t, err)
	_, errTLS := c.Fetch(t.Context(), egress.NetTypeChina)
	require.Error(t, errTLS)
	assert.ErrorContains(t, errTLS, "certificate")

	e.im.srv.Close()
	c, err = egress.NewClient(e.opts)
	require.NoError(t, err)
	_, errDial := c.Fetch(t.Context(), egress.NetTypeChina)
	require.Error(t, errDial)

	for _, err := range []error{errTLS, errDial} {
		assert.NotContains(t, err.Error(), "usersig")
		assert.NotContains(t, err.Error(), "GetIPList?")
		e.noSecrets(t, "the error", err.Error())
	}
}

func TestNew_RejectsBadOptions(t *testing.T) {
	good := egress.Options{AppID: 1400000001, Identifier: "administrator", SecretKey: []byte("k"), Region: "singapore"}
	_, err := egress.New(good)
	require.NoError(t, err)
	for name, mutate := range map[string]func(*egress.Options){
		"no app id":          func(o *egress.Options) { o.AppID = 0 },
		"no identifier":      func(o *egress.Options) { o.Identifier = "" },
		"control characters": func(o *egress.Options) { o.Identifier = "admin\n" },
		"no key":             func(o *egress.Options) { o.SecretKey = nil },
		"no region":          func(o *egress.Options) { o.Region = "" },
		"plain http":         func(o *egress.Options) { o.BaseURL = "http://127.0.0.1:8443" },
		"base URL with path": func(o *egress.Options) { o.BaseURL = "https://127.0.0.1:8443/v4" },
		"SDK nettype":        func(o *egress.Options) { o.NetTypes = []egress.NetType{1} },
		"negative interval":  func(o *egress.Options) { o.Interval = -time.Second },
		"short UserSig":      func(o *egress.Options) { o.UserSigLifetime = time.Millisecond },
	} {
		o := good
		mutate(&o)
		_, err := egress.New(o)
		assert.ErrorIs(t, err, egress.ErrBadOption, name)
	}
	o := good
	o.Region = "mars"
	_, err = egress.New(o)
	assert.ErrorIs(t, err, egress.ErrUnknownRegion)
	assert.ErrorContains(t, err, "silicon-valley", "the error lists the known regions")
}

func TestRegionHost(t *testing.T) {
	for name, host := range map[string]string{
		"china": "console.tim.qq.com", "singapore": "adminapisgp.im.qcloud.com",
		"Seoul": "adminapikr.im.qcloud.com", "frankfurt": "adminapiger.im.qcloud.com",
		"silicon-valley": "adminapiusa.im.qcloud.com", "jakarta": "adminapiidn.im.qcloud.com",
		"tokyo": "adminapijpn.im.qcloud.com",
	} {
		got, err := egress.RegionHost(name)
		if assert.NoError(t, err, name) {
			assert.Equal(t, host, got, name)
		}
	}
	assert.Equal(t, "china", egress.Regions()[0])
	s, err := egress.New(egress.Options{AppID: 1, Identifier: "a", SecretKey: []byte("k"), Region: "jakarta"})
	require.NoError(t, err)
	assert.Equal(t, "adminapiidn.im.qcloud.com", s.Status().Host)
	assert.Equal(t, "jakarta", s.Status().Region)
}
