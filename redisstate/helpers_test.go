package redisstate_test

import (
	"context"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/redisstate"
)

// redisServer is a real redis-server on a loopback port, owned by one test.
type redisServer struct {
	t    *testing.T
	port int
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server on a free loopback port, without
// persistence, and stops it when the test ends.
func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is needed (Debian package redis-server, installed by .ci/run)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	s := &redisServer{t: t, port: port, args: append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...)}
	_ = bin
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", s.args...)
	require.NoError(s.t, s.cmd.Start())
	s.done = make(chan struct{})
	cmd, done := s.cmd, s.done
	go func() { _ = cmd.Wait(); close(done) }()
	require.Eventually(s.t, func() bool {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "redis-server listens on %s", s.addr())
}

// stop kills the server and waits for it; a second stop does nothing.
func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func (s *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }
func (s *redisServer) url() string  { return "redis://" + s.addr() }

// direct returns a plain go-redis client for inspecting the server.
func (s *redisServer) direct(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr(), Password: "", DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// newClient returns a Client on s, closed when the test ends.
func newClient(t *testing.T, s *redisServer, o redisstate.Options) *redisstate.Client {
	t.Helper()
	if o.URL == "" {
		o.URL = s.url()
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(tWriter{t}, nil))
	}
	if o.Timeout == 0 {
		o.Timeout = 500 * time.Millisecond // generous: -race on 2 cores
	}
	c, err := redisstate.New(o)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.Eventually(t, func() bool { return c.Stats().Up }, 5*time.Second, 10*time.Millisecond, "redis up for the new client")
	return c
}

// tWriter sends log lines to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
