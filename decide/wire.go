package decide

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"time"
)

// wirePool is a keep-alive pool of plain HTTP/1.1 connections to one
// decision service (an http:// URL): the caller's goroutine writes each
// request in one write and reads its response on the same connection, with
// no goroutine of the pool's own. On loopback or a LAN this costs a fraction
// of net/http's Transport (which hands every request to two goroutines per
// connection), and a decision is one request on the answer's critical path.
// https services use net/http (HTTP/2, TLS session handling).
//
// At most max connections exist, in use or idle; a call that finds none
// idle and the limit reached waits for one within its deadline. Idle
// connections are kept idleTimeout and closed when next taken after it. A
// connection the service closed while idle is noticed on reuse (no byte of
// a response) and the request is sent once more on a new connection. Safe
// for concurrent use.
type wirePool struct {
	addr        string
	dialer      net.Dialer
	idleTimeout time.Duration
	slots       chan struct{} // one token per open connection
	idle        chan *wireConn
}

// wireConn is one connection with its read buffer.
type wireConn struct {
	c        net.Conn
	br       *bufio.Reader
	wbuf     []byte
	lastUsed time.Time
}

func newWirePool(addr string, max int, idleTimeout time.Duration) *wirePool {
	return &wirePool{
		addr: addr, dialer: net.Dialer{KeepAlive: 30 * time.Second}, idleTimeout: idleTimeout,
		slots: make(chan struct{}, max), idle: make(chan *wireConn, max),
	}
}

// Bounds of a response the pool reads.
const (
	maxHeaderBytes = 16 << 10 // the status line and headers
	wireBufSize    = 4 << 10
)

// errResponse reports a response that is not HTTP/1.1 as the pool reads it.
var errResponse = errors.New("malformed HTTP response")

// get returns an idle connection (reused) or a new one, waiting for a free
// slot until deadline.
func (p *wirePool) get(deadline time.Time) (*wireConn, bool, error) {
	for {
		select {
		case c := <-p.idle:
			if time.Since(c.lastUsed) < p.idleTimeout {
				return c, true, nil
			}
			p.discard(c)
			continue
		default:
		}
		select {
		case c := <-p.idle:
			if time.Since(c.lastUsed) < p.idleTimeout {
				return c, true, nil
			}
			p.discard(c)
			continue
		case p.slots <- struct{}{}:
			c, err := p.dial(deadline)
			if err != nil {
				<-p.slots
				return nil, false, err
			}
			return c, false, nil
		default:
		}
		// At the limit: wait for a connection to come back or a slot.
		t := time.NewTimer(time.Until(deadline))
		select {
		case c := <-p.idle:
			t.Stop()
			if time.Since(c.lastUsed) < p.idleTimeout {
				return c, true, nil
			}
			p.discard(c)
		case p.slots <- struct{}{}:
			t.Stop()
			c, err := p.dial(deadline)
			if err != nil {
				<-p.slots
				return nil, false, err
			}
			return c, false, nil
		case <-t.C:
			return nil, false, fmt.Errorf("waiting for a connection: %w", context.DeadlineExceeded)
		}
	}
}

func (p *wirePool) dial(deadline time.Time) (*wireConn, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &wireConn{c: c, br: bufio.NewReaderSize(c, wireBufSize)}, nil
}

// put returns a connection after a complete exchange.
func (p *wirePool) put(c *wireConn) {
	c.lastUsed = time.Now()
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil
	}
	select {
	case p.idle <- c:
	default: // cannot happen: idle holds as many as there are slots
		p.discard(c)
	}
}

// discard closes a connection and frees its slot.
func (p *wirePool) discard(c *wireConn) {
	_ = c.c.Close()
	<-p.slots
}

// closeIdle closes the idle connections.
func (p *wirePool) closeIdle() {
	for {
		select {
		case c := <-p.idle:
			p.discard(c)
		default:
			return
		}
	}
}

