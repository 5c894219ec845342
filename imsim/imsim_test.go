package imsim

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSign_OfficialVector(t *testing.T) {
	// The vector of IM's "callback configuration" page.
	assert.Equal(t, "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061", Sign([]byte("xxxxyyyy"), 1669872112))
}

func TestCallback_QueryInIMOrder(t *testing.T) {
	cb := Callback{AppID: testAppID, ClientIP: "36.112.173.178", OptPlatform: "iOS"}
	assert.Equal(t, "SdkAppid=1400000000&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=36.112.173.178&OptPlatform=iOS", cb.Query())

	cb.Token, cb.RequestTime, cb.OptPlatform = []byte("xxxxyyyy"), time.Unix(1669872112, 0), ""
	assert.Equal(t, "SdkAppid=1400000000&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=36.112.173.178"+
		"&Sign=17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061&RequestTime=1669872112", cb.Query())
}

func TestFriendDeleteBody_IsIMsShape(t *testing.T) {
	b := FriendDeleteBody(Pair{"id", "id1"}, Pair{"张三", `q"uote`})
	assert.Equal(t, `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"id","To_Account":"id1"},`+
		`{"From_Account":"张三","To_Account":"q\"uote"}]}`, string(b))
}

func TestClientIPFor(t *testing.T) {
	assert.Equal(t, "10.0.0.1", ClientIPFor(0, 0))
	assert.Equal(t, "10.0.0.1", ClientIPFor(12345, 1))
	assert.Equal(t, "10.0.1.0", ClientIPFor(255, 1000))
	assert.Equal(t, "10.0.0.1", ClientIPFor(1000, 1000), "wraps around")
	assert.Equal(t, "10.255.255.254", ClientIPFor(maxClientIPs-1, maxClientIPs))
	seen := map[string]bool{}
	for i := range int64(70000) {
		seen[ClientIPFor(i, 70000)] = true
	}
	assert.Len(t, seen, 70000, "n distinct addresses")
}

func TestSend_SignedCallbackAndReply(t *testing.T) {
	s := newIMServer(t, 0)
	s.token = []byte("xxxxyyyy")
	body := FriendDeleteBody(Pair{"a", "b"})
	r, err := Send(t.Context(), s.target(), Callback{AppID: testAppID, ClientIP: "1.2.3.4", OptPlatform: "Web",
		Token: s.token, Body: body})
	require.NoError(t, err)
	assert.True(t, r.OK())
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "req-1", r.RequestID)
	assert.Equal(t, string(okReply), string(r.Body))
	assert.Equal(t, uint16(tls.VersionTLS13), r.TLSVersion)

	got := requireSeen(t, s, 1)[0]
	assert.True(t, got.signOK, "Sign is sha256(token + RequestTime)")
	assert.True(t, got.hasCert, "the client certificate was presented")
	assert.Equal(t, string(body), got.body)
	assert.Equal(t, []string{"1.2.3.4"}, got.query["ClientIP"])
	assert.Equal(t, []string{"Web"}, got.query["OptPlatform"])
	assert.Equal(t, []string{"json"}, got.query["contenttype"])
	assert.Equal(t, []string{CommandFriendDelete}, got.query["CallbackCommand"])
}

