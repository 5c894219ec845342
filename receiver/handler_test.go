package receiver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
)

const (
	vectorToken = "xxxxyyyy"
	vectorTime  = "1669872112"
	vectorSign  = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
)

// q returns goodQuery with changes: "Name=value" replaces the parameter of
// that exact name (or is appended when there is none), "-Name" removes it,
// and "+Name=value" always appends.
func q(changes ...string) string {
	params := strings.Split(goodQuery, "&")
	for _, c := range changes {
		switch {
		case strings.HasPrefix(c, "-"):
			for i, p := range params {
				if strings.HasPrefix(p, c[1:]+"=") {
					params = append(params[:i], params[i+1:]...)
					break
				}
			}
		case strings.HasPrefix(c, "+"):
			params = append(params, c[1:])
		default:
			name, _, _ := strings.Cut(c, "=")
			replaced := false
			for i, p := range params {
				if strings.HasPrefix(p, name+"=") {
					params[i], replaced = c, true
					break
				}
			}
			if !replaced {
				params = append(params, c)
			}
		}
	}
	return strings.Join(params, "&")
}

// pairs builds a FriendDelete body from from/to account pairs.
func pairs(accounts ...string) string {
	var b strings.Builder
	b.WriteString(`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[`)
	for i := 0; i+1 < len(accounts); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		from, _ := json.Marshal(accounts[i])
		to, _ := json.Marshal(accounts[i+1])
		fmt.Fprintf(&b, `{"From_Account":%s,"To_Account":%s}`, from, to)
	}
	b.WriteString(`]}`)
	return b.String()
}

