package receiver

import (
	"bytes"
	"unicode/utf8"

	"github.com/imedge/imedge/audit"
)

// maxDepth bounds the nesting of objects and arrays in a body.
const maxDepth = 32

// bigObject is the key count past which an object's duplicate check moves
// from a linear scan to a map, so a body with many keys stays linear.
const bigObject = 16

// scanner validates a JSON document in one pass over its bytes, building
// nothing that is thrown away. It is strict where parsers disagree: the
// grammar of RFC 8259, UTF-8 only, no lone surrogate escapes, no duplicate
// keys (after unescaping) in any object, bounded depth, no trailing data.
//
// Errors come in two classes. A syntax error (reason bad_json) stops the
// scan. A semantic error (the command's own rules, e.g. bad_account) is
// recorded and the scan goes on, so a body that is not even JSON is always
// reported as bad_json; of several semantic errors the one of highest
// priority is kept. A scanner is reused through the Handler's pool; it is
// not safe for concurrent use.
type scanner struct {
	data  []byte
	pos   int
	depth int

	syntax string // detail of the first syntax error; "" while none

	sem        audit.Reason // highest-priority semantic error so far
	semPath    string       // the field it concerns, from the catalog
	semProblem string       // fixed text

	keys   []keySpan // keys of the objects being scanned, innermost last
	arena  []byte    // decoded key bytes that keys point into
	frames []frame   // one per open object
	buf    []byte    // scratch for decoding a string value
}

// keySpan locates one decoded key in the arena.
type keySpan struct{ off, end int }

// frame is an open object: where its keys start, and a set of them once it
// is big.
type frame struct {
	firstKey int
	arenaOff int
	set      map[string]struct{}
}

// reset prepares s for data, keeping its buffers.
func (s *scanner) reset(data []byte) {
	s.data, s.pos, s.depth = data, 0, 0
	s.syntax, s.sem, s.semPath, s.semProblem = "", "", "", ""
	s.keys, s.arena, s.frames = s.keys[:0], s.arena[:0], s.frames[:0]
	s.buf = s.buf[:0]
}

// release drops the reference to the body so a pooled scanner does not pin it.
func (s *scanner) release() {
	s.data = nil
	clear(s.frames[:cap(s.frames)])
	s.frames = s.frames[:0]
}

func (s *scanner) failed() bool { return s.syntax != "" }

// fail records a syntax error (the first one wins) and returns false.
func (s *scanner) fail(detail string) bool {
	if s.syntax == "" {
		s.syntax = detail
	}
	return false
}

// semPriority orders semantic errors; lower wins.
func semPriority(r audit.Reason) int {
	switch r {
	case audit.CommandMismatch:
		return 1
	case audit.BadPairList:
		return 2
	case audit.BadAccount:
		return 3
	case "":
		return 1 << 30
	}
	return 4
}

// semantic records a semantic error, the problem (fixed text) with the
// field at path, unless one of higher priority is known. The audit detail
// is built from the two only when the body is refused.
func (s *scanner) semantic(r audit.Reason, path, problem string) {
	if semPriority(r) < semPriority(s.sem) {
		s.sem, s.semPath, s.semProblem = r, path, problem
	}
}

// ws skips JSON whitespace.
func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// end checks that only whitespace is left.
func (s *scanner) end() bool {
	s.ws()
	if s.pos != len(s.data) {
		return s.fail("trailing data after JSON value")
	}
	return true
}

// value scans any JSON value.
func (s *scanner) value() bool {
	switch c := s.peek(); {
	case c == '{':
		if !s.openObject() {
			return false
		}
		for more := s.member(true); more; more = s.member(false) {
			if !s.value() {
				return false
			}
		}
		return !s.failed()
	case c == '[':
		if !s.openArray() {
			return false
		}
		for more := s.element(true); more; more = s.element(false) {
			if !s.value() {
				return false
			}
		}
		return !s.failed()
	case c == '"':
		st := s.str()
		if st.bad {
			return s.fail("malformed string")
		}
		if st.badText {
			return s.fail("invalid UTF-8 or lone surrogate in string")
		}
		return true
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 0 && s.pos == len(s.data):
		return s.fail("unexpected end of JSON")
	}
	return s.fail("unexpected byte in JSON")
}

func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("bad literal")
	}
	s.pos += len(lit)
	return true
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return s.fail("bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == j {
			return s.fail("bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		if i == j {
			return s.fail("bad number")
		}
	}
	s.pos = i
	return true
}

// strInfo describes a scanned string.
type strInfo struct {
	raw     []byte // bytes between the quotes, escapes not decoded
	escaped bool   // raw holds at least one backslash escape
	n       int    // length in bytes once decoded
	bad     bool   // not a JSON string (unterminated, control byte, bad escape)
	badText bool   // a JSON string, but invalid UTF-8 or a lone surrogate escape
}

