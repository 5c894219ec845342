package receiver

import (
	"net/netip"
	"strings"
)

// Query parameters the receiver reads. Names are matched ignoring ASCII
// case, because other Tencent products spell SdkAppid as SdkAppId.
const (
	paramAppID = iota
	paramCommand
	paramContentType
	paramClientIP
	paramPlatform
	paramSign
	paramRequestTime
	numParams

	paramIMRequestID = numParams // IM's RequestId: audited, never checked
	paramUnknown     = -1
)

// paramName returns the documented spelling of a parameter.
func paramName(id int) string {
	switch id {
	case paramAppID:
		return "SdkAppid"
	case paramCommand:
		return "CallbackCommand"
	case paramContentType:
		return "contenttype"
	case paramClientIP:
		return "ClientIP"
	case paramPlatform:
		return "OptPlatform"
	case paramSign:
		return "Sign"
	case paramRequestTime:
		return "RequestTime"
	case paramIMRequestID:
		return "RequestId"
	}
	return ""
}

// maxParamName is the longest parameter name the receiver knows.
const maxParamName = len("CallbackCommand")

// query holds the parameters of one callback URL. Values are decoded; a
// value without escapes shares memory with the raw query string.
type query struct {
	vals        [numParams]string
	has         uint8  // bit i set when parameter i appeared
	imRequestID string // first RequestId, for the audit record only
}

func (q *query) get(id int) (string, bool) { return q.vals[id], q.has&(1<<id) != 0 }

// parseQuery decodes raw (r.URL.RawQuery) into q. It follows
// url.ParseQuery's grammar ('&' separates, ';' is refused, '+' is a space,
// '%' must start a valid escape) but allocates only for escaped values of
// known parameters. A known parameter given twice under any spelling is an
// error: proxies and frameworks disagree on which copy wins, so a repeat is
// a smuggling attempt. On error q holds what was parsed before it, and the
// returned detail is a fixed text for the audit record.
func parseQuery(raw string, q *query) (detail string, ok bool) {
	for raw != "" {
		var seg string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			seg, raw = raw[:i], raw[i+1:]
		} else {
			seg, raw = raw, ""
		}
		if seg == "" {
			continue
		}
		if strings.IndexByte(seg, ';') >= 0 {
			return "semicolon in query", false
		}
		k, v, _ := strings.Cut(seg, "=")
		if !validEscapes(k) || !validEscapes(v) {
			return "bad percent-encoding in query", false
		}
		id := knownParam(k)
		switch {
		case id == paramUnknown:
			continue
		case id == paramIMRequestID:
			if q.imRequestID == "" {
				q.imRequestID = unescape(v)
			}
			continue
		case q.has&(1<<id) != 0:
			return "query parameter repeated", false
		}
		q.has |= 1 << id
		q.vals[id] = unescape(v)
	}
	return "", true
}

// knownParam returns the parameter id of the (still escaped) name k, or
// paramUnknown.
func knownParam(k string) int {
	var buf [maxParamName]byte
	n := 0
	for i := 0; i < len(k); i++ {
		if n == len(buf) {
			return paramUnknown
		}
		c := k[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			c = unhex(k[i+1])<<4 | unhex(k[i+2]) // escapes were validated
			i += 2
		}
		buf[n] = c
		n++
	}
	name := buf[:n]
	var candidates [2]int
	switch n {
	case 4:
		candidates = [2]int{paramSign, paramSign}
	case 8:
		candidates = [2]int{paramAppID, paramClientIP}
	case 9:
		candidates = [2]int{paramIMRequestID, paramIMRequestID}
	case 11:
		candidates = [2]int{paramContentType, paramPlatform}
		if equalFoldASCII(name, paramName(paramRequestTime)) {
			return paramRequestTime
		}
	case 15:
		candidates = [2]int{paramCommand, paramCommand}
	default:
		return paramUnknown
	}
	for _, id := range candidates {
		if equalFoldASCII(name, paramName(id)) {
			return id
		}
	}
	return paramUnknown
}

// equalFoldASCII reports whether b equals s ignoring ASCII case only.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

// equalFoldASCIIString is equalFoldASCII for two strings.
func equalFoldASCIIString(a, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validEscapes reports whether every '%' in s starts a two-hex-digit escape.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
			return false
		}
		s = s[i+3:]
		i = strings.IndexByte(s, '%')
	}
	return true
}

// unescape decodes a query component whose escapes were validated.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// parseClientIP parses IM's ClientIP: an IPv4 or IPv6 address without a
// zone. An IPv4-mapped IPv6 address is unmapped, so the same client has one
// canonical spelling (and one rate-limit key) whichever form IM used.
func parseClientIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// maxPlatform bounds an undocumented OptPlatform value that is passed on.
const maxPlatform = 64

// normalisePlatform maps OptPlatform, compared ignoring ASCII case, to its
// documented spelling. An undocumented value is passed on unchanged as long
// as it is printable and short (it travels on as an HTTP header of the
// forwarded request); one that is not, which IM never sends, becomes
// "Unknown" rather than being refused. Empty stays empty.
func normalisePlatform(s string) string {
	if s == "" {
		return ""
	}
	for _, p := range [...]string{"RESTAPI", "Web", "Android", "iOS", "Windows", "Mac", "macOS", "iPad", "Unknown"} {
		if equalFoldASCIIString(s, p) {
			return p
		}
	}
	if len(s) > maxPlatform {
		return "Unknown"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return "Unknown"
		}
	}
	return s
}
