package receiver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
)

func BenchmarkParseQuery(b *testing.B) {
	raw := goodQuery + "&Sign=" + vectorSign + "&RequestTime=" + vectorTime + "&RequestId=3f2c0a4e-1b2c-4d5e-8f90-123456789abc"
	b.ReportAllocs()
	for b.Loop() {
		var qq query
		if _, ok := parseQuery(raw, &qq); !ok {
			b.Fatal("refused")
		}
	}
}

// bodyOfPairs returns a FriendDelete body with n pairs of 10-byte ids.
func bodyOfPairs(n int) []byte {
	acc := make([]string, 0, 2*n)
	for i := range n {
		acc = append(acc, fmt.Sprintf("user%06d", i), fmt.Sprintf("peer%06d", i))
	}
	return []byte(pairs(acc...))
}

// ruleFor compiles the catalog entry of command with the default account
// bound.
func ruleFor(tb testing.TB, command string) *bodyRule {
	tb.Helper()
	cmd, ok := catalog.New().Lookup(command)
	require.True(tb, ok, command)
	return compileCommand(cmd, DefaultMaxAccountBytes)
}

func BenchmarkValidateBody(b *testing.B) {
	rule := ruleFor(b, CommandFriendDelete)
	for _, n := range []int{3, 1000} {
		body := bodyOfPairs(n)
		b.Run(fmt.Sprintf("pairs=%d", n), func(b *testing.B) {
			benchValidate(b, rule, CommandFriendDelete, body)
		})
	}
	const c2c = "C2C.CallbackAfterSendMsg"
	b.Run("C2C.CallbackAfterSendMsg/example", func(b *testing.B) {
		benchValidate(b, ruleFor(b, c2c), c2c, exampleOf(b, c2c))
	})
	b.Run("C2C.CallbackAfterSendMsg/msgbody=1MB", func(b *testing.B) {
		benchValidate(b, ruleFor(b, c2c), c2c, bigMsgBody(1<<20))
	})
}

func benchValidate(b *testing.B, rule *bodyRule, command string, body []byte) {
	s := new(scanner)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if v := s.validate(body, rule, command); v.reason != "" {
			b.Fatal(v.reason, v.detail)
		}
	}
}

// bigMsgBody returns a C2C.CallbackAfterSendMsg body of about size bytes:
// the catalog's example with a MsgBody of text elements (mixed ASCII and
// CJK, some escapes) and one custom element carrying a long JSON string,
// as a large message would.
func bigMsgBody(size int) []byte {
	var elems []string
	n := 0
	for i := 0; n < size/2; i++ {
		e := fmt.Sprintf(`{"MsgType":"TIMTextElem","MsgContent":{"Text":"line %d: 红包 and \"quotes\" \u4e2d"}}`, i)
		elems = append(elems, e)
		n += len(e) + 1
	}
	const unit = `{\"k\":\"v\",\"n\":12345}`
	data := strings.Repeat(unit, max(size-n-600, 0)/len(unit))
	elems = append(elems, `{"MsgType":"TIMCustomElem","MsgContent":{"Data":"`+data+`","Desc":"notification","Ext":"url"}}`)
	return []byte(`{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"jared","To_Account":"Jonh","MsgSeq":48374,` +
		`"MsgRandom":2837546,"MsgTime":1557481126,"MsgKey":"48374_2837546_1557481126","OnlineOnlyFlag":0,"SendMsgResult":0,` +
		`"ErrorInfo":"send msg succeed","UnreadMsgNum":7,"MsgBody":[` + strings.Join(elems, ",") + `],"CloudCustomData":"","EventTime":1670574414123}`)
}

// exampleOf returns the catalog's example body of command.
func exampleOf(tb testing.TB, command string) []byte {
	tb.Helper()
	cmd, ok := catalog.New().Lookup(command)
	require.True(tb, ok, command)
	return cmd.Example()
}

func BenchmarkEventID(b *testing.B) {
	body := []byte(goodBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = EventID(testAppID, CommandFriendDelete, body)
	}
}

// discardSink accepts everything and keeps nothing.
type discardSink struct{}

func (discardSink) Accept(context.Context, Event) error { return nil }

func BenchmarkServeHTTP(b *testing.B) {
	for _, tc := range []struct {
		name  string
		token bool
	}{{"mtls", false}, {"mtls+token", true}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, func(o *Options) {
				o.Sink = discardSink{}
				if tc.token {
					withToken(o)
				}
			})
			query := goodQuery
			if tc.token {
				query = q("+Sign="+vectorSign, "+RequestTime="+vectorTime)
			}
			body := goodBody
			r := f.request(query, body)
			b.ReportAllocs()
			for b.Loop() {
				r.Body = readCloser{strings.NewReader(body)}
				w := httptest.NewRecorder()
				f.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func TestBenchmarkHelpers(t *testing.T) {
	f := newFixture(t, nil)
	w := f.serve(f.request(goodQuery, string(bodyOfPairs(1000))))
	require.Equal(t, http.StatusOK, w.Code, "a 1000-pair body is accepted")

	big := bigMsgBody(1 << 20)
	require.InDelta(t, 1<<20, len(big), 4096, "about 1 MiB")
	require.True(t, json.Valid(big))
	f = newFixture(t, func(o *Options) { o.MaxBody = 2 << 20 })
	w = f.serve(f.request(q("CallbackCommand=C2C.CallbackAfterSendMsg"), string(big)))
	require.Equal(t, http.StatusOK, w.Code, "the 1 MiB message is accepted: %s", w.Body.String())
}