func TestSend_RefusalIsAReplyNotAnError(t *testing.T) {
	s := newIMServer(t, 0)
	s.respond = func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"bad_sdkappid"}`))
		return true
	}
	r, err := Send(t.Context(), s.target(), Callback{AppID: "1", ClientIP: "1.2.3.4", Body: []byte(`{}`)})
	require.NoError(t, err)
	assert.False(t, r.OK())
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "FAIL", r.ActionStatus)
	assert.Equal(t, 1, r.ErrorCode)
	assert.Equal(t, "bad_sdkappid", r.ErrorInfo)
}

func TestSend_TransportFailures(t *testing.T) {
	s := newIMServer(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	noCert := s.target()
	noCert.TLS = &tls.Config{RootCAs: noCert.TLS.RootCAs}
	wrongName := s.target()
	wrongName.ServerName = "not-the-server.example"

	for _, tc := range []struct {
		name   string
		target Target
		kind   string
	}{
		{"connection refused", Target{Addr: closed}, "dial"},
		{"no client certificate", noCert, "tls"},
		{"server name mismatch", wrongName, "tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Send(t.Context(), tc.target, Callback{AppID: testAppID, ClientIP: "1.2.3.4", Body: []byte(`{}`)})
			require.Error(t, err)
			var oe *opError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, tc.kind, oe.kind, "error: %v", err)
		})
	}
}

func TestSend_BadTarget(t *testing.T) {
	_, err := Send(t.Context(), Target{Addr: "no-port"}, Callback{})
	assert.ErrorIs(t, err, ErrInvalidOptions)
	_, err = Send(t.Context(), Target{Addr: "127.0.0.1:1", Path: "x"}, Callback{})
	assert.ErrorIs(t, err, ErrInvalidOptions)
}

func TestLoad_KeepAliveOneConnectionPerWorker(t *testing.T) {
	s := newIMServer(t, 0)
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Mode: KeepAlive,
		Concurrency: 4, Requests: 200, DistinctBodies: true, OptPlatform: "iOS"})
	require.NoError(t, err)
	assert.Equal(t, int64(200), res.Requests)
	assert.Equal(t, int64(200), res.OK)
	assert.Equal(t, int64(200), res.Fresh)
	assert.Empty(t, res.Errors)
	assert.Equal(t, int64(4), res.Handshakes)
	assert.Equal(t, int64(0), res.Resumed)
	assert.Equal(t, int64(4), s.conns.Load(), "one connection per worker")

	bodies := map[string]bool{}
	for _, r := range requireSeen(t, s, 200) {
		bodies[r.body] = true
		assert.Equal(t, []string{"10.0.0.1"}, r.query["ClientIP"])
		assert.Equal(t, []string{testAppID}, r.query["SdkAppid"])
		assert.True(t, json.Valid([]byte(r.body)))
	}
	assert.Len(t, bodies, 200, "every body is new")
	assert.Positive(t, res.Latency.P50)
	assert.LessOrEqual(t, res.Latency.P50, res.Latency.P90)
	assert.LessOrEqual(t, res.Latency.P90, res.Latency.P99)
	assert.LessOrEqual(t, res.Latency.P99, res.Latency.Max)
	assert.Positive(t, res.Throughput())
}

func TestLoad_NewConnAndResume(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, mode := range []Mode{NewConn, Resume} {
			t.Run(mode.String()+"/"+tls.VersionName(version), func(t *testing.T) {
				s := newIMServer(t, version)
				res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Mode: mode,
					Concurrency: 2, Requests: 20, DistinctBodies: true})
				require.NoError(t, err)
				assert.Equal(t, int64(20), res.OK)
				assert.Equal(t, int64(20), s.conns.Load(), "a new connection per request")
				assert.Equal(t, int64(20), res.Handshakes+res.Resumed)
				resumedAtServer := 0
				for _, r := range requireSeen(t, s, 20) {
					assert.Equal(t, version, r.version)
					assert.True(t, r.hasCert, "a resumed session still carries the client certificate")
					if r.resumed {
						resumedAtServer++
					}
				}
				assert.Equal(t, int(res.Resumed), resumedAtServer, "the client's count matches the server's")
				if mode == NewConn {
					assert.Equal(t, int64(20), res.Handshakes, "every handshake is a full one")
				} else {
					// Each worker's first connection has no ticket yet.
					assert.GreaterOrEqual(t, res.Resumed, int64(18), "later connections resume")
				}
			})
		}
	}
}

func TestLoad_DistinctClientIPs(t *testing.T) {
	s := newIMServer(t, 0)
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 3,
		Requests: 30, DistinctBodies: true, ClientIPs: 10})
	require.NoError(t, err)
	assert.Equal(t, int64(30), res.OK)
	perIP := map[string]int{}
	for _, r := range requireSeen(t, s, 30) {
		perIP[r.query["ClientIP"][0]]++
	}
	assert.Len(t, perIP, 10)
	for ip, n := range perIP {
		assert.Equal(t, 3, n, "ClientIP %s", ip)
	}
}

func TestLoad_BodiesDuplicatesAndSameBody(t *testing.T) {
	t.Run("duplicates", func(t *testing.T) {
		s := newIMServer(t, 0)
		res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 2,
			Requests: 400, DistinctBodies: true, DuplicateRatio: 0.5, Pairs: 3, RunID: "dup"})
		require.NoError(t, err)
		bodies := map[string]int{}
		for _, r := range requireSeen(t, s, 400) {
			bodies[r.body]++
			assert.Equal(t, 3, strings.Count(r.body, "From_Account"), "three pairs per body")
			assert.Contains(t, r.body, `"From_Account":"dup-`, "account ids carry the run id")
		}
		assert.Equal(t, int(res.Fresh), len(bodies), "Fresh counts the distinct bodies")
		assert.InDelta(t, 200, len(bodies), 80, "about half of the requests repeat a body")
	})
	t.Run("same body", func(t *testing.T) {
		s := newIMServer(t, 0)
		res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 2, Requests: 10})
		require.NoError(t, err)
		bodies := map[string]bool{}
		for _, r := range requireSeen(t, s, 10) {
			bodies[r.body] = true
		}
		assert.Len(t, bodies, 1)
		assert.Equal(t, int64(1), res.Fresh)
		assert.Equal(t, int64(10), res.OK)
	})
}

