package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// outboxCLI runs "imedge outbox ARGS..." as a separate process, without
// $STATE_DIRECTORY, and returns its stdout, its stderr and its error.
func outboxCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"outbox"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GORACE=halt_on_error=1 atexit_sleep_ms=0"} // a race build otherwise sleeps 1 s at exit
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// outboxSetup makes a PKI and a sink answering status, and returns them
// with the serve arguments of a server forwarding to that sink and its
// state directory.
func outboxSetup(t *testing.T, status int) (p *pki, s *sink, args []string, state string) {
	t.Helper()
	p, s = newPKI(t), newSink(t)
	s.setStatus(status)
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	return p, s, baseArgs(p, s.srv.URL, state, filepath.Join(dir, "audit.log")), state
}

// TestE2E_OutboxStatsAfterKillNine: callbacks answered OK while the
// internal URL is down, then SIGKILL. On the dead server's directory,
// "imedge outbox stats" counts every one of them as pending, those the
// applier had stored and those only the journal held (the applier runs at
// most every 100 ms, so the last ones are journal-only), and "list" shows
// them all.
func TestE2E_OutboxStatsAfterKillNine(t *testing.T) {
	t.Parallel()
	p, _, args, state := outboxSetup(t, http.StatusServiceUnavailable)
	im := start(t, args...)
	adminAddr := im.adminAddr(t)
	cl := p.httpsClient()
	const n = 20
	for i := range n {
		resp, err := cl.Post(callbackURL(im.addr, "10.0.0.7"), "application/json", strings.NewReader(friendDeleteBody(fmt.Sprintf("kill%02d", i), "nine")))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	im.kill()

	out, stderr, err := outboxCLI(t, "stats", "--json", "--state-dir", state, "--admin", adminAddr)
	require.NoError(t, err, "%s%s", out, stderr)
	assert.Contains(t, stderr, "using the outbox directory "+filepath.Join(state, "outbox"), "it says it opened the directory")
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, float64(n), st["pending"], "every callback answered OK is pending")
	t.Logf("%v of %d only in the journal", st["unapplied"], n)
	out, _, err = outboxCLI(t, "list", "--state-dir", state, "--admin", adminAddr)
	require.NoError(t, err, out)
	assert.Equal(t, n, strings.Count(out, "10.0.0.7"), out)
}

// TestE2E_OutboxCommandsOnAStoppedInstance: with the internal URL refusing
// events (400) and one attempt allowed, an accepted callback is
// dead-lettered; with imedge stopped, the commands list, show, replay and
// purge it on its directory, and the replayed event is delivered at the
// next start. While imedge holds the directory and nothing answers at the
// given admin address, the commands say so.
func TestE2E_OutboxCommandsOnAStoppedInstance(t *testing.T) {
	t.Parallel()
	p, s, args, state := outboxSetup(t, http.StatusBadRequest)
	args = append(args, "--max-attempts", "1")
	im := start(t, args...)
	resp, err := p.httpsClient().Post(callbackURL(im.addr, "10.0.0.9"), "application/json", strings.NewReader(friendDeleteBody("dead", "letter")))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	outbox := func(args ...string) (string, string, error) {
		return outboxCLI(t, append(args, "--state-dir", state, "--admin", "127.0.0.1:1")...)
	}
	out, stderr, err := outbox("stats")
	require.Error(t, err, "the running server holds the store")
	assert.Contains(t, stderr, "held by a running imedge", out)
	assert.Contains(t, stderr, "--admin")

	base := "http://" + im.adminAddr(t)
	require.Eventually(t, func() bool {
		return metric(scrapeMetrics(t, base), "imedge_outbox_dead_letters") == 1
	}, 10*time.Second, 20*time.Millisecond, "the 400 dead-letters the event")
	im.stop(t)

	out, _, err = outbox("stats", "--json")
	require.NoError(t, err, out)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, float64(0), st["pending"])
	assert.Equal(t, float64(1), st["dead_letters"])

	out, _, err = outbox("list", "--state", "dead")
	require.NoError(t, err, out)
	assert.Contains(t, out, "10.0.0.9")
	assert.Contains(t, out, "400")

	out, _, err = outbox("show", "1")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"To_Account":"letter"`, "show prints the body as sent")
	assert.Contains(t, out, "400 Bad Request", "and the attempt history")
	out, _, err = outbox("show", "--json", "1")
	require.NoError(t, err, "flags may come after or before the ref")
	assert.Contains(t, out, `"history"`)

	_, stderr, err = outbox("replay")
	require.Error(t, err)
	assert.Contains(t, stderr, "replay-dead", "the old name points at the new ones")
	_, stderr, err = outbox("purge-dead")
	require.Error(t, err, "an action needs refs, filters or --all")
	assert.Contains(t, stderr, "give refs, a filter")

	out, stderr, err = outbox("replay-dead", "--all")
	require.NoError(t, err, out+stderr)
	assert.Contains(t, out, "1 dead letter(s) queued for delivery (delivered when imedge starts)")

	s.setStatus(0)
	im = start(t, args...)
	require.Eventually(t, func() bool { return s.count() == 1 }, 10*time.Second, 20*time.Millisecond, "the replayed event was not delivered")
	im.stop(t)
	out, _, err = outbox("purge-dead", "--all")
	require.NoError(t, err, out)
	assert.Contains(t, out, "0 dead letter(s) purged")
}

// The command line is checked before anything is opened.
func TestCLI_OutboxUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"outbox", "show"}, "give one event id"},
		{[]string{"outbox", "show", "1", "2"}, "give one event id"},
		{[]string{"outbox", "show", "1", "--all"}, "unknown flag --all"},
		{[]string{"outbox", "stats", "extra"}, `unexpected argument "extra"`},
		{[]string{"outbox", "list", "--sate", "dead"}, "did you mean --state?"},
		{[]string{"outbox", "purge"}, "purge-dead"},
		{[]string{"outbox", "retyr"}, "did you mean retry?"},
		{[]string{"outbox", "retry", "--admin-cert", "c.pem"}, "--admin-cert and --admin-key go together"},
		{[]string{"outbox", "list", "--since", "last tuesday"}, "--since"},
		{[]string{"outbox", "purge-dead"}, "give refs, a filter"},
		{[]string{"outbox", "replay-dead", "--all", "--command", "Group.*"}, "without refs or filters"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, append(tc.args, "--admin", "127.0.0.1:1", "--state-dir", t.TempDir())...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, 2, exitCode(err), "a bad command line, refused before anything is opened")
		})
	}
	stdout, _, err := runCLI(t, "outbox", "--help")
	require.NoError(t, err)
	for _, sub := range outboxSubcommands() {
		assert.Contains(t, stdout, "imedge outbox "+sub)
	}
}
