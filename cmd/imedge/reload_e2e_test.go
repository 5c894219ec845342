package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SIGHUP re-reads the configuration file: a changed rate limit applies at
// once, a changed listen address is logged as needing a restart (and the
// old one keeps serving), an invalid file changes nothing, and /status
// shows the configuration in force.
func TestReload_E2E_SIGHUPAppliesRuntimeSettingsAndNamesTheRest(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "imedge.yaml")
	write := func(content string) { require.NoError(t, os.WriteFile(cfgFile, []byte(content), 0o600)) }
	groupsA, groupsB := newSink(t), newSink(t)
	write("listen: 127.0.0.1:0\nrate: 1\nburst: 1\nlog-level: info\nroute: [\"Sns.*=" + groupsA.srv.URL + "\"]\n")
	var args []string
	base := baseArgs(p, s.srv.URL, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log"))
	for i := 0; i < len(base); i++ {
		if base[i] == "--listen" {
			i++ // the file names the address, so that a change of it is seen
			continue
		}
		args = append(args, base[i])
	}
	im := start(t, append(args, "--config", cfgFile)...)
	c := p.httpsClient()
	post := func(to, from string) int {
		return postCallback(t, c, callbackURL(im.addr, "198.51.100.7"), friendDeleteBody(from, to))
	}
	assert.Equal(t, http.StatusOK, post("a", "b"))
	assert.Equal(t, http.StatusTooManyRequests, post("a", "c"), "burst 1")

	write("listen: 127.0.0.1:1\nrate: 1000\nburst: 1000\nlog-level: debug\nroute: [\"Sns.*=" + groupsB.srv.URL + "/?key=s3cret\"]\n")
	require.NoError(t, im.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), `"msg":"configuration reloaded"`) },
		10*time.Second, 20*time.Millisecond)
	line := logLine(t, im.stderr.String(), "configuration reloaded")
	assert.ElementsMatch(t, []any{"burst", "log-level", "rate", "route"}, line["applied"])
	line = logLine(t, im.stderr.String(), "configuration changed; restart needed for these settings")
	assert.Equal(t, []any{"listen"}, line["restart_needed"])
	for i := range 5 {
		assert.Equal(t, http.StatusOK, post("a", "d"+strings.Repeat("x", i)), "the new limit applies, on the old address")
	}
	require.Eventually(t, func() bool { return groupsB.count() == 5 }, 10*time.Second, 20*time.Millisecond,
		"the route's new URL gets the events from now on")
	assert.Equal(t, 1, groupsA.count(), "the old URL got the event before the reload")

	status := adminStatus(t, im)
	assert.Equal(t, im.cmd.Process.Pid, status.PID, "/status names the process")
	assert.Equal(t, "1000", status.Config["rate"])
	assert.Equal(t, "127.0.0.1:0", status.Config["listen"], "/status shows what is in force, not what waits for a restart")
	assert.NotContains(t, status.Config, "config")
	assert.Equal(t, "Sns.*="+groupsB.srv.URL+"/?…", status.Config["route"], "a URL's query may hold a secret: /status redacts it")

	write("rate: -5\n")
	require.NoError(t, im.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(im.stderr.String(), "configuration reload refused") },
		10*time.Second, 20*time.Millisecond)
	assert.Equal(t, "1000", adminStatus(t, im).Config["rate"], "an invalid file changed nothing")
	im.stop(t)
}

// logLine returns the last JSON log line whose msg is msg.
func logLine(t *testing.T, logs, msg string) map[string]any {
	t.Helper()
	lines := strings.Split(logs, "\n")
	slices.Reverse(lines)
	for _, l := range lines {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}

// adminStatus fetches /status from im's admin listener.
func adminStatus(t *testing.T, im *proc) (st struct {
	PID    int
	Config map[string]string
}) {
	t.Helper()
	code, b := adminGet(t, http.DefaultClient, "http://"+im.adminAddr(t)+"/status")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}