// str scans the string at s.pos (which holds '"'). On bad the position is
// unspecified and the scan must stop; on badText the whole string was
// consumed and the caller decides the reason.
func (s *scanner) str() strInfo {
	d := s.data
	i := s.pos + 1
	start := i
	var st strInfo
	for {
		// Fast path: a run of printable ASCII other than '"' and '\\'.
		j := i
		for j < len(d) {
			if c := d[j]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			j++
		}
		st.n += j - i
		i = j
		if i >= len(d) {
			st.bad = true
			return st
		}
		c := d[i]
		switch {
		case c == '"':
			st.raw = d[start:i]
			s.pos = i + 1
			return st
		case c == '\\':
			st.escaped = true
			if i+1 >= len(d) {
				st.bad = true
				return st
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				st.n++
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					st.bad = true
					return st
				}
				i += 6
				switch {
				case 0xD800 <= r && r < 0xDC00:
					lo, ok := rune(0), false
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						lo, ok = hex4(d, i+2)
						if !ok {
							st.bad = true
							return st
						}
					}
					if ok && 0xDC00 <= lo && lo < 0xE000 {
						st.n += 4
						i += 6
					} else {
						st.badText = true // lone high surrogate; what follows is scanned normally
					}
				case 0xDC00 <= r && r < 0xE000:
					st.badText = true
				default:
					st.n += utf8.RuneLen(r)
				}
			default:
				st.bad = true
				return st
			}
		case c < 0x20:
			st.bad = true
			return st
		case c < utf8.RuneSelf:
			st.n++
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				st.badText = true
			}
			st.n += size
			i += size
		}
	}
}

// hex4 decodes the four hex digits at d[i:].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		if !ishex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// decode appends the unescaped form of raw, a string's content already
// validated by str without badText, to dst.
func decode(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if 0xD800 <= r && r < 0xDC00 {
				lo, _ := hex4(raw, i+2)
				r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// text returns the decoded content of a string scanned by str, using the
// scratch buffer when it holds escapes. The result is valid until the next
// call.
func (s *scanner) text(st strInfo) []byte {
	if !st.escaped {
		return st.raw
	}
	s.buf = decode(s.buf[:0], st.raw)
	return s.buf
}

// openObject consumes '{' at the current position and opens a frame.
func (s *scanner) openObject() bool {
	s.pos++
	s.depth++
	if s.depth > maxDepth {
		return s.fail("JSON nested too deeply")
	}
	s.frames = append(s.frames, frame{firstKey: len(s.keys), arenaOff: len(s.arena)})
	return true
}

// closeObject consumes '}' and drops the innermost frame.
func (s *scanner) closeObject() {
	s.pos++
	s.depth--
	f := &s.frames[len(s.frames)-1]
	s.keys, s.arena = s.keys[:f.firstKey], s.arena[:f.arenaOff]
	f.set = nil
	s.frames = s.frames[:len(s.frames)-1]
}

// member advances to the next member of the innermost object: it consumes
// the separator, the key and the colon, checks the key is not a duplicate,
// and returns true with the decoded key; or it consumes the closing brace
// and returns false. It also returns false on a syntax error (see failed).
// The key is valid until the next member call.
func (s *scanner) member(first bool) bool {
	c := s.peek()
	if c == '}' {
		s.closeObject()
		return false
	}
	if !first {
		if c != ',' {
			return s.fail("expected , or } in object")
		}
		s.pos++
		c = s.peek()
	}
	if c != '"' {
		return s.fail("expected string key in object")
	}
	st := s.str()
	if st.bad {
		return s.fail("malformed string")
	}
	if st.badText {
		return s.fail("invalid UTF-8 or lone surrogate in key")
	}
	if !s.addKey(st) {
		return false
	}
	if s.peek() != ':' {
		return s.fail("expected : after object key")
	}
	s.pos++
	return true
}

// lastKey returns the key consumed by the latest member call.
func (s *scanner) lastKey() []byte {
	k := s.keys[len(s.keys)-1]
	return s.arena[k.off:k.end]
}

// addKey records a key of the innermost object, refusing a duplicate.
func (s *scanner) addKey(st strInfo) bool {
	off := len(s.arena)
	if st.escaped {
		s.arena = decode(s.arena, st.raw)
	} else {
		s.arena = append(s.arena, st.raw...)
	}
	key := s.arena[off:]
	f := &s.frames[len(s.frames)-1]
	if f.set != nil {
		if _, dup := f.set[string(key)]; dup {
			return s.fail("duplicate key in object")
		}
		f.set[string(key)] = struct{}{}
	} else {
		for _, k := range s.keys[f.firstKey:] {
			if bytes.Equal(s.arena[k.off:k.end], key) {
				return s.fail("duplicate key in object")
			}
		}
		if len(s.keys)-f.firstKey == bigObject {
			f.set = make(map[string]struct{}, 2*bigObject)
			for _, k := range s.keys[f.firstKey:] {
				f.set[string(s.arena[k.off:k.end])] = struct{}{}
			}
			f.set[string(key)] = struct{}{}
		}
	}
	s.keys = append(s.keys, keySpan{off: off, end: len(s.arena)})
	return true
}

// openArray consumes '['.
func (s *scanner) openArray() bool {
	s.pos++
	s.depth++
	if s.depth > maxDepth {
		return s.fail("JSON nested too deeply")
	}
	return true
}

// element advances to the next element of the innermost array, consuming
// the separator; it returns false after consuming the closing bracket, or
// on a syntax error.
func (s *scanner) element(first bool) bool {
	c := s.peek()
	if c == ']' && first {
		s.pos++
		s.depth--
		return false
	}
	if !first {
		switch c {
		case ']':
			s.pos++
			s.depth--
			return false
		case ',':
			s.pos++
		default:
			return s.fail("expected , or ] in array")
		}
	}
	return true
}
