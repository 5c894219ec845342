package h1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
)

// maxDiscard is how much of a body the handler left unread the server
// reads and drops to keep the connection; beyond it the connection closes.
const maxDiscard = 256 << 10

// body is a request body: Content-Length bytes, or a chunked body and its
// trailer, read from the connection's buffered reader. It sends 100
// Continue before its first read when the client asked for it.
type body struct {
	mu      sync.Mutex // a handler may read from a goroutine of its own
	done    bool       // the handler returned: reads fail
	c       *conn
	n       int64     // bytes left of a Content-Length body
	chunks  io.Reader // chunked body; nil for Content-Length
	sawEOF  bool
	err     error // sticky read error
	pending bool  // 100 Continue owed before the first read
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *body) read(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.pending {
		b.pending = false
		if err := b.c.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	var n int
	var err error
	if b.chunks == nil {
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.c.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			b.sawEOF, err = true, io.EOF
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	} else {
		n, err = b.chunks.Read(p)
		if errors.Is(err, io.EOF) {
			err = b.readTrailer()
			if err == nil {
				b.sawEOF, err = true, io.EOF
			}
		}
	}
	if err != nil && !b.sawEOF {
		b.err = err
	}
	return n, err
}

// maxTrailerBytes bounds a chunked body's trailer section: net/http's
// server refuses one that does not fit its 4 KiB read buffer.
const maxTrailerBytes = 4 << 10

// errBadTrailer fails the read of a chunked body whose trailer section is
// malformed.
var errBadTrailer = errors.New("h1: malformed trailer section in a chunked body")

// readTrailer reads and drops a chunked body's trailer section, checking
// each field as a header field is checked (no obs-fold, a token name, a
// value without control characters), each line ended by CRLF, within
// maxTrailerBytes. Its fields are not handed to the handler.
func (b *body) readTrailer() error {
	lr := &b.c.lines
	lr.budget = min(b.c.s.maxHeaderBytes(), maxTrailerBytes)
	for {
		line, err := lr.line()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			var bad *badRequest
			if errors.As(err, &bad) {
				return fmt.Errorf("%w: over %d bytes", errBadTrailer, maxTrailerBytes)
			}
			return err
		}
		if !lr.crlf {
			// net/http's server needs the section to end in CRLF CRLF.
			return fmt.Errorf("%w: a line not ended by CRLF", errBadTrailer)
		}
		if len(line) == 0 {
			return nil
		}
		if _, _, err := checkField(line); err != nil {
			return fmt.Errorf("%w: %w", errBadTrailer, err)
		}
	}
}

// Close does nothing: what is left of the body is dropped, or the
// connection closed, after the handler returns.
func (b *body) Close() error { return nil }

// What end found of a body once its handler returned.
const (
	bodyDone   = iota // read to its end: the connection can carry on
	bodyUnread        // a rest is unread: drop it (see drop) to carry on
	bodyClose         // the connection must close
)

// end ends the body's life with its request (later reads fail) and says
// what is left of it. With mayKeep false, or when a read failed, or when
// the client still waits for 100 Continue (it may never send the body),
// or when more than maxDiscard of a Content-Length body is left, an unread
// rest closes the connection.
func (b *body) end(mayKeep bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	switch {
	case b.sawEOF:
		return bodyDone
	case !mayKeep || b.err != nil || b.pending:
		return bodyClose
	case b.chunks == nil && b.n > maxDiscard:
		return bodyClose // more than drop would take: say so in the answer
	}
	return bodyUnread
}

// drop reads and drops the unread rest of the body, at most maxDiscard,
// and reports whether it reached the body's end.
func (b *body) drop() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _ := io.CopyN(io.Discard, readFunc(b.read), maxDiscard+1)
	return b.sawEOF && n <= maxDiscard
}

// readFunc is an io.Reader made of a read function.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// newBody returns the request body h announces, set up in b (zero), or
// http.NoBody.
func newBody(c *conn, h *head, b *body) io.ReadCloser {
	if !h.chunked && h.length == 0 {
		return http.NoBody
	}
	b.c, b.n, b.pending = c, h.length, h.expect100
	if h.chunked {
		b.chunks = httputil.NewChunkedReader(c.br)
	}
	return b
}
