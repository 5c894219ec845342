package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkServe_KeepAlive measures one small callback on a kept-alive
// loopback connection: a POST with a query string and a 300-byte JSON
// body, read by the handler and answered with a small JSON reply; against
// net/http's server (std) and this package's (h1). The client side is the
// same lean raw reader for both, so the difference is the servers'.
func BenchmarkServe_KeepAlive(b *testing.B) {
	payload := `{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"` +
		strings.Repeat("a", 40) + `","To_Account":"` + strings.Repeat("b", 40) + `"}],"EventTime":1700000000000,"Pad":"`
	payload += strings.Repeat("x", 300-len(payload)-2) + `"}`
	require.Len(b, payload, 300)
	req := []byte("POST /v4/callback?SdkAppid=1400000000&CallbackCommand=Sns.CallbackFriendDelete&contenttype=json&ClientIP=203.0.113.7&OptPlatform=RESTAPI HTTP/1.1\r\n" +
		"Host: callback.example.com\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n" + payload)
	reply := []byte(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) != 300 {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(reply)
	})

	run := func(b *testing.B, serve func(net.Listener) error, stop func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(b, err)
		done := make(chan error, 1)
		go func() { done <- serve(ln) }()
		defer func() {
			stop()
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				b.Errorf("Serve: %v", err)
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(b, err)
		defer c.Close()
		br := bufio.NewReader(c)
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			if err := readReply(br, len(reply)); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("std", func(b *testing.B) {
		s := &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
		run(b, s.Serve, func() { s.Close() })
	})
	b.Run("h1", func(b *testing.B) {
		s := &Server{Handler: handler, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute}
		run(b, s.Serve, func() { s.Close() })
	})
}

// readReply reads a 200 response with a body of want bytes without
// allocating: status line, header lines up to the blank one, body.
func readReply(br *bufio.Reader, want int) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return errors.New("unexpected status line " + strconv.Quote(string(line)))
	}
	n := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n = 0
			for _, c := range bytes.TrimRight(v, "\r\n") {
				n = n*10 + int(c-'0')
			}
		}
	}
	if n != want {
		return errors.New("unexpected Content-Length " + strconv.Itoa(n))
	}
	_, err = br.Discard(n)
	return err
}
