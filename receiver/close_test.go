package receiver

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs/certstest"
)

// tlsServer starts the handler behind a real TLS listener on loopback
// requiring client certificates, offering HTTP/2 when h2.
func tlsServer(t *testing.T, h http.Handler, ca *certstest.CA, h2 bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{certstest.TLSCertificate(t, ca.Issue(t, certstest.Server("localhost", "127.0.0.1")))},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    certstest.Pool(ca),
	}
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