// nest wraps a value in n arrays.
func nest(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

type protoCase struct {
	name    string
	method  string // "" means POST
	path    string // "" means "/"
	query   string // "" means goodQuery
	body    string // "" means goodBody
	chunked bool   // send without Content-Length
	noCert  bool
	opts    func(*Options)

	status int
	reason audit.Reason // "" for an accepted callback

	clientIP string // accepted: Event.ClientIP; "" means 127.0.0.1
	platform string // accepted: Event.OptPlatform; "" means iOS
	empty    bool   // accepted with an empty PairList: answered OK, not forwarded
}

func withToken(o *Options) { o.Token = []byte(vectorToken) }

func protocolCases() []protoCase {
	a32 := strings.Repeat("a", 32)
	cjk10 := strings.Repeat("中", 10)                             // 30 bytes
	cjk11 := strings.Repeat("中", 11)                             // 33 bytes
	esc32 := `"` + strings.Repeat(`\u4e2d`, 10) + `ab"`          // 32 bytes once decoded
	signed := q("+Sign="+vectorSign, "+RequestTime="+vectorTime) // official vector
	bodyWith := func(s string) string { return `{"CallbackCommand":"Sns.CallbackFriendDelete",` + s + `}` }
	return []protoCase{
		// Accepted.
		{name: "accepted/doc example", status: 200},
		{name: "accepted/unicode ids", body: pairs("张三", "李四", "émile", "🙂x"), status: 200},
		{name: "accepted/32-byte ids", body: pairs(a32, a32+"", "b", a32), status: 200},
		{name: "accepted/CJK 30 bytes", body: pairs(cjk10, "x"), status: 200},
		{name: "accepted/escaped CJK 32 bytes decoded", body: bodyWith(`"PairList":[{"From_Account":` + esc32 + `,"To_Account":"x"}]`), status: 200},
		{name: "accepted/extra fields kept", body: `{"EventTime":1700000000123,"CallbackCommand":"Sns.CallbackFriendDelete","Extra":{"a":[1,2.5e3,true,null,"s"]},"PairList":[{"From_Account":"id","To_Account":"id1","Initiator_Account":"id","X":{}}],"Z":-0.5}`, status: 200},
		{name: "accepted/mirrored pairs", body: pairs("A", "B", "B", "A"), status: 200},
		{name: "accepted/whitespace around", body: " \n\t{ \"PairList\" : [ { \"To_Account\" : \"b\" , \"From_Account\" : \"a\" } ] , \"CallbackCommand\" : \"Sns.CallbackFriendDelete\" }\r\n ", status: 200},
		{name: "accepted/escaped command in body", body: `{"CallbackCommand":"Sns.Callback\u0046riendDelete","PairList":[{"From_Account":"a","To_Account":"b"}]}`, status: 200},
		{name: "accepted/nesting 32 deep", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"deep":` + nest(31)), status: 200},
		{name: "accepted/chunked body", chunked: true, status: 200},
		{name: "accepted/no contenttype", query: q("-contenttype"), status: 200},
		{name: "accepted/contenttype JSON", query: q("contenttype=JSON"), status: 200},
		{name: "accepted/contenttype Json", query: q("contenttype=Json"), status: 200},
		{name: "accepted/lowercase sdkappid", query: q("-SdkAppid", "+sdkappid="+testAppID), status: 200},
		{name: "accepted/SdkAppId spelling", query: q("-SdkAppid", "+SdkAppId="+testAppID), status: 200},
		{name: "accepted/unknown params ignored", query: q("+RequestId=3f2c0a4e-1b2c-4d5e-8f90-123456789abc", "+Foo=bar", "+Foo=baz"), status: 200},
		{name: "accepted/IPv6 ClientIP", query: q("ClientIP=2001:DB8:0:0::1"), status: 200, clientIP: "2001:db8::1"},
		{name: "accepted/IPv6 ClientIP escaped", query: q("ClientIP=2001%3Adb8%3A%3A2"), status: 200, clientIP: "2001:db8::2"},
		{name: "accepted/IPv4-mapped ClientIP unmapped", query: q("ClientIP=::ffff:36.112.173.178"), status: 200, clientIP: "36.112.173.178"},
		{name: "accepted/platform RESTAPI", query: q("OptPlatform=RESTAPI"), status: 200, platform: "RESTAPI"},
		{name: "accepted/platform restapi", query: q("OptPlatform=restapi"), status: 200, platform: "RESTAPI"},
		{name: "accepted/platform Web", query: q("OptPlatform=WEB"), status: 200, platform: "Web"},
		{name: "accepted/platform Android", query: q("OptPlatform=android"), status: 200, platform: "Android"},
		{name: "accepted/platform iOS", query: q("OptPlatform=iOS"), status: 200, platform: "iOS"},
		{name: "accepted/platform IOS", query: q("OptPlatform=IOS"), status: 200, platform: "iOS"},
		{name: "accepted/platform iOs", query: q("OptPlatform=iOs"), status: 200, platform: "iOS"},
		{name: "accepted/platform Windows", query: q("OptPlatform=windows"), status: 200, platform: "Windows"},
		{name: "accepted/platform Mac", query: q("OptPlatform=Mac"), status: 200, platform: "Mac"},
		{name: "accepted/platform macOS", query: q("OptPlatform=MacOS"), status: 200, platform: "macOS"},
		{name: "accepted/platform iPad", query: q("OptPlatform=IPAD"), status: 200, platform: "iPad"},
		{name: "accepted/platform Unknown", query: q("OptPlatform=unknown"), status: 200, platform: "Unknown"},
		{name: "accepted/platform undocumented passed through", query: q("OptPlatform=HarmonyOS"), status: 200, platform: "HarmonyOS"},
		{name: "accepted/platform with control byte becomes Unknown", query: q("OptPlatform=Web%0d%0aX-Evil:%201"), status: 200, platform: "Unknown"},
		{name: "accepted/platform absent", query: q("-OptPlatform"), status: 200, platform: "-"},
		{name: "accepted/token valid", query: signed, opts: withToken, status: 200},
		{name: "accepted/token only without certificate", query: signed, noCert: true, opts: func(o *Options) { withToken(o); o.RequireClientCert = false }, status: 200},
		{name: "accepted/token at window edge", query: signed, opts: func(o *Options) { withToken(o); o.Now = func() time.Time { return time.Unix(1669872112+60, 999e6) } }, status: 200},
		{name: "accepted/empty PairList", body: bodyWith(`"PairList":[]`), status: 200, empty: true},

		// Refused before the query.
		{name: "refused/GET", method: http.MethodGet, status: 405, reason: audit.BadMethod},
		{name: "refused/PUT", method: http.MethodPut, status: 405, reason: audit.BadMethod},
		{name: "refused/wrong path", path: "/callback", status: 404, reason: audit.BadPath},
		{name: "refused/path not configured one", opts: func(o *Options) { o.Path = "/im" }, status: 404, reason: audit.BadPath},
		{name: "refused/no certificate", noCert: true, status: 403, reason: audit.NoIdentity},
		{name: "refused/no certificate and no token", noCert: true, opts: func(o *Options) { o.RequireClientCert = false }, status: 403, reason: audit.NoIdentity},
		{name: "refused/no certificate although token valid", noCert: true, query: signed, opts: withToken, status: 403, reason: audit.NoIdentity},

		// Query.
		{name: "refused/bad escape", query: q("+x=%zz"), status: 400, reason: audit.BadQuery},
		{name: "refused/semicolon", query: q("+a=1;SdkAppid=1"), status: 400, reason: audit.BadQuery},
		{name: "refused/repeated SdkAppid", query: q("+SdkAppid=" + testAppID), status: 400, reason: audit.BadQuery},
		{name: "refused/SdkAppid and SdkAppId", query: q("+SdkAppId=" + testAppID), status: 400, reason: audit.BadQuery},
		{name: "refused/SdkAppid smuggled escaped", query: q("+Sdk%41ppid=1"), status: 400, reason: audit.BadQuery},
		{name: "refused/repeated ClientIP", query: q("+clientip=10.0.0.1"), status: 400, reason: audit.BadQuery},
		{name: "refused/missing SdkAppid", query: q("-SdkAppid"), status: 403, reason: audit.BadAppID},
		{name: "refused/wrong SdkAppid", query: q("SdkAppid=1400000001"), status: 403, reason: audit.BadAppID},
		{name: "refused/missing command", query: q("-CallbackCommand"), status: 400, reason: audit.UnsupportedCommand},
		{name: "refused/before command without a decision path", query: q("CallbackCommand=Sns.CallbackPrevFriendAdd"), status: 400, reason: audit.UnsupportedCommand},
		{name: "refused/command not served", query: q("CallbackCommand=Sns.CallbackFriendAdd"), opts: func(o *Options) { o.Commands = []string{CommandFriendDelete} }, status: 400, reason: audit.UnsupportedCommand},
		{name: "refused/command case, unknown refused", query: q("CallbackCommand=sns.callbackfrienddelete"), opts: func(o *Options) { o.UnknownCommands = UnknownRefuse }, status: 400, reason: audit.UnsupportedCommand},
		{name: "refused/command case, unknown forwarded, body differs", query: q("CallbackCommand=sns.callbackfrienddelete"), status: 400, reason: audit.CommandMismatch},
		{name: "refused/contenttype xml", query: q("contenttype=xml"), status: 415, reason: audit.BadContentType},
		{name: "refused/contenttype empty", query: q("contenttype="), status: 415, reason: audit.BadContentType},
		{name: "refused/missing ClientIP", query: q("-ClientIP"), status: 400, reason: audit.BadClientIP},
		{name: "refused/bad ClientIP", query: q("ClientIP=1.2.3"), status: 400, reason: audit.BadClientIP},
		{name: "refused/ClientIP with zone", query: q("ClientIP=fe80::1%25eth0"), status: 400, reason: audit.BadClientIP},
		{name: "refused/ClientIP hostname", query: q("ClientIP=localhost"), status: 400, reason: audit.BadClientIP},

		// Token.
		{name: "refused/token sign missing", query: q("+RequestTime=" + vectorTime), opts: withToken, status: 401, reason: audit.MissingSign},
		{name: "refused/token time missing", query: q("+Sign=" + vectorSign), opts: withToken, status: 401, reason: audit.MissingSign},
		{name: "refused/token both missing", opts: withToken, status: 401, reason: audit.MissingSign},
		{name: "refused/token stale", query: signed, opts: func(o *Options) { withToken(o); o.Now = func() time.Time { return time.Unix(1669872112+61, 0) } }, status: 401, reason: audit.StaleSign},
		{name: "refused/token from the future", query: signed, opts: func(o *Options) { withToken(o); o.Now = func() time.Time { return time.Unix(1669872112-61, 0) } }, status: 401, reason: audit.StaleSign},
		{name: "refused/token narrower window", query: signed, opts: func(o *Options) { withToken(o); o.SignWindow = 5 * time.Second }, status: 401, reason: audit.StaleSign},
		{name: "refused/token wrong", query: signed, opts: func(o *Options) { o.Token = []byte("xxxyyy") }, status: 401, reason: audit.BadSign},
		{name: "refused/token uppercase hex", query: q("+Sign="+strings.ToUpper(vectorSign), "+RequestTime="+vectorTime), opts: withToken, status: 401, reason: audit.BadSign},
		{name: "refused/token short sign", query: q("+Sign="+vectorSign[:63], "+RequestTime="+vectorTime), opts: withToken, status: 401, reason: audit.BadSign},
		{name: "refused/token RequestTime not decimal", query: q("+Sign="+vectorSign, "+RequestTime=+1669872112"), opts: withToken, status: 401, reason: audit.BadSign},
		{name: "refused/token repeated Sign", query: signed + "&sign=" + vectorSign, opts: withToken, status: 400, reason: audit.BadQuery},

		// Rate limit comes after authentication.
		{name: "refused/rate limited", opts: func(o *Options) { o.Limiter = limiterFor("127.0.0.1") }, status: 429, reason: audit.RateLimited},
		{name: "accepted/other ClientIP not limited", query: q("ClientIP=10.1.2.3"), opts: func(o *Options) { o.Limiter = limiterFor("127.0.0.1") }, status: 200, clientIP: "10.1.2.3"},

		// Body size.
		{name: "refused/Content-Length over cap", opts: func(o *Options) { o.MaxBody = 64 }, status: 413, reason: audit.BodyTooLarge},
		{name: "refused/chunked over cap", chunked: true, opts: func(o *Options) { o.MaxBody = 64 }, status: 413, reason: audit.BodyTooLarge},
		{name: "accepted/body exactly at cap", opts: func(o *Options) { o.MaxBody = int64(len(goodBody)) }, chunked: true, status: 200},

		// Body JSON.
		{name: "refused/empty body", body: " ", status: 400, reason: audit.BadJSON},
		{name: "refused/not JSON", body: "SdkAppid=1", status: 400, reason: audit.BadJSON},
		{name: "refused/top level array", body: `[` + goodBody + `]`, status: 400, reason: audit.BadJSON},
		{name: "refused/invalid UTF-8 in extra field", body: bodyWith("\"PairList\":[{\"From_Account\":\"a\",\"To_Account\":\"b\"}],\"x\":\"\xff\""), status: 400, reason: audit.BadJSON},
		{name: "refused/invalid UTF-8 in key", body: bodyWith("\"PairList\":[{\"From_Account\":\"a\",\"To_Account\":\"b\"}],\"\xc3\x28\":1"), status: 400, reason: audit.BadJSON},
		{name: "refused/UTF-8 surrogate bytes", body: bodyWith("\"PairList\":[{\"From_Account\":\"a\",\"To_Account\":\"b\"}],\"x\":\"\xed\xa0\x80\""), status: 400, reason: audit.BadJSON},
		{name: "refused/lone surrogate in extra field", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"x":"\ud800"`), status: 400, reason: audit.BadJSON},
		{name: "refused/duplicate top-level key", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"PairList":[]`), status: 400, reason: audit.BadJSON},
		{name: "refused/duplicate key by escape", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"Pair\u004cist":[]`), status: 400, reason: audit.BadJSON},
		{name: "refused/duplicate key in pair", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b","To_Account":"c"}]`), status: 400, reason: audit.BadJSON},
		{name: "refused/duplicate key in extra object", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"x":{"k":1,"k":2}`), status: 400, reason: audit.BadJSON},
		{name: "refused/duplicate key in big extra object", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"x":{` + manyKeys(40) + `,"k7":0}`), status: 400, reason: audit.BadJSON},
		{name: "refused/key differing in case", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"pairlist":[{"From_Account":"<script>","To_Account":""}]`), status: 400, reason: audit.BadJSON},
		{name: "refused/pair key differing in case", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b","to_account":"c"}]`), status: 400, reason: audit.BadJSON},
		{name: "refused/key folding with Kelvin sign", body: "{\"CallbackCommand\":\"Sns.CallbackFriendDelete\",\"PairList\":[{\"From_Account\":\"a\",\"To_Account\":\"b\"}],\"Callbac\u212aCommand\":\"x\"}", status: 400, reason: audit.BadJSON},
		{name: "refused/nesting 33 deep", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"deep":` + nest(32)), status: 400, reason: audit.BadJSON},
		{name: "refused/deep nesting flood", body: bodyWith(`"deep":` + strings.Repeat("[", 100000)), status: 400, reason: audit.BadJSON},
		{name: "refused/trailing garbage", body: goodBody + "x", status: 400, reason: audit.BadJSON},
		{name: "refused/two documents", body: goodBody + goodBody, status: 400, reason: audit.BadJSON},
		{name: "refused/trailing comma", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"},]`), status: 400, reason: audit.BadJSON},
		{name: "refused/bad number", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"}],"n":01`), status: 400, reason: audit.BadJSON},
		{name: "refused/control byte in string", body: bodyWith("\"PairList\":[{\"From_Account\":\"a\tb\",\"To_Account\":\"b\"}]"), status: 400, reason: audit.BadJSON},
		{name: "refused/byte order mark", body: "\xef\xbb\xbf" + goodBody, status: 400, reason: audit.BadJSON},
		{name: "refused/syntax error wins over bad account", body: pairs("", "b") + "}", status: 400, reason: audit.BadJSON},
		{name: "refused/body command differs", body: strings.Replace(goodBody, "FriendDelete", "FriendAdd", 1), status: 400, reason: audit.CommandMismatch},
		{name: "refused/body command missing", body: `{"PairList":[{"From_Account":"a","To_Account":"b"}]}`, status: 400, reason: audit.CommandMismatch},
		{name: "refused/body command not a string", body: `{"CallbackCommand":1,"PairList":[{"From_Account":"a","To_Account":"b"}]}`, status: 400, reason: audit.CommandMismatch},
		{name: "refused/command mismatch wins over bad pair", body: `{"PairList":[1],"CallbackCommand":"x"}`, status: 400, reason: audit.CommandMismatch},
		{name: "refused/PairList missing", body: `{"CallbackCommand":"Sns.CallbackFriendDelete"}`, status: 400, reason: audit.BadPairList},
		{name: "refused/PairList object", body: bodyWith(`"PairList":{"From_Account":"a","To_Account":"b"}`), status: 400, reason: audit.BadPairList},
		{name: "refused/PairList null", body: bodyWith(`"PairList":null`), status: 400, reason: audit.BadPairList},
		{name: "refused/PairList element string", body: bodyWith(`"PairList":[{"From_Account":"a","To_Account":"b"},"a"]`), status: 400, reason: audit.BadPairList},
		{name: "refused/pair without To_Account", body: bodyWith(`"PairList":[{"From_Account":"a"}]`), status: 400, reason: audit.BadPairList},
		{name: "refused/empty account", body: pairs("a", ""), status: 400, reason: audit.BadAccount},
		{name: "refused/33-byte account", body: pairs(a32+"a", "b"), status: 400, reason: audit.BadAccount},
		{name: "refused/CJK 33 bytes", body: pairs("x", cjk11), status: 400, reason: audit.BadAccount},
		{name: "refused/account number", body: bodyWith(`"PairList":[{"From_Account":7,"To_Account":"b"}]`), status: 400, reason: audit.BadAccount},
		{name: "refused/account lone surrogate", body: bodyWith(`"PairList":[{"From_Account":"a\udc00","To_Account":"b"}]`), status: 400, reason: audit.BadAccount},
		{name: "refused/account high surrogate then letter", body: bodyWith(`"PairList":[{"From_Account":"\ud83d\u0041","To_Account":"b"}]`), status: 400, reason: audit.BadAccount},
		{name: "refused/account invalid UTF-8", body: bodyWith("\"PairList\":[{\"From_Account\":\"a\xffb\",\"To_Account\":\"b\"}]"), status: 400, reason: audit.BadAccount},
		{name: "refused/account limit configurable", body: pairs("abcdefghi", "b"), opts: func(o *Options) { o.MaxAccountBytes = 8 }, status: 400, reason: audit.BadAccount},
		{name: "accepted/surrogate pair account", body: bodyWith(`"PairList":[{"From_Account":"\ud83d\ude42","To_Account":"b"}]`), status: 200},
	}
}

