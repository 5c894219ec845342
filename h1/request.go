package h1

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// head is a parsed request line and header block.
type head struct {
	method, target string
	minor          int // 1 for HTTP/1.1, 0 for HTTP/1.0
	header         http.Header
	length         int64 // Content-Length; -1 with chunked
	chunked        bool
	expect100      bool
	close          bool // the client asked to close after this request (or is HTTP/1.0): Request.Close
	closeConn      bool // close after this request: close, or "close" anywhere in Connection (see framing)
}

// badRequest is a request the server refuses on its own: answered with
// status, then the connection is closed.
type badRequest struct {
	status int
	detail string
}

func (e *badRequest) Error() string { return e.detail }

func refuse(status int, detail string) error { return &badRequest{status: status, detail: detail} }

// errHeaderTooLarge ends a header block over the byte limit.
var errHeaderTooLarge = refuse(http.StatusRequestHeaderFieldsTooLarge, "request header block over --max-header-bytes")

// lineReader reads CRLF- (or LF-) terminated lines from br within a byte
// budget, using scratch for lines longer than br's buffer.
type lineReader struct {
	br      *bufio.Reader
	budget  int
	scratch []byte
	crlf    bool // the last line ended with CRLF, not a bare LF

	// The header fields of the request being read: their values are
	// collected in arena and turned into strings with one allocation.
	arena  []byte
	fields []field
	key    [64]byte // a header name being canonicalised
}

// field is a header field whose value is arena[start:end].
type field struct {
	key        string
	start, end int
}

// line returns the next line without its terminator; it is valid until
// the next call. Running over the budget returns errHeaderTooLarge.
func (lr *lineReader) line() ([]byte, error) {
	b, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.scratch = append(lr.scratch[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.scratch) > lr.budget {
				return nil, errHeaderTooLarge
			}
			b, err = lr.br.ReadSlice('\n')
			lr.scratch = append(lr.scratch, b...)
		}
		b = lr.scratch
	}
	lr.budget -= len(b)
	if lr.budget < 0 {
		return nil, errHeaderTooLarge
	}
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1]
	n := len(b)
	lr.crlf = n > 0 && b[n-1] == '\r'
	if lr.crlf {
		b = b[:n-1]
	}
	return b, nil
}

// readHead reads and checks one request line and header block. Errors
// are a *badRequest for a request to refuse, or the reader's error
// (io.EOF, a timeout) when the bytes stopped coming.
//
// The header map's values are slices of spare when it holds enough
// strings, so that a request's usual few fields take no allocation of
// their own.
func readHead(lr *lineReader, h *head, spare []string) error {
	lr.arena, lr.fields = lr.arena[:0], lr.fields[:0]
	line, err := lr.line()
	if err != nil {
		return err
	}
	if err := h.parseRequestLine(line); err != nil {
		return err
	}
	for {
		line, err := lr.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if err := lr.addField(line); err != nil {
			return err
		}
	}
	h.header = lr.header(spare)
	return h.framing()
}

func (h *head) parseRequestLine(line []byte) error {
	method, rest, ok := cut(line, ' ')
	if !ok || !isToken(method) {
		return refuse(http.StatusBadRequest, "malformed request line")
	}
	target, proto, ok := cut(rest, ' ')
	if !ok || len(target) == 0 || target[0] != '/' || !isTarget(target) {
		return refuse(http.StatusBadRequest, "request target is not an origin-form path")
	}
	switch string(proto) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
		h.close = true
	default:
		if len(proto) == 8 && strings.HasPrefix(string(proto), "HTTP/") && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return refuse(http.StatusHTTPVersionNotSupported, "HTTP version not supported")
		}
		return refuse(http.StatusBadRequest, "malformed request line")
	}
	h.method, h.target = methodString(method), string(target)
	return nil
}

