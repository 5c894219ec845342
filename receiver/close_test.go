package receiver

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
)

// tlsServer starts the handler behind a real TLS listener on loopback
// requiring client certificates, offering HTTP/2 when h2.
func tlsServer(t *testing.T, h http.Handler, ca *certstest.CA, h2 bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.TLS = certstest.MutualServerTLS(t, ca, "localhost", "127.0.0.1")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// A body over the cap is refused before it is read. Over HTTP/1 the
// connection is then closed (the rest of the body is on it); over HTTP/2
// the server ends just that stream, so the connection stays: asking net/http
// to close it there makes it send GOAWAY and tear the connection down while
// the client is still sending, which cut the 413's body off for curl.
func TestHandler_BodyOverCap_ClosesOnlyHTTP1(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h2     bool
		reused bool
	}{
		{"HTTP/1.1", false, false},
		{"HTTP/2", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := certstest.NewCA(t)
			f := newFixture(t, func(o *Options) { o.Now = nil; o.MaxBody = 4096 })
			srv := tlsServer(t, f.h, ca, tc.h2)
			cert := certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://tencent.im/callback")))
			c := mtlsClient(t, ca, &cert)

			reused := make(chan bool, 2)
			send := func(body string) (*http.Response, string) {
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused <- i.Reused }}
				ctx := httptrace.WithClientTrace(t.Context(), trace)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/?"+goodQuery, strings.NewReader(body))
				require.NoError(t, err)
				resp, err := c.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err, "the answer's body arrives whole")
				return resp, string(b)
			}

			resp, body := send(strings.Repeat(" ", 1<<20))
			assert.Equal(t, tc.h2, resp.ProtoMajor == 2)
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			assert.Equal(t, failJSON(audit.BodyTooLarge), body)
			assert.False(t, <-reused)
			assert.Equal(t, !tc.h2, resp.Close, "Connection: close over HTTP/1 only")

			resp, body = send(goodBody)
			assert.Equal(t, http.StatusOK, resp.StatusCode, body)
			select {
			case r := <-reused:
				assert.Equal(t, tc.reused, r, "the second request's connection was reused")
			case <-time.After(10 * time.Second):
				t.Fatal("no connection for the second request")
			}
		})
	}
}

// h2Upload is what a raw HTTP/2 client saw while it posted a body of
// size bytes on one stream, sending it whole unless the server stopped it.
type h2Upload struct {
	status   string // the answer's :status
	body     string // the answer's body, up to its END_STREAM
	sent     int    // body bytes the client could send
	ended    bool   // the server ended the stream with END_STREAM
	reset    bool   // the server reset the stream (RST_STREAM)
	finished bool   // the client sent its whole body and END_STREAM
}

// h2Post posts size bytes to url's host over a raw HTTP/2 connection,
// writing the body as fast as flow control allows, whatever the server
// answers meanwhile, until the stream ends or is reset.
func h2Post(t *testing.T, ca *certstest.CA, cert tls.Certificate, addr, path string, size int) h2Upload {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: certstest.Pool(ca), Certificates: []tls.Certificate{cert},
		ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	require.NoError(t, err)
	defer tc.Close()
	require.Equal(t, "h2", tc.ConnectionState().NegotiatedProtocol)
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(tc, http2.ClientPreface)
	require.NoError(t, err)
	fr := http2.NewFramer(tc, tc)
	var wmu sync.Mutex
	write := func(f func() error) error { wmu.Lock(); defer wmu.Unlock(); return f() }
	require.NoError(t, write(func() error { return fr.WriteSettings() }))
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", addr}, {":path", path},
		{"content-type", "application/json"}, {"content-length", strconv.Itoa(size)}} {
		require.NoError(t, enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}))
	}
	require.NoError(t, write(func() error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	}))

	// The reader tracks the send windows and the answer; the writer
	// sends while the windows allow.
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		connWin  = 65535
		strWin   = 65535
		res      h2Upload
		done     bool
		dec      = hpack.NewDecoder(4096, nil)
		readDone = make(chan struct{})
	)
	go func() {
		defer close(readDone)
		defer func() { mu.Lock(); done = true; cond.Broadcast(); mu.Unlock() }()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			mu.Lock()
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
						strWin += int(v) - 65535
					}
					_ = write(func() error { return fr.WriteSettingsAck() })
				}
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					connWin += int(f.Increment)
				} else {
					strWin += int(f.Increment)
				}
			case *http2.HeadersFrame:
				fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
				for _, hf := range fields {
					if hf.Name == ":status" {
						res.status = hf.Value
					}
				}
				res.ended = res.ended || f.StreamEnded()
			case *http2.DataFrame:
				res.body += string(f.Data())
				res.ended = res.ended || f.StreamEnded()
			case *http2.RSTStreamFrame:
				res.reset = true
			case *http2.GoAwayFrame:
				res.reset = true
			}
			stop := res.ended || res.reset
			cond.Broadcast()
			mu.Unlock()
			if stop && (res.reset || res.finished) {
				return
			}
		}
	}()
	chunk := make([]byte, 16<<10)
	for i := range chunk {
		chunk[i] = ' '
	}
	mu.Lock()
	for res.sent < size && !done && !res.reset {
		n := min(len(chunk), size-res.sent, connWin, strWin)
		if n <= 0 {
			cond.Wait()
			continue
		}
		connWin -= n
		strWin -= n
		last := res.sent+n == size
		mu.Unlock()
		err := write(func() error { return fr.WriteData(1, last, chunk[:n]) })
		mu.Lock()
		if err != nil {
			break
		}
		res.sent += n
		res.finished = last
	}
	for !done && !res.ended && !res.reset {
		cond.Wait()
	}
	mu.Unlock()
	_ = tc.SetReadDeadline(time.Now().Add(time.Second)) // a late RST_STREAM, if any
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	return res
}

// Over HTTP/2, a refusal that did not read the body is answered at once;
// the server then keeps taking the rest of the body (bounded) until the
// client has sent it, and only then ends the stream, instead of resetting
// it under the upload: a client that writes its whole body finishes, and
// one that stops at an error status (curl: "HTTP error before end of send,
// stop sending") is not raced by a reset for the answer's body.
func TestHandler_RefusalOverHTTP2_TakesTheRestOfTheBody(t *testing.T) {
	ca := certstest.NewCA(t)
	f := newFixture(t, func(o *Options) { o.Now = nil; o.MaxBody = 4096 })
	srv := tlsServer(t, f.h, ca, true)
	cert := certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://tencent.im/callback")))

	const size = 3 << 20 // beyond HTTP/2's flow-control windows, within the linger's 4 MiB
	res := h2Post(t, ca, cert, srv.Listener.Addr().String(), "/?"+goodQuery, size)
	assert.Equal(t, "413", res.status)
	assert.Equal(t, failJSON(audit.BodyTooLarge), res.body, "the answer arrives whole")
	assert.Equal(t, size, res.sent, "the server took the whole body")
	assert.True(t, res.finished, "the client finished its upload")
	assert.True(t, res.ended, "the stream ended with the answer")
	assert.False(t, res.reset, "no reset")
}
