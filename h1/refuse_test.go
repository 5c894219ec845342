package h1

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refusalMaxHeader is the MaxHeaderBytes of the refusal tests: twice the
// connection's 4 KiB read buffer, so that one header line can be longer
// than the buffer and still within the limit.
const refusalMaxHeader = 8 << 10

type refusalCase struct {
	name   string
	raw    string // the request as sent
	status int    // the status answered
}

// refusalCases are requests the server must refuse before any handler
// runs. They are also seeds of FuzzReadHead.
func refusalCases() []refusalCase {
	const host = "Host: example.com\r\n"
	get := func(head string) string { return "GET /cb HTTP/1.1\r\n" + head + "\r\n" }
	post := func(head string) string { return "POST /cb HTTP/1.1\r\n" + host + head + "\r\n" }
	var many strings.Builder
	for i := range 100 {
		many.WriteString("X-Pad-" + strings.Repeat("p", i%10) + ": " + strings.Repeat("v", 100) + "\r\n")
	}
	return []refusalCase{
		{"method not a token", "G(T /cb HTTP/1.1\r\n" + host + "\r\n", 400},
		{"empty method", " /cb HTTP/1.1\r\n" + host + "\r\n", 400},
		{"absolute-form target", "GET http://x/ HTTP/1.1\r\n" + host + "\r\n", 400},
		{"authority-form target", "CONNECT example.com:443 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"asterisk target", "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 400},
		{"empty target", "GET  HTTP/1.1\r\n" + host + "\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\n" + host + "\r\n", 400},
		{"control byte in target", "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", 400},
		{"tab in target", "GET /a\tb HTTP/1.1\r\n" + host + "\r\n", 400},
		{"DEL in target", "GET /a\x7fb HTTP/1.1\r\n" + host + "\r\n", 400},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400},
		{"fragment in target", "GET /a#b HTTP/1.1\r\n" + host + "\r\n", 400},
		{"bad percent-encoding in target", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400},
		{"HTTP/2.0", "GET /cb HTTP/2.0\r\n" + host + "\r\n", 505},
		{"HTTP/1.2", "GET /cb HTTP/1.2\r\n" + host + "\r\n", 505},
		{"HTTP/0.9 style, no version", "GET /cb\r\n\r\n", 400},
		{"garbage version", "GET /cb FOO/1.1\r\n" + host + "\r\n", 400},
		{"lower-case version", "GET /cb http/1.1\r\n" + host + "\r\n", 400},
		{"version without digits", "GET /cb HTTP/x.y\r\n" + host + "\r\n", 400},
		{"version with two-digit minor", "GET /cb HTTP/1.10\r\n" + host + "\r\n", 400},
		{"space after version", "GET /cb HTTP/1.1 \r\n" + host + "\r\n", 400},
		{"obs-fold", get(host + "X-A: one\r\n two\r\n"), 400},
		{"obs-fold with tab", get(host + "X-A: one\r\n\ttwo\r\n"), 400},
		{"fold before the first field", get(" X-A: one\r\n" + host), 400},
		{"space before colon", get(host + "X-A : one\r\n"), 400},
		{"empty header name", get(host + ": one\r\n"), 400},
		{"header line without colon", get(host + "X-A one\r\n"), 400},
		{"non-token header name", get(host + "X/A: one\r\n"), 400},
		{"0x01 in value", get(host + "X-A: o\x01ne\r\n"), 400},
		{"0x7f in value", get(host + "X-A: o\x7fne\r\n"), 400},
		{"NUL in value", get(host + "X-A: o\x00ne\r\n"), 400},
		{"bare CR in value", get(host + "X-A: o\rne\r\n"), 400},
		{"missing Host on HTTP/1.1", get("X-A: one\r\n"), 400},
		{"two Host headers", get(host + "Host: other.example\r\n"), 400},
		{"Host with a slash", get("Host: example.com/x\r\n"), 400},
		{"Host with a space", get("Host: exa mple.com\r\n"), 400},
		{"Host with userinfo", get("Host: user@example.com\r\n"), 400},
		{"Content-Length and Transfer-Encoding", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400},
		{"Transfer-Encoding gzip", post("Transfer-Encoding: gzip\r\n"), 501},
		{"Transfer-Encoding gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n"), 501},
		{"Transfer-Encoding chunked twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 501},
		{"Transfer-Encoding chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n"), 501},
		{"Trailer naming Content-Length", post("Transfer-Encoding: chunked\r\nTrailer: X-A, content-length\r\n"), 400},
		{"Trailer naming Transfer-Encoding", post("Transfer-Encoding: chunked\r\nTrailer: Transfer-Encoding\r\n"), 400},
		{"Transfer-Encoding on HTTP/1.0", "POST /cb HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"differing Content-Length", post("Content-Length: 5\r\nContent-Length: 6\r\n"), 400},
		{"Content-Length list", post("Content-Length: 5, 5\r\n"), 400},
		{"Content-Length with plus", post("Content-Length: +5\r\n"), 400},
		{"Content-Length with minus", post("Content-Length: -5\r\n"), 400},
		{"Content-Length with letters", post("Content-Length: 5a\r\n"), 400},
		{"Content-Length hex", post("Content-Length: 0x5\r\n"), 400},
		{"Content-Length empty", post("Content-Length:\r\n"), 400},
		{"Content-Length of 19 digits", post("Content-Length: 1000000000000000000\r\n"), 400},
		{"Expect other than 100-continue", post("Content-Length: 5\r\nExpect: foo\r\n"), 417},
		{"header block over MaxHeaderBytes", get(host + many.String()), 431},
		{"one header line over MaxHeaderBytes", get(host + "X-Long: " + strings.Repeat("v", refusalMaxHeader+1) + "\r\n"), 431},
		{"request line over MaxHeaderBytes", "GET /" + strings.Repeat("a", refusalMaxHeader) + " HTTP/1.1\r\n" + host + "\r\n", 431},
	}
}

