package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runtimeVersion() string { return runtime.Version() }

// A handler that writes nothing is counted as the 200 net/http sends, and
// http.ResponseController still reaches the connection through the wrapper.
func TestInstrument_SilentHandlerAndResponseController(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	srv := httptest.NewServer(f.adm.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flush" {
			w.WriteHeader(http.StatusAccepted)
			assert.NoError(t, http.NewResponseController(w).Flush())
		}
	})))
	t.Cleanup(srv.Close)
	for _, p := range []string{"/", "/flush"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	fams := f.scrape(t)
	assert.Equal(t, 1.0, value(t, fams, "imedge_request_duration_seconds", "code", "200"))
	assert.Equal(t, 1.0, value(t, fams, "imedge_answer_duration_seconds", "code", "202"))
	_, ok := sample(fams, "imedge_tls_requests_total", "version", "", "cipher", "", "client_cert", "none")
	assert.False(t, ok, "plain HTTP requests are not counted as TLS")
}