// parseTarget parses an origin-form target (one isTarget accepts) into u,
// as url.ParseRequestURI does. A target whose path has only bytes a URL
// path keeps as they are (no percent escape) and whose query is absent or
// not empty is split at its first '?' without more work, which is what
// ParseRequestURI would return for it; any other goes through
// ParseRequestURI.
func parseTarget(target string, u *url.URL) error {
	path, query, hasQuery := strings.Cut(target, "?")
	if (!hasQuery || query != "") && plainPath(path) {
		*u = url.URL{Path: path, RawQuery: query}
		return nil
	}
	v, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	*u = *v
	return nil
}

// plainPath reports whether every byte of p is one url.URL keeps in a
// path as it is: unreserved, '/' or one of "$&+,:;=@".
func plainPath(p string) bool {
	for i := range len(p) {
		if !pathChars[p[i]] {
			return false
		}
	}
	return true
}

var pathChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	for _, c := range "-._~/$&+,:;=@" {
		t[c] = true
	}
	return t
}()

// methodString returns method as a string, without an allocation for the
// common methods.
func methodString(method []byte) string {
	switch string(method) {
	case http.MethodPost:
		return http.MethodPost
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	}
	return string(method)
}

func (lr *lineReader) addField(line []byte) error {
	name, value, err := checkField(line)
	if err != nil {
		return err
	}
	start := len(lr.arena)
	lr.arena = append(lr.arena, value...)
	lr.fields = append(lr.fields, field{key: lr.canonicalKey(name), start: start, end: len(lr.arena)})
	return nil
}

// checkField checks a header (or trailer) field line, which is not
// empty, and returns its name and its value without surrounding
// whitespace: no obs-fold, a token name followed by a colon, and a value
// without control characters other than tab.
func checkField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, refuse(http.StatusBadRequest, "obsolete header line folding")
	}
	name, value, ok := cut(line, ':')
	if !ok || !isToken(name) {
		return nil, nil, refuse(http.StatusBadRequest, "malformed header field name")
	}
	value = trimOWS(value)
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, refuse(http.StatusBadRequest, "control character in a header field value")
		}
	}
	return name, value, nil
}

// header builds the request's header map from the collected fields: one
// string holds every value, and one slice every field's value.
func (lr *lineReader) header(spare []string) http.Header {
	hd := make(http.Header, len(lr.fields))
	blob := string(lr.arena)
	vals := spare[:min(len(lr.fields), cap(spare))]
	if len(vals) < len(lr.fields) {
		vals = make([]string, len(lr.fields))
	}
	for i, f := range lr.fields {
		vals[i] = blob[f.start:f.end]
		if prev, ok := hd[f.key]; ok {
			hd[f.key] = append(prev, vals[i])
		} else {
			hd[f.key] = vals[i : i+1 : i+1]
		}
	}
	if cap(lr.arena) > 16<<10 {
		lr.arena = nil // a rare large header block is not kept for the connection's life
	}
	return hd
}

// canonicalKey returns the canonical form of a header name (a valid
// token), as http.CanonicalHeaderKey does, without allocating for the
// names callbacks carry.
func (lr *lineReader) canonicalKey(name []byte) string {
	if len(name) > len(lr.key) {
		return http.CanonicalHeaderKey(string(name))
	}
	b := lr.key[:len(name)]
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k := commonKey(b); k != "" {
		return k
	}
	return string(b)
}

// commonKey returns the interned string for the canonical header names
// IM's and common clients' requests carry, or "". A switch rather than a
// map: no hash to compute, and the comparison is by length first.
func commonKey(b []byte) string {
	switch string(b) {
	case "Accept":
		return "Accept"
	case "Accept-Encoding":
		return "Accept-Encoding"
	case "Accept-Language":
		return "Accept-Language"
	case "Cache-Control":
		return "Cache-Control"
	case "Connection":
		return "Connection"
	case "Content-Length":
		return "Content-Length"
	case "Content-Type":
		return "Content-Type"
	case "Expect":
		return "Expect"
	case "Host":
		return "Host"
	case "Pragma":
		return "Pragma"
	case "Te":
		return "Te"
	case "Trailer":
		return "Trailer"
	case "Transfer-Encoding":
		return "Transfer-Encoding"
	case "Upgrade":
		return "Upgrade"
	case "User-Agent":
		return "User-Agent"
	case "X-Forwarded-For":
		return "X-Forwarded-For"
	case "X-Real-Ip":
		return "X-Real-Ip"
	case "X-Request-Id":
		return "X-Request-Id"
	}
	return ""
}