// manyKeys returns n distinct members "k0":0,...
func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

func TestHandler_Protocol(t *testing.T) {
	for _, tc := range protocolCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			query, body := tc.query, tc.body
			if query == "" {
				query = goodQuery
			}
			if body == "" {
				body = goodBody
			}
			r := f.request(query, body)
			if tc.method != "" {
				r.Method = tc.method
			}
			if tc.path != "" {
				r.URL.Path = tc.path
			}
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(strings.NewReader(body))
			}
			if tc.noCert {
				r.TLS.PeerCertificates = nil
			}
			w := f.serve(r)

			require.Equal(t, tc.status, w.Code, "body %s", w.Body.String())
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			rid := w.Header().Get("X-Request-Id")
			assert.NotEmpty(t, rid)
			recs := f.audit.records(t)
			stats := f.h.Stats()

			if tc.reason != "" {
				assert.Equal(t, failJSON(tc.reason), w.Body.String())
				assert.Empty(t, f.sink.got(), "a refused callback reached the sink")
				require.Len(t, recs, 1, "exactly one audit record")
				assert.Equal(t, string(tc.reason), recs[0]["reason"])
				assert.EqualValues(t, tc.status, recs[0]["status"])
				assert.Equal(t, rid, recs[0]["request_id"])
				assert.NotEmpty(t, recs[0]["detail"])
				assert.Equal(t, map[audit.Reason]uint64{tc.reason: 1}, stats.Rejected)
				if tc.reason == audit.BadMethod {
					assert.Equal(t, "POST", w.Header().Get("Allow"))
				}
				if tc.reason == audit.RateLimited {
					assert.Equal(t, "2", w.Header().Get("Retry-After"))
				}
				out := f.audit.String()
				assert.NotContains(t, out, vectorSign, "audit must not carry the Sign")
				assert.NotContains(t, out, vectorToken, "audit must not carry the token")
				return
			}

			assert.Equal(t, okJSON, w.Body.String())
			assert.Empty(t, recs, "an accepted callback is not audited")
			assert.Empty(t, stats.Rejected)
			got := f.sink.got()
			if tc.empty {
				assert.Empty(t, got, "an empty PairList is not forwarded")
				assert.Equal(t, uint64(1), stats.Empty)
				assert.Zero(t, stats.Accepted)
				return
			}
			require.Len(t, got, 1)
			ev := got[0]
			assert.Equal(t, uint64(1), stats.Accepted)
			assert.Equal(t, eventIDOf(testAppID, CommandFriendDelete, body), ev.ID)
			assert.Equal(t, []byte(body), ev.Body, "body forwarded byte for byte")
			assert.Equal(t, testAppID, ev.AppID)
			assert.Equal(t, CommandFriendDelete, ev.Command)
			assert.Equal(t, rid, ev.RequestID)
			assert.True(t, ev.ReceivedAt.Equal(f.h.o.Now()))
			wantIP := tc.clientIP
			if wantIP == "" {
				wantIP = "127.0.0.1"
			}
			assert.Equal(t, wantIP, ev.ClientIP)
			switch tc.platform {
			case "":
				assert.Equal(t, "iOS", ev.OptPlatform)
			case "-":
				assert.Empty(t, ev.OptPlatform)
			default:
				assert.Equal(t, tc.platform, ev.OptPlatform)
			}
			if tc.noCert {
				assert.Empty(t, ev.Identity)
				assert.Empty(t, ev.CertSHA256)
			} else {
				assert.Equal(t, "spiffe://im.test/sender", ev.Identity)
				assert.Equal(t, certs.CertFingerprint(f.client), ev.CertSHA256)
			}
		})
	}
}

func limiterFor(ips ...string) Limiter {
	l := stubLimiter{deny: make(map[netip.Addr]bool), wait: 1500 * time.Millisecond}
	for _, ip := range ips {
		l.deny[netip.MustParseAddr(ip)] = true
	}
	return l
}