// TestServe_Refusals sends each malformed request over a raw connection:
// it is answered with the expected status and Connection: close, the
// connection is closed, Refused is called once, and no handler runs.
func TestServe_Refusals(t *testing.T) {
	t.Parallel()
	for _, tc := range refusalCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ran atomic.Bool
			rec := &refusals{}
			s := &Server{
				Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran.Store(true) }),
				ReadHeaderTimeout: wait,
				MaxHeaderBytes:    refusalMaxHeader,
				Refused:           rec.record,
			}
			rc := dial(t, start(t, s))
			rc.send(tc.raw)

			resp, body := rc.reply(http.MethodGet)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.True(t, resp.Close, "Connection: close")
			assert.NotEmpty(t, strings.TrimSpace(body), "the answer says what was wrong")
			assert.True(t, rc.closed(), "connection closed after the answer")

			got := rec.list() // Refused is called before the connection closes
			require.Len(t, got, 1, "Refused calls")
			assert.Equal(t, tc.status, got[0].Status)
			assert.False(t, got[0].Slow)
			assert.NotEmpty(t, got[0].Detail)
			assert.False(t, ran.Load(), "handler ran")
		})
	}
}

// TestServe_LongHeaderLineWithinLimit: a header line longer than the
// connection's 4 KiB read buffer but within MaxHeaderBytes is accepted,
// and its value reaches the handler whole.
func TestServe_LongHeaderLineWithinLimit(t *testing.T) {
	t.Parallel()
	rec := &refusals{}
	got := make(chan string, 1)
	s := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Get("X-Long")
		}),
		MaxHeaderBytes: refusalMaxHeader,
		Refused:        rec.record,
	}
	long := strings.Repeat("v", 6<<10)
	rc := dial(t, start(t, s))
	rc.send("GET /cb HTTP/1.1\r\nHost: example.com\r\nX-Long: " + long + "\r\nX-After: 1\r\n\r\n")
	resp, _ := rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, long, <-got)
	assert.Empty(t, rec.list())

	// The connection is still usable: the long line left nothing behind.
	rc.send("GET /cb HTTP/1.1\r\nHost: example.com\r\nX-Long: short\r\n\r\n")
	resp, _ = rc.reply(http.MethodGet)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "short", <-got)
}
