package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
)

// FuzzQuery checks parseQuery against net/url and the ClientIP and
// OptPlatform helpers against their contracts, on arbitrary raw queries.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{
		goodQuery,
		goodQuery + "&Sign=" + vectorSign + "&RequestTime=" + vectorTime + "&RequestId=x",
		"SdkAppid=1&SdkAppId=1",
		"sdkappid=1&x=%zz",
		"a=1;b=2",
		"ClientIP=fe80::1%25eth0&OptPlatform=%0d%0a",
		"Sdk%41ppid=1+2&&=&%20=",
		"ClientIP=::ffff:1.2.3.4&OptPlatform=ios",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var qq query
		_, ok := parseQuery(raw, &qq)
		checkQueryAgainstNetURL(t, raw, &qq, ok)

		ipRaw, _ := qq.get(paramClientIP)
		if ip, ok := parseClientIP(ipRaw); ok {
			assert.True(t, ip.IsValid())
			assert.Empty(t, ip.Zone())
			assert.False(t, ip.Is4In6(), "unmapped")
			again, ok := parseClientIP(ip.String())
			assert.True(t, ok, "canonical form parses")
			assert.Equal(t, ip, again)
		}
		p, _ := qq.get(paramPlatform)
		n := normalisePlatform(p)
		assert.LessOrEqual(t, len(n), maxPlatform)
		for i := 0; i < len(n); i++ {
			assert.True(t, n[i] > 0x20 && n[i] < 0x7f, "header-safe platform")
		}
		assert.Equal(t, n, normalisePlatform(n), "normalising is idempotent")
	})
}

// FuzzBody checks the Sns.CallbackFriendDelete validator against a
// reference built on encoding/json: it never panics, whatever it accepts
// is valid JSON satisfying every rule, what encoding/json refuses it
// refuses as bad_json, and it agrees with the reference whenever the
// reference can see everything (no U+FFFD, which hides bad UTF-8 and lone
// surrogates from encoding/json).
func FuzzBody(f *testing.F) {
	for _, s := range []string{
		goodBody,
		pairs("张三", "李四", "A", "B", "B", "A"),
		`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[]}`,
		`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"\ud83d\ude42","To_Account":"b","x":[1,{"y":null}]}],"E":1.5e-3}`,
		`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"a\ud800","To_Account":"b"}]}`,
		`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[],"PairList":[]}`,
		`{"CallbackCommand":"Sns.CallbackFriendDelete","pairlist":[]}`,
		`{"a":` + nest(40) + `}`,
		"{\"CallbackCommand\":\"Sns.CallbackFriendDelete\",\"PairList\":[{\"From_Account\":\"\xff\",\"To_Account\":\"b\"}]}",
		`[1,2]`, `-0.0e+1`, `"x"`, ``, `{`, `{"a":1}x`,
	} {
		f.Add([]byte(s))
	}
	reused := new(scanner)
	cat := catalog.New()
	fd, _ := cat.Lookup(CommandFriendDelete)
	fdRule := compileCommand(fd, DefaultMaxAccountBytes)
	var others []*catalog.Command
	var otherRules []*bodyRule
	for _, c := range cat.Commands() {
		cmd, _ := cat.Lookup(c.Name)
		others = append(others, cmd)
		otherRules = append(otherRules, compileCommand(cmd, DefaultMaxAccountBytes))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		got := new(scanner).validate(body, fdRule, CommandFriendDelete)
		again := reused.validate(body, fdRule, CommandFriendDelete)
		reused.release()
		require.Equal(t, got, again, "a reused scanner gives the same verdict")
		require.Equal(t, orig, body, "the body is not modified")

		// Every command's validator keeps the scanner's guarantees on the
		// same input: what it accepts is valid JSON in UTF-8, and what
		// encoding/json refuses it refuses as bad_json.
		valid := json.Valid(body)
		for i, cmd := range others {
			v := reused.validate(body, otherRules[i], cmd.Name)
			reused.release()
			if v.reason == "" {
				require.True(t, valid && utf8.Valid(body), "%s accepted invalid JSON", cmd.Name)
			} else if !valid {
				require.Equal(t, audit.BadJSON, v.reason, "%s: encoding/json refuses this body", cmd.Name)
			}
		}

		ref := referenceFriendDelete(body, DefaultMaxAccountBytes)
		if got.reason == "" {
			require.True(t, json.Valid(body), "accepted invalid JSON")
			require.True(t, utf8.Valid(body), "accepted invalid UTF-8")
			require.Empty(t, ref.reason, "reference refuses an accepted body: %s", ref.detail)
			assert.Equal(t, ref.empty, got.empty)
			return
		}
		if !json.Valid(body) {
			require.Equal(t, audit.BadJSON, got.reason, "encoding/json refuses this body")
		}
		if !ref.blind {
			require.NotEmpty(t, ref.reason, "refused (%s: %s) a body the reference accepts", got.reason, got.detail)
			if ref.reason == audit.BadJSON {
				assert.Equal(t, audit.BadJSON, got.reason, "reference: %s", ref.detail)
			}
		}
	})
}