// framing applies the header fields that decide how the request is
// framed and whether the connection stays open.
func (h *head) framing() error {
	hd := h.header
	switch hosts := hd["Host"]; {
	case len(hosts) > 1:
		return refuse(http.StatusBadRequest, "more than one Host header")
	case len(hosts) == 0 && h.minor == 1:
		return refuse(http.StatusBadRequest, "missing Host header")
	case len(hosts) == 1 && !isHost(hosts[0]):
		return refuse(http.StatusBadRequest, "malformed Host header")
	}
	if te := hd["Transfer-Encoding"]; len(te) > 0 {
		switch {
		case len(hd["Content-Length"]) > 0:
			return refuse(http.StatusBadRequest, "both Content-Length and Transfer-Encoding")
		case h.minor == 0:
			return refuse(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request")
		case len(te) != 1 || !strings.EqualFold(te[0], "chunked"):
			return refuse(http.StatusNotImplemented, "unsupported Transfer-Encoding")
		}
		h.chunked, h.length = true, -1
		for _, v := range hd["Trailer"] {
			// As net/http: a trailer may not carry framing fields.
			for _, k := range strings.Split(v, ",") {
				switch http.CanonicalHeaderKey(strings.Trim(k, " \t")) {
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return refuse(http.StatusBadRequest, "framing field named in Trailer")
				}
			}
		}
	}
	if cl := hd["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return refuse(http.StatusBadRequest, "differing Content-Length values")
			}
		}
		n, ok := parseLength(cl[0])
		if !ok {
			return refuse(http.StatusBadRequest, "malformed Content-Length")
		}
		h.length = n
	}
	if ex := hd["Expect"]; len(ex) > 0 {
		if len(ex) != 1 || !strings.EqualFold(ex[0], "100-continue") {
			return refuse(http.StatusExpectationFailed, "unsupported Expect")
		}
		h.expect100 = h.minor == 1
	}
	for _, v := range hd["Connection"] {
		if hasToken(v, "close") {
			h.close = true
		}
		// net/http's server also closes when "close" appears between
		// spaces or tabs ("a close"), while Request.Close says false.
		if hasWord(v, "close") {
			h.closeConn = true
		}
	}
	h.closeConn = h.closeConn || h.close
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// cut splits b at the first sep.
func cut(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// tokenChars marks RFC 9110 tchar bytes.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// isTarget accepts visible ASCII only: no space, control or non-ASCII
// byte (which a client must percent-encode) and no fragment.
func isTarget(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// hostChars marks the bytes of an RFC 3986 host with an optional port:
// unreserved, sub-delims, ':', '[', ']' and '%'.
var hostChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = tokenChars[c]
	}
	for _, c := range "#^`|" {
		t[c] = false
	}
	for _, c := range ":[]()*,;=" {
		t[c] = true
	}
	return t
}()

// isHost accepts a reg-name, IPv4 or bracketed IPv6 host with an optional
// port (see hostChars); empty is allowed, as RFC 9112 allows.
func isHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostChars[s[i]] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length: 1 to 18 decimal digits.
func parseLength(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasWord reports whether word (lower case) appears in v, compared
// case-insensitively, between the start or end of v, spaces, tabs or
// commas.
func hasWord(v, word string) bool {
	for i := 0; i+len(word) <= len(v); i++ {
		if (i == 0 || isWordBoundary(v[i-1])) &&
			(i+len(word) == len(v) || isWordBoundary(v[i+len(word)])) &&
			strings.EqualFold(v[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

func isWordBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// hasToken reports whether the comma-separated list v holds token,
// compared case-insensitively.
func hasToken(v, token string) bool {
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.Trim(item, " \t"), token) {
			return true
		}
	}
	return false
}
