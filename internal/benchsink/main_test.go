package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

func TestSink_Stall(t *testing.T) {
	sink := &countingSink{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	assert.JSONEq(t, `{"stalled":true}`, get("/stall?on=1"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/decide", strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return sink.waiting.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Empty(t, done, "held, not answered")
	cancel()
	assert.Error(t, <-done, "a stalled POST is never answered; the client gives up")
	require.Eventually(t, func() bool { return sink.waiting.Load() == 0 }, 10*time.Second, 5*time.Millisecond)
	assert.JSONEq(t, `{"stalled":false}`, get("/stall?on=0"))
	resp, err := http.Post(srv.URL+"/decide", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}
