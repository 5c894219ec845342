package h1

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// response is the http.ResponseWriter of one request. The body is
// buffered and written with the headers once the handler returns.
type response struct {
	h      http.Header
	status int
	body   []byte
	head   bool // a HEAD request: the body is counted, not sent
	keys   []string
	inline [256]byte // the first bytes of body, without an allocation
	ikeys  [8]string // the first keys, likewise
}

// Header returns the response header map.
func (w *response) Header() http.Header { return w.h }

// WriteHeader records the status; only the first call counts. 1xx
// statuses are not supported and are ignored.
func (w *response) WriteHeader(status int) {
	if w.status == 0 && status >= 200 && status <= 999 {
		w.status = status
	}
}

// Write appends to the buffered body.
func (w *response) Write(b []byte) (int, error) { return appendBody(w, b) }

// WriteString appends to the buffered body.
func (w *response) WriteString(s string) (int, error) { return appendBody(w, s) }

func appendBody[T string | []byte](w *response, b T) (int, error) {
	w.WriteHeader(http.StatusOK)
	if len(w.body)+len(b) > MaxResponseBytes {
		return 0, ErrResponseTooLarge
	}
	if w.body == nil {
		w.body = w.inline[:0]
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// framingHeader reports whether k is a field only the server sets; a
// handler's values for it are not sent.
func framingHeader(k string) bool {
	return k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" || k == "Date"
}

// writeResponse writes the status line, the handler's headers in sorted
// order, Date, Content-Length, Connection: close when the connection will
// not be reused, and the body; it reports whether the write succeeded.
func (c *conn) writeResponse(w *response, now time.Time, keep bool) bool {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(w.status), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	w.keys = w.ikeys[:0]
	for k := range w.h {
		if !framingHeader(k) {
			w.keys = append(w.keys, k)
		}
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		for _, v := range w.h[k] {
			if !validFieldName(k) {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			writeFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString(c.s.dateHeader(now))
	if w.status >= 200 && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		bw.WriteString("Content-Length: ")
		if cl := w.h.Get("Content-Length"); w.head && len(w.body) == 0 && validLength(cl) {
			bw.WriteString(cl) // a HEAD handler may state the length it would send
		} else {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(w.body)), 10))
		}
		bw.WriteString("\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if !w.head && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		bw.Write(w.body)
	}
	return bw.Flush() == nil
}

func validLength(s string) bool {
	_, ok := parseLength(s)
	return ok
}

func validFieldName(k string) bool {
	for i := 0; i < len(k); i++ {
		if !tokenChars[k[i]] {
			return false
		}
	}
	return k != ""
}

// writeFieldValue writes v with CR, LF and NUL replaced by spaces, so a
// handler's value can never end the header block.
func writeFieldValue(bw *bufio.Writer, v string) {
	if !strings.ContainsAny(v, "\r\n\x00") {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

// dateLine is a cached "Date: ...\r\n" header line for one second.
type dateLine struct {
	sec  int64
	line string
}

func (s *Server) dateHeader(now time.Time) string {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	d := &dateLine{sec: sec, line: "Date: " + now.UTC().Format(http.TimeFormat) + "\r\n"}
	s.date.Store(d)
	return d.line
}