// roundTrip sends the request write appends to its argument, and returns
// the status and the response body (at most limit bytes; more is
// errTooLarge). It gives up at deadline.
func (p *wirePool) roundTrip(deadline time.Time, write func([]byte) []byte, limit int) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(deadline)
		if err != nil {
			return 0, nil, err
		}
		_ = c.c.SetDeadline(deadline)
		c.wbuf = write(c.wbuf[:0])
		_, err = c.c.Write(c.wbuf)
		var (
			status      int
			reply       []byte
			keep, began bool
		)
		if err == nil {
			status, reply, keep, began, err = readResponse(c.br, limit)
		}
		if err != nil {
			p.discard(c)
			if reused && !began && attempt == 0 && time.Now().Before(deadline) && !isTimeout(err) {
				continue // closed by the service while idle: once more, on a new connection
			}
			return status, nil, err
		}
		if keep {
			p.put(c)
		} else {
			p.discard(c)
		}
		return status, reply, nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readResponse reads one HTTP/1.x response: its status, its body (Content-
// Length, chunked, or until the connection closes) within limit, and whether
// the connection can carry another request. started reports whether any
// byte of the response arrived. Interim (1xx) responses are skipped.
func readResponse(br *bufio.Reader, limit int) (status int, body []byte, keep, began bool, err error) {
	for {
		st, length, chunked, ka, n, herr := readHead(br)
		began = began || n > 0
		if herr != nil {
			return st, nil, false, began, herr
		}
		if st >= 100 && st < 200 {
			continue
		}
		switch {
		case st == 204 || st == 304:
			return st, nil, ka, true, nil
		case chunked:
			body, err = readBounded(httputil.NewChunkedReader(br), limit)
			if err == nil {
				err = skipTrailer(br)
			}
		case length >= 0:
			if length > int64(limit) {
				return st, nil, false, true, errTooLarge
			}
			body = make([]byte, length)
			_, err = io.ReadFull(br, body)
		default: // delimited by the end of the connection
			ka = false
			body, err = readBounded(br, limit)
		}
		return st, body, ka && err == nil, true, err
	}
}

// readHead reads a status line and headers. length is -1 when there is no
// Content-Length. n counts the bytes read.
func readHead(br *bufio.Reader) (status int, length int64, chunked, keep bool, n int, err error) {
	length = -1
	line, err := br.ReadSlice('\n')
	n += len(line)
	if err != nil {
		return 0, -1, false, false, n, err
	}
	line = trimCRLF(line)
	// "HTTP/1.1 200 OK": version, space, three digits.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, -1, false, false, n, errResponse
	}
	keep = line[7] == '1'
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 || len(line) > 12 && line[12] != ' ' {
		return 0, -1, false, false, n, errResponse
	}
	for {
		line, err = br.ReadSlice('\n')
		n += len(line)
		if err != nil {
			return status, -1, false, false, n, fmt.Errorf("reading response headers: %w", err)
		}
		if n > maxHeaderBytes {
			return status, -1, false, false, n, errResponse
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			return status, length, chunked, keep, n, nil
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return status, -1, false, false, n, errResponse
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			v, perr := strconv.ParseInt(string(value), 10, 64)
			if perr != nil || v < 0 || length >= 0 && length != v {
				return status, -1, false, false, n, errResponse
			}
			length = v
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !asciiEqualFold(value, "chunked") {
				return status, -1, false, false, n, errResponse
			}
			chunked = true
		case asciiEqualFold(name, "Connection"):
			if hasToken(value, "close") {
				keep = false
			} else if hasToken(value, "keep-alive") {
				keep = true
			}
		}
	}
}

// skipTrailer reads the trailer section after a chunked body.
func skipTrailer(br *bufio.Reader) error {
	for n := 0; ; {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if err != nil {
			return err
		}
		if n > maxHeaderBytes {
			return errResponse
		}
		if len(trimCRLF(line)) == 0 {
			return nil
		}
	}
}

// readBounded reads r to its end, failing with errTooLarge past limit.
func readBounded(r io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte{','})
		if asciiEqualFold(bytes.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