func TestLoad_SignsEveryRequest(t *testing.T) {
	s := newIMServer(t, 0)
	s.token = []byte("load-token")
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Token: s.token,
		Concurrency: 2, Requests: 20, DistinctBodies: true})
	require.NoError(t, err)
	assert.Equal(t, int64(20), res.OK)
	for _, r := range requireSeen(t, s, 20) {
		assert.True(t, r.signOK, "request %v", r.query)
		assert.Len(t, r.query["Sign"], 1, "one Sign parameter")
	}
}

func TestLoad_ErrorsByKind(t *testing.T) {
	s := newIMServer(t, 0)
	s.respond = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Query().Get("ClientIP") {
		case "10.0.0.2":
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"rate_limited"}`))
			return true
		case "10.0.0.3":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
			return true
		case "10.0.0.4":
			panic(http.ErrAbortHandler) // the connection is cut without a reply
		}
		return false
	}
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 1,
		Requests: 40, DistinctBodies: true, ClientIPs: 4})
	require.NoError(t, err)
	assert.Equal(t, int64(40), res.Requests)
	assert.Equal(t, int64(10), res.OK)
	assert.Equal(t, map[string]int64{"http_429:rate_limited": 10, "http_502": 10, "io": 10}, res.Errors)
	assert.Equal(t, int64(30), res.Failed())
	// Request 4k+3 is cut; each is followed by a new connection but the last.
	assert.Equal(t, int64(10), res.Handshakes, "a new connection after each cut one")
}

func TestLoad_DurationEndsTheRun(t *testing.T) {
	s := newIMServer(t, 0)
	res, err := Load(t.Context(), LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 2,
		Duration: 300 * time.Millisecond, DistinctBodies: true})
	require.NoError(t, err)
	assert.Positive(t, res.OK)
	assert.GreaterOrEqual(t, res.Elapsed, 300*time.Millisecond)
	assert.Len(t, s.requests(), int(res.Requests))
}

func TestLoad_CancelStopsBlockedWorkers(t *testing.T) {
	s := newIMServer(t, 0)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.respond = func(http.ResponseWriter, *http.Request) bool { <-release; return false }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	var res Result
	var err error
	go func() {
		defer close(done)
		res, err = Load(ctx, LoadOptions{Target: s.target(), AppID: testAppID, Concurrency: 3, Duration: time.Hour})
	}()
	require.Eventually(t, func() bool { return len(s.requests()) == 3 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Load did not return after cancel")
	}
	require.NoError(t, err)
	assert.Empty(t, res.Errors, "requests cut short by the caller are not server failures")
	assert.Equal(t, int64(0), res.Requests)
}

func TestLoad_InvalidOptions(t *testing.T) {
	good := LoadOptions{Target: Target{Addr: "127.0.0.1:1"}, AppID: testAppID, Requests: 1}
	for _, tc := range []struct {
		name string
		mod  func(*LoadOptions)
	}{
		{"no app id", func(o *LoadOptions) { o.AppID = "" }},
		{"no end", func(o *LoadOptions) { o.Requests = 0 }},
		{"negative duration", func(o *LoadOptions) { o.Duration = -1 }},
		{"ratio above one", func(o *LoadOptions) { o.DuplicateRatio = 1.5 }},
		{"too many client ips", func(o *LoadOptions) { o.ClientIPs = 1 << 24 }},
		{"unknown mode", func(o *LoadOptions) { o.Mode = 7 }},
		{"long run id", func(o *LoadOptions) { o.RunID = strings.Repeat("x", 13) }},
		{"bad address", func(o *LoadOptions) { o.Target.Addr = "localhost" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			_, err := Load(t.Context(), o)
			assert.ErrorIs(t, err, ErrInvalidOptions)
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Load(ctx, good)
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{KeepAlive, NewConn, Resume} {
		got, err := ParseMode(m.String())
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	_, err := ParseMode("keep-alive")
	assert.ErrorIs(t, err, ErrInvalidOptions)
}
