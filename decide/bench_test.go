package decide

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/receiver"
)

// BenchmarkDecide_Allow is one decision through a Service: the call to a
// decision service on loopback (net/http server, included) that allows,
// the reply checked and relayed. Each iteration is a new question.
func BenchmarkDecide_Allow(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = io.WriteString(w, okBodyText)
	}))
	defer srv.Close()
	s, err := New(Options{Targets: []Target{{Pattern: "*", URL: srv.URL}}, SigningSecret: []byte("secret")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cmd, _ := catalog.New().Lookup("C2C.CallbackBeforeSendMsg")
	body := cmd.Example()
	ev := receiver.Event{AppID: "1400000000", Command: cmd.Name, ClientIP: "10.0.0.1", OptPlatform: "iOS",
		RequestID: "r-1", Body: body, Query: "SdkAppid=1400000000&CallbackCommand=C2C.CallbackBeforeSendMsg&contenttype=json&ClientIP=10.0.0.1&OptPlatform=iOS"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev.ID = strconv.Itoa(i)
		if d := s.Decide(b.Context(), ev); d.Reason != "" {
			b.Fatal(d.Reason, d.Detail)
		}
	}
}
