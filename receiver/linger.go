package receiver

import (
	"net/http"
	"strings"
	"time"
)

// The bounds of a refusal's linger over HTTP/2 (see linger). lingerTime
// and lingerBytes are edge's defaults for the lingering close of an HTTP/1
// connection too; lingerGap is how long a client may pause its upload
// before the linger ends.
const (
	lingerTime  = 5 * time.Second
	lingerBytes = 4 << 20
	lingerGap   = 250 * time.Millisecond
)

// linger runs after a refusal that did not read the request body (the
// decision was made before reading it). Over HTTP/2 it sends the answer at
// once, then reads and drops the rest of the body until the client's end
// of stream, for at most lingerBytes and lingerTime, never past the
// server's ReadTimeout counted from the request's arrival, and stopping
// when the client pauses for lingerGap, before the handler returns and the
// stream ends. Ending the stream with the client still uploading resets
// it (RST_STREAM after the answer), and a client that stops uploading at
// an error status (curl does) can then lose the answer's body; clients
// that stop without ending their side (Go's) cost the gap. Nothing read is
// kept or looked at. It starts no goroutine: the stream's handler does it.
//
// Over HTTP/1 it does nothing: the server closes the connection after such
// an answer (closeAfter) or drains a small rest itself, and edge's
// lingering close keeps the answer from being lost to a reset there. A
// client that asked to send its body only once allowed (Expect:
// 100-continue) is not asked for it.
func (h *Handler) linger(w http.ResponseWriter, r *http.Request, rq *request) {
	if r.ProtoMajor != 2 || rq.bodyRead || rq.status < 400 || r.ContentLength == 0 || r.Body == nil ||
		r.Body == http.NoBody || strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return
	}
	now := time.Now()
	end := now.Add(lingerTime)
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
		if left := srv.ReadTimeout - h.o.Now().Sub(rq.start); left < lingerTime {
			end = now.Add(left)
		}
	}
	rc := http.NewResponseController(w)
	if !end.After(now) || rc.Flush() != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for left := int64(lingerBytes); left > 0; {
		dl := time.Now().Add(lingerGap)
		if dl.After(end) {
			dl = end
		}
		if rc.SetReadDeadline(dl) != nil {
			return
		}
		n, err := r.Body.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			return
		}
	}
}
