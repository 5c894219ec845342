package decide

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawServer accepts connections on loopback and answers every request
// read from them with answer(n), n counting requests from 1; answer may
// close the connection by returning "".
type rawServer struct {
	ln    net.Listener
	conns atomic.Int32
	reqs  atomic.Int32
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  []net.Conn
}

func newRawServer(t *testing.T, answer func(n int32, req *http.Request) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					a := answer(s.reqs.Add(1), req)
					if a == "" {
						return
					}
					if _, err := io.WriteString(c, a); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open { // kept alive by a pool the test left
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func simpleRequest(b []byte) []byte {
	return append(b, "POST /d?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"...)
}

func TestWire_Responses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		status int
		body   string
		err    error
		reused bool // the connection is kept for the next request
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", 200, "abcd", nil, true},
		{"chunked with a trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", 200, "abcde", nil, true},
		{"interim responses skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz", 201, "z", nil, true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 200, "ok", nil, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", nil, false},
		{"no status text", "HTTP/1.1 503\r\ncontent-length: 0\r\n\r\n", 503, "", nil, true},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", nil, true},
		{"too large", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890", 200, "", errTooLarge, false},
		{"chunked too large", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n", 200, "", errTooLarge, false},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", errResponse, false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 200, "", errResponse, false},
		{"gzip framing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 200, "", errResponse, false},
		{"header without colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", 200, "", errResponse, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, func(int32, *http.Request) string { return tc.answer })
			p := newWirePool(srv.addr(), 4, time.Minute)
			defer p.closeIdle()
			status, body, err := p.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 10)
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				assert.Empty(t, p.idle, "a connection left mid-response is not reused")
				assert.Empty(t, p.slots)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.body, string(body))
			if tc.reused {
				assert.Len(t, p.idle, 1)
			} else {
				assert.Empty(t, p.idle)
				assert.Empty(t, p.slots, "its slot is free")
			}
		})
	}
}

func TestWire_BodyUntilClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = http.ReadRequest(bufio.NewReader(c))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
		c.Close()
	}()
	p := newWirePool(ln.Addr().String(), 1, time.Minute)
	status, body, err := p.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 100)
	require.NoError(t, err)
	assert.Equal(t, 200, status)
	assert.Equal(t, "until the end", string(body))
	assert.Empty(t, p.slots)
}

func TestWire_KeepAliveAndStaleConnections(t *testing.T) {
	ok := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	srv := newRawServer(t, func(n int32, _ *http.Request) string {
		if n == 3 {
			return "" // the service closes an idle connection: the third request meets it
		}
		return ok
	})
	p := newWirePool(srv.addr(), 2, time.Minute)
	defer p.closeIdle()
	for range 2 {
		_, body, err := p.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 10)
		require.NoError(t, err)
		assert.Equal(t, "ok", string(body))
	}
	assert.Equal(t, int32(1), srv.conns.Load(), "one connection, kept alive")
	_, body, err := p.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 10)
	require.NoError(t, err, "sent once more on a new connection")
	assert.Equal(t, "ok", string(body))
	assert.Equal(t, int32(2), srv.conns.Load())
	assert.Equal(t, int32(4), srv.reqs.Load())

	// An idle connection older than the idle timeout is not reused.
	p2 := newWirePool(srv.addr(), 2, time.Nanosecond)
	for range 2 {
		_, _, err := p2.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 10)
		require.NoError(t, err)
	}
	assert.Equal(t, int32(4), srv.conns.Load(), "a new connection each time")
	assert.Len(t, p2.slots, 1, "the stale one was closed")
}

func TestWire_AtMostMaxConnections(t *testing.T) {
	release := make(chan struct{})
	srv := newRawServer(t, func(int32, *http.Request) string {
		<-release
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	p := newWirePool(srv.addr(), 2, time.Minute)
	defer p.closeIdle()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() { _, _, errs[i] = p.roundTrip(time.Now().Add(10*time.Second), simpleRequest, 10) })
	}
	require.Eventually(t, func() bool { return srv.reqs.Load() == 2 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, int32(2), srv.conns.Load(), "the third waits for a connection")
	close(release)
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int32(2), srv.conns.Load(), "and got one back")

	// With every connection busy past its deadline, a call gives up.
	block := make(chan struct{})
	defer close(block)
	srv2 := newRawServer(t, func(int32, *http.Request) string { <-block; return "" })
	p2 := newWirePool(srv2.addr(), 1, time.Minute)
	go func() { _, _, _ = p2.roundTrip(time.Now().Add(10*time.Second), simpleRequest, 10) }()
	require.Eventually(t, func() bool { return srv2.reqs.Load() == 1 }, 10*time.Second, time.Millisecond)
	_, _, err := p2.roundTrip(time.Now().Add(50*time.Millisecond), simpleRequest, 10)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWire_DeadlineAndRefused(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	srv := newRawServer(t, func(int32, *http.Request) string { <-block; return "" })
	p := newWirePool(srv.addr(), 1, time.Minute)
	deadline := time.Now().Add(50 * time.Millisecond)
	_, _, err := p.roundTrip(deadline, simpleRequest, 10)
	require.Error(t, err)
	assert.True(t, timedOut(deadline, err))
	assert.Empty(t, p.slots)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	p = newWirePool(addr, 1, time.Minute)
	deadline = time.Now().Add(5 * time.Second)
	_, _, err = p.roundTrip(deadline, simpleRequest, 10)
	require.Error(t, err)
	assert.False(t, timedOut(deadline, err), "refused, not timed out")
	var oe *net.OpError
	assert.True(t, errors.As(err, &oe))
	assert.Empty(t, p.slots)
}

func TestWire_HeaderBound(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 20) + "Content-Length: 0\r\n\r\n"
	srv := newRawServer(t, func(int32, *http.Request) string { return long })
	p := newWirePool(srv.addr(), 1, time.Minute)
	_, _, err := p.roundTrip(time.Now().Add(5*time.Second), simpleRequest, 10)
	assert.ErrorIs(t, err, errResponse, "headers over %d bytes", maxHeaderBytes)
}

func TestHasTokenAndFold(t *testing.T) {
	assert.True(t, hasToken([]byte("keep-alive, Close"), "close"))
	assert.False(t, hasToken([]byte("closed"), "close"))
	assert.True(t, asciiEqualFold([]byte("CONTENT-length"), "Content-Length"))
	assert.False(t, asciiEqualFold([]byte("Content-Lengths"), "Content-Length"))
	assert.True(t, validValue("a\tb"))
	assert.False(t, validValue("a\r\nX-Evil: 1"))
}
