package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSink_CountsEventsAndBatches(t *testing.T) {
	srv := httptest.NewServer(&countingSink{})
	t.Cleanup(srv.Close)
	post := func(batch string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/events", strings.NewReader(`{}`))
		require.NoError(t, err)
		if batch != "" {
			req.Header.Set(batchHeader, batch)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, string(okReply), string(b), "a proxy in front of the sink answers IM correctly")
	}
	post("")
	post("7")
	post("junk")
	resp, err := http.Get(srv.URL + "/count")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.JSONEq(t, `{"requests":3,"events":9}`, string(b))
}
