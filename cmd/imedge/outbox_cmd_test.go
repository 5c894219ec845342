package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runOutboxCmd runs "imedge outbox SUB --spool-dir spool ARGS..." and
// returns its combined output.
func runOutboxCmd(spool string, args ...string) (string, error) {
	full := append([]string{"outbox", args[0], "--spool-dir", spool}, args[1:]...)
	out, err := exec.Command(binPath, full...).CombinedOutput()
	return string(out), err
}

// outboxSetup makes a PKI and a sink answering status, and returns them
// with the serve arguments of a server forwarding to that sink and the
// server's outbox directory.
func outboxSetup(t *testing.T, status int) (p *pki, s *sink, args []string, spool string) {
	t.Helper()
	p, s = newPKI(t), newSink(t)
	s.setStatus(status)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	return p, s, baseArgs(p, s.srv.URL, state, filepath.Join(dir, "audit.log")), filepath.Join(state, "outbox")
}

// TestE2E_OutboxStatsAfterKillNine: callbacks answered OK while the
// internal URL is down, then SIGKILL. On the dead server's directory,
// "imedge outbox stats" counts every one of them as pending, those the
// applier had stored and those only the journal held (the applier runs at
// most every 100 ms, so the last ones are journal-only), and "list" shows
// them all.
func TestE2E_OutboxStatsAfterKillNine(t *testing.T) {
	p, _, args, spool := outboxSetup(t, http.StatusServiceUnavailable)
	im := start(t, args...)
	cl := p.httpsClient()
	const n = 20
	for i := range n {
		resp, err := cl.Post(callbackURL(im.addr, "10.0.0.7"), "application/json", strings.NewReader(friendDeleteBody(fmt.Sprintf("kill%02d", i), "nine")))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	im.kill()

	out, err := runOutboxCmd(spool, "stats", "--json")
	require.NoError(t, err, out)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, float64(n), st["Pending"], "every callback answered OK is pending")
	t.Logf("%v of %d only in the journal", st["Unapplied"], n)
	out, err = runOutboxCmd(spool, "list")
	require.NoError(t, err, out)
	assert.Equal(t, n, strings.Count(out, "10.0.0.7"), out)
}

// TestE2E_OutboxCommands: with the internal URL refusing events (400) and
// one attempt allowed (a 4xx is retried by default), an accepted callback
// is dead-lettered; the operator commands list, show, replay and purge it
// on the stopped server's directory, and say the store is in use while the
// server runs.
func TestE2E_OutboxCommands(t *testing.T) {
	p, s, args, spool := outboxSetup(t, http.StatusBadRequest)
	args = append(args, "--max-attempts", "1")
	im := start(t, args...)
	resp, err := p.httpsClient().Post(callbackURL(im.addr, "10.0.0.9"), "application/json", strings.NewReader(friendDeleteBody("dead", "letter")))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	outbox := func(args ...string) (string, error) { return runOutboxCmd(spool, args...) }
	out, err := outbox("stats")
	require.Error(t, err, "the running server holds the store")
	assert.Contains(t, out, "stop it first")

	time.Sleep(500 * time.Millisecond) // let the 400 dead-letter it
	im.stop(t)

	out, err = outbox("stats", "--json")
	require.NoError(t, err, out)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, float64(0), st["Pending"])
	assert.Equal(t, float64(1), st["Dead"])

	out, err = outbox("list", "--dead")
	require.NoError(t, err, out)
	assert.Contains(t, out, "10.0.0.9")
	assert.Contains(t, out, "400")

	out, err = outbox("show", "1")
	require.NoError(t, err, out)
	_, err = outbox("show", "1", "--json")
	require.Error(t, err, "a flag after the id is refused, not ignored")
	assert.Contains(t, out, `"To_Account":"letter"`, "show prints the body")

	out, err = outbox("replay", "--dead")
	require.NoError(t, err, out)
	assert.Contains(t, out, "1 event(s) queued")

	out, err = outbox("purge")
	require.Error(t, err, "pending events are never purged")
	assert.Contains(t, out, "only --dead")

	// Restarted with a working internal URL, the replayed event is delivered.
	s.setStatus(0)
	im = start(t, args...)
	eventually(t, 10*time.Second, func() bool { return s.count() == 1 }, "the replayed event was not delivered")
	im.stop(t)
	out, err = outbox("purge", "--dead")
	require.NoError(t, err, out)
	assert.Contains(t, out, "0 dead letter(s) purged")
}
