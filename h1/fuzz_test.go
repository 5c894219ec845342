package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzReadHead compares readHead with net/http's http.ReadRequest: every
// head readHead accepts, net/http accepts too, and they agree on the
// method, target, Host, body length and header fields.
//
// What the comparison allows for, each a normalisation net/http applies
// after parsing rather than a different reading of the bytes:
//   - The target: the server parses readHead's target with parseTarget,
//     which must agree with url.ParseRequestURI (checked here), and refuses
//     what that rejects ("/%zz"), so a head is accepted only if both steps
//     pass, as in conn.serveRequest.
//   - Transfer-Encoding: net/http moves it from the header map into
//     r.TransferEncoding; h1 keeps the field and sets r.TransferEncoding.
//   - Content-Length: net/http keeps one of several equal values; h1 keeps
//     them all (it refuses differing values, as net/http does).
//   - Cache-Control: net/http adds "no-cache" when Pragma is "no-cache"
//     and there is no Cache-Control (an HTTP/1.0 cache rule); h1 does not.
//   - Close: h1 closes every HTTP/1.0 connection, even with Connection:
//     keep-alive; it agrees with net/http on HTTP/1.1.
func FuzzReadHead(f *testing.F) {
	for _, tc := range refusalCases() {
		// The cases over the header limit (8 KiB and more) are left out:
		// the fuzzer spends its time minimizing large inputs (for up to
		// -fuzzminimizetime each) instead of exploring. The byte budget is
		// tested by TestServe_Refusals.
		if len(tc.raw) <= 1<<10 {
			f.Add([]byte(tc.raw))
		}
	}
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET /cb?SdkAppid=1&Sign=x HTTP/1.0\r\n\r\n",
		"POST /v4/cb?a=b HTTP/1.1\nHost: [::1]:8443\ncontent-length:  007 \nX-A: 1\nx-a:\t2\t\n\n",
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"PUT /p HTTP/1.1\r\nHost:\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\nabc",
		"GET /%41%2f?q=%e9 HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
		"OPTIONS /*x HTTP/1.1\r\nHost: a.b\r\nX-Empty:\r\nX-Sp: a  b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lr := &lineReader{br: bufio.NewReaderSize(bytes.NewReader(data), 4096), budget: 16 << 10}
		h := new(head)
		if err := readHead(lr, h, nil); err != nil {
			return
		}
		var u url.URL
		want, werr := url.ParseRequestURI(h.target)
		if err := parseTarget(h.target, &u); err != nil {
			require.Error(t, werr, "parseTarget refused what ParseRequestURI accepts: %q", h.target)
			return // refused by the server after readHead (see above)
		}
		require.NoError(t, werr, "parseTarget accepted what ParseRequestURI refuses: %q", h.target)
		assert.Equal(t, *want, u, "parseTarget(%q)", h.target)
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		require.NoError(t, err, "readHead accepted what net/http refuses: %q", data)
		assert.Equal(t, req.URL.String(), u.String())

		assert.Equal(t, req.Method, h.method)
		assert.Equal(t, req.RequestURI, h.target)
		assert.Equal(t, req.Host, h.header.Get("Host"))
		assert.Equal(t, req.ContentLength, h.length)
		assert.Equal(t, req.ProtoMinor, h.minor)
		assert.Equal(t, 1, req.ProtoMajor)
		if h.minor == 1 {
			assert.Equal(t, req.Close, h.close)
		} else {
			assert.True(t, h.close)
		}
		if h.chunked {
			assert.Equal(t, []string{"chunked"}, req.TransferEncoding)
		} else {
			assert.Empty(t, req.TransferEncoding)
		}

		for k, vv := range h.header {
			switch k {
			case "Host":
				continue
			case "Transfer-Encoding":
				assert.NotContains(t, req.Header, k)
				continue
			case "Content-Length":
				for _, v := range vv {
					assert.Equal(t, vv[0], v)
				}
				vv = vv[:1]
			}
			assert.Equal(t, vv, req.Header[k], "field %s", k)
		}
		for k, vv := range req.Header {
			if _, ok := h.header[k]; ok {
				continue
			}
			if k == "Cache-Control" && len(h.header["Pragma"]) > 0 && h.header["Pragma"][0] == "no-cache" {
				assert.Equal(t, []string{"no-cache"}, vv)
				continue
			}
			t.Errorf("net/http has a field %s: %q that readHead does not", k, vv)
		}
	})
}
