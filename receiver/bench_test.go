package receiver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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

func BenchmarkValidateBody(b *testing.B) {
	for _, n := range []int{3, 1000} {
		body := bodyOfPairs(n)
		b.Run(fmt.Sprintf("pairs=%d", n), func(b *testing.B) {
			s := new(scanner)
			lim := limits{maxAccount: DefaultMaxAccountBytes}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if v := validateFriendDelete(s, body, lim); v.reason != "" {
					b.Fatal(v.reason, v.detail)
				}
			}
		})
	}
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
}
