package imsim

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
)

const testAppID = "1400000000"

// seenRequest is what the test server recorded of one callback.
type seenRequest struct {
	query   map[string][]string
	body    string
	resumed bool
	version uint16
	hasCert bool
	signOK  bool
}

// imServer is a real TLS server on loopback that requires a client
// certificate from its CA and answers like imedge: IM's JSON, X-Request-Id.
type imServer struct {
	t       *testing.T
	srv     *httptest.Server
	ca      *certstest.CA
	client  tls.Certificate
	token   []byte
	conns   atomic.Int64
	mu      sync.Mutex
	reqs    []seenRequest
	respond func(w http.ResponseWriter, r *http.Request) bool // when it returns true the reply is written
	seq     atomic.Int64
}

func newIMServer(t *testing.T, maxVersion uint16) *imServer {
	t.Helper()
	ca := certstest.NewCA(t)
	s := &imServer{t: t, ca: ca, client: certstest.TLSCertificate(t, ca.Issue(t, certstest.Client("spiffe://tencent-im/cb")))}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = certstest.MutualServerTLS(t, ca, "localhost", "127.0.0.1")
	s.srv.TLS.MaxVersion = maxVersion
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *imServer) addr() string { return s.srv.Listener.Addr().String() }

// target trusts the server's CA and presents the client certificate.
func (s *imServer) target() Target {
	return Target{Addr: s.addr(), TLS: &tls.Config{RootCAs: certstest.Pool(s.ca), Certificates: []tls.Certificate{s.client}},
		Timeout: 5 * time.Second}
}

func (s *imServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := r.URL.Query()
	rec := seenRequest{query: q, body: string(body), resumed: r.TLS.DidResume, version: r.TLS.Version,
		hasCert: len(r.TLS.PeerCertificates) > 0}
	if s.token != nil {
		sum := sha256.Sum256(append(append([]byte{}, s.token...), q.Get("RequestTime")...))
		rec.signOK = q.Get("Sign") == hex.EncodeToString(sum[:])
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
	w.Header().Set("X-Request-Id", "req-"+strconv.FormatInt(s.seq.Add(1), 10))
	w.Header().Set("Content-Type", "application/json")
	if s.respond != nil && s.respond(w, r) {
		return
	}
	_, _ = w.Write(okReply)
}

func (s *imServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.reqs...)
}

func requireSeen(t *testing.T, s *imServer, n int) []seenRequest {
	t.Helper()
	got := s.requests()
	require.Len(t, got, n, "requests the server saw")
	return got
}