// refVerdict is the reference's outcome; blind means it cannot judge
// UTF-8 problems (the decoded text holds U+FFFD).
type refVerdict struct {
	reason audit.Reason
	detail string
	empty  bool
	blind  bool
}

// referenceFriendDelete validates a body the slow, obvious way: a token
// walk of encoding/json into generic values, checking every rule.
func referenceFriendDelete(body []byte, maxAccount int) refVerdict {
	var v refVerdict
	if !json.Valid(body) {
		return refVerdict{reason: audit.BadJSON, detail: "invalid JSON"}
	}
	if !utf8.Valid(body) {
		v.blind = true
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return refVerdict{reason: audit.BadJSON, detail: "BOM"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	val, err := refValue(dec, 0, &v)
	if err != nil {
		v.reason, v.detail = audit.BadJSON, err.Error()
		return v
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		v.reason, v.detail = audit.BadJSON, "trailing data"
		return v
	}
	top, ok := val.(map[string]any)
	if !ok {
		v.reason, v.detail = audit.BadJSON, "top level not an object"
		return v
	}
	for k := range top {
		if k != "CallbackCommand" && k != "PairList" && (strings.EqualFold(k, "CallbackCommand") || strings.EqualFold(k, "PairList")) {
			v.reason, v.detail = audit.BadJSON, "case-folded key"
			return v
		}
	}
	pl, hasPL := top["PairList"]
	list, isList := pl.([]any)
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			for k := range m {
				if k != "From_Account" && k != "To_Account" && (strings.EqualFold(k, "From_Account") || strings.EqualFold(k, "To_Account")) {
					v.reason, v.detail = audit.BadJSON, "case-folded key"
					return v
				}
			}
		}
	}
	if cmd, ok := top["CallbackCommand"].(string); !ok || cmd != CommandFriendDelete {
		v.reason, v.detail = audit.CommandMismatch, "command"
		return v
	}
	if !hasPL || !isList {
		v.reason, v.detail = audit.BadPairList, "PairList"
		return v
	}
	reason := audit.Reason("")
	for _, el := range list {
		m, ok := el.(map[string]any)
		if !ok {
			reason = audit.BadPairList
			break
		}
		from, okF := m["From_Account"]
		to, okT := m["To_Account"]
		if !okF || !okT {
			reason = audit.BadPairList
			break
		}
		for _, a := range []any{from, to} {
			s, ok := a.(string)
			if !ok || s == "" || len(s) > maxAccount || !utf8.ValidString(s) {
				if reason == "" {
					reason = audit.BadAccount
				}
			}
		}
	}
	if reason != "" {
		v.reason, v.detail = reason, "pairs"
		return v
	}
	v.empty = len(list) == 0
	return v
}

// refValue reads one value, refusing duplicate keys and depth over
// maxDepth, and marks the verdict blind when a decoded string holds U+FFFD.
func refValue(dec *json.Decoder, depth int, v *refVerdict) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth+1 > maxDepth {
			return nil, errors.New("too deep")
		}
		if t == '{' {
			m := make(map[string]any)
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k := kt.(string)
				if strings.ContainsRune(k, utf8.RuneError) {
					v.blind = true
				}
				if _, dup := m[k]; dup {
					return nil, errors.New("duplicate key")
				}
				val, err := refValue(dec, depth+1, v)
				if err != nil {
					return nil, err
				}
				m[k] = val
			}
			_, err := dec.Token()
			return m, err
		}
		var a []any
		for dec.More() {
			val, err := refValue(dec, depth+1, v)
			if err != nil {
				return nil, err
			}
			a = append(a, val)
		}
		_, err := dec.Token()
		if a == nil {
			a = []any{}
		}
		return a, err
	case string:
		if strings.ContainsRune(t, utf8.RuneError) {
			v.blind = true
		}
		return t, nil
	default:
		return t, nil
	}
}
