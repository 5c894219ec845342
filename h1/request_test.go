package h1

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seen is what a handler saw of a request, copied out of it.
type seen struct {
	method, path, rawQuery, requestURI, host string
	header                                   http.Header
	proto                                    string
	protoMajor, protoMinor                   int
	contentLength                            int64
	body                                     string
	bodyErr                                  error
	transferEncoding                         []string
	remoteAddr                               string
	close                                    bool
	tlsPeerCN                                string // "" without TLS or a client certificate
	tls                                      bool
}

// recorder is a handler that reads the whole body, sends what it saw of
// the request on a channel and answers 200 "ok".
func recorder() (http.Handler, <-chan seen) {
	ch := make(chan seen, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		s := seen{
			method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, requestURI: r.RequestURI,
			host: r.Host, header: r.Header.Clone(), proto: r.Proto, protoMajor: r.ProtoMajor, protoMinor: r.ProtoMinor,
			contentLength: r.ContentLength, body: string(b), bodyErr: err,
			transferEncoding: r.TransferEncoding, remoteAddr: r.RemoteAddr, close: r.Close,
		}
		if r.TLS != nil {
			s.tls = true
			if len(r.TLS.PeerCertificates) > 0 {
				s.tlsPeerCN = r.TLS.PeerCertificates[0].Subject.CommonName
			}
		}
		ch <- s
		_, _ = io.WriteString(w, "ok")
	}), ch
}

// TestServe_RequestFields: a Content-Length request reaches the handler
// with its line, headers (canonical keys, OWS trimmed, repeats in order),
// body and peer address as sent.
func TestServe_RequestFields(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	const body = `{"Sign":"abc","n":1}`
	rc.send("POST /v4/callback/x%2Fy?SdkAppid=1400&Sign=a%20b HTTP/1.1\r\n" +
		"host: edge.example:8443\r\n" +
		"content-type: \t application/json \t\r\n" +
		"x-multi: first\r\n" +
		"X-MULTI:second\r\n" +
		"X-Empty:\r\n" +
		"Content-Length: 20\r\n\r\n" + body)
	resp, text := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", text)

	r := <-got
	assert.Equal(t, http.MethodPost, r.method)
	assert.Equal(t, "/v4/callback/x/y", r.path)
	assert.Equal(t, "SdkAppid=1400&Sign=a%20b", r.rawQuery)
	assert.Equal(t, "/v4/callback/x%2Fy?SdkAppid=1400&Sign=a%20b", r.requestURI)
	assert.Equal(t, "edge.example:8443", r.host)
	assert.Equal(t, []string{"application/json"}, r.header["Content-Type"])
	assert.Equal(t, []string{"first", "second"}, r.header["X-Multi"])
	assert.Equal(t, []string{""}, r.header["X-Empty"])
	assert.Equal(t, []string{"20"}, r.header["Content-Length"])
	assert.Equal(t, "HTTP/1.1", r.proto)
	assert.Equal(t, 1, r.protoMajor)
	assert.Equal(t, 1, r.protoMinor)
	assert.Equal(t, int64(len(body)), r.contentLength)
	assert.Equal(t, body, r.body)
	require.NoError(t, r.bodyErr)
	assert.Empty(t, r.transferEncoding)
	assert.Equal(t, rc.c.LocalAddr().String(), r.remoteAddr)
	assert.False(t, r.close)
	assert.False(t, r.tls)
}

// TestServe_ChunkedBody: a chunked body with chunk extensions and a
// trailer reaches the handler as its bytes, and the trailer is consumed so
// that the next request on the connection parses.
func TestServe_ChunkedBody(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	rc.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;name=value\r\nhello\r\n" +
		"7;a=b;c\r\n, world\r\n" +
		"A\r\n0123456789\r\n" +
		"0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")

	resp, _ := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	r := <-got
	require.NoError(t, r.bodyErr)
	assert.Equal(t, "hello, world0123456789", r.body)
	assert.Equal(t, int64(-1), r.contentLength)
	assert.Equal(t, []string{"chunked"}, r.transferEncoding)

	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/next", (<-got).path)
}

// TestServe_HTTP10: an HTTP/1.0 request is served with Proto HTTP/1.0 and
// no Host needed, and the connection closes after the answer.
func TestServe_HTTP10(t *testing.T) {
	t.Parallel()
	h, got := recorder()
	rc := dial(t, start(t, &Server{Handler: h}))
	rc.send("POST /old HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
	resp, text := rc.reply(http.MethodPost)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", text)
	assert.True(t, resp.Close, "Connection: close")
	assert.True(t, rc.closed())

	r := <-got
	assert.Equal(t, "HTTP/1.0", r.proto)
	assert.Equal(t, 1, r.protoMajor)
	assert.Equal(t, 0, r.protoMinor)
	assert.Equal(t, "abc", r.body)
	assert.Empty(t, r.host)
	assert.True(t, r.close)
}

func TestParseTarget_AgreesWithParseRequestURI(t *testing.T) {
	for _, target := range []string{
		"/", "/v4/cb", "/cb?SdkAppid=1400000000&CallbackCommand=Sns.CallbackFriendDelete&ClientIP=1.2.3.4",
		"/a?", "/a??", "/a?b?c", "/a%20b", "/%zz", "/a%2Fb?x=%41", "//host/path", "/a:b;c=d@e$f&g+h,i~j",
		"/a'b", "/a!b", "/a(b)", "/a*b", "/a\"b", "/a<b>", "/a{b}", "/a|b", "/a\\b", "/a^b", "/a`b", "/a[b]",
		"/p?q=a b", "/p?#",
	} {
		var got url.URL
		err := parseTarget(target, &got)
		want, werr := url.ParseRequestURI(target)
		if werr != nil {
			assert.Error(t, err, "%q", target)
			continue
		}
		if assert.NoError(t, err, "%q", target) {
			assert.Equal(t, *want, got, "%q", target)
		}
	}
}

func TestCanonicalKey_InternsCommonNames(t *testing.T) {
	lr := &lineReader{}
	for _, name := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Expect", "Host", "Pragma", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "X-Request-Id"} {
		lower := []byte(strings.ToLower(name))
		assert.Equal(t, name, lr.canonicalKey(lower))
		assert.Zero(t, testing.AllocsPerRun(10, func() { _ = lr.canonicalKey(lower) }), name)
	}
	assert.Equal(t, "X-Other-Name", lr.canonicalKey([]byte("x-OTHER-name")))
}
