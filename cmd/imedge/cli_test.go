package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
)

// runCLI runs imedge in process with args and no environment.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, noEnv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// A mistyped flag gets one line naming the closest flag and exit status 2,
// not the whole help; in every command.
func TestCLI_UnknownFlagIsOneLineWithASuggestion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--tokn-file", "x"}, "imedge serve: unknown flag --tokn-file (did you mean --token-file?)"},
		{[]string{"check-config", "--sdkapid", "1"}, "imedge serve: unknown flag --sdkapid (did you mean --sdkappid?)"},
		{[]string{"certs", "ca", "--out-crt", "x"}, "unknown flag --out-crt (did you mean --out-cert?)"},
		{[]string{"send", "--adr", "x"}, "unknown flag --adr (did you mean --addr?)"},
		{[]string{"load", "--concurency", "2"}, "unknown flag --concurency (did you mean --concurrency?)"},
		{[]string{"outbox", "stats", "--jsn"}, "unknown flag --jsn (did you mean --json?)"},
		{[]string{"serve", "--zzzzzzzz"}, "imedge serve: unknown flag --zzzzzzzz"},
		{[]string{"serv"}, `unknown command "serv" (did you mean serve?)`},
		{[]string{"certs", "isue"}, `unknown subcommand "isue" (did you mean issue?)`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.Equal(t, 2, exitCode(err), "a bad command line exits 2")
			assert.Empty(t, stdout)
			assert.Empty(t, stderr, "no help dumped under the error")
		})
	}
	_, _, err := runCLI(t, "serve", "--zzzzzzzz")
	assert.NotContains(t, err.Error(), "did you mean", "no suggestion when nothing is close")
}

// --help goes to stdout, exits 0, and serve's is grouped, with the required
// flags marked and examples.
func TestCLI_HelpOnStdoutGroupedAndPerCommand(t *testing.T) {
	t.Parallel()
	stdout, stderr, err := runCLI(t, "serve", "--help")
	require.NoError(t, err)
	assert.Empty(t, stderr)
	for _, section := range []string{"Required:", "TLS and clients:", "Routing and delivery:", "Limits:",
		"Several instances:", "Admin, logs and state:", "Tuning:", "Examples:"} {
		assert.Contains(t, stdout, "\n"+section+"\n", "section %s", section)
	}
	assert.Less(t, strings.Index(stdout, "Required:"), strings.Index(stdout, "TLS and clients:"), "required flags first")
	assert.Contains(t, stdout, "--sdkappid string   (required)")
	assert.Contains(t, stdout, "--forward-url string   (required)")
	assert.Contains(t, stdout, "imedge serve --dev")
	fs, _ := newServeFlags()
	for _, g := range fs.groups {
		for _, n := range g.names {
			assert.Contains(t, stdout, "  --"+n, "every flag is in the help")
		}
	}

	for _, cmd := range [][]string{{"check-config", "-h"}, {"certs", "ca", "-h"}, {"certs", "issue", "--help"},
		{"certs", "inspect", "-h"}, {"certs", "check", "-h"}, {"certs", "crl", "-h"}, {"certs", "status", "-h"},
		{"send", "-h"}, {"load", "-h"}, {"outbox", "list", "-h"}} {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, cmd...)
			require.NoError(t, err)
			assert.Empty(t, stderr)
			assert.Regexp(t, `^Usage:\s+imedge `+cmd[0], stdout, "its own usage, not serve's")
			if cmd[0] != "check-config" {
				assert.NotContains(t, stdout, "imedge serve")
			}
		})
	}
}

// Durations have one encoding in the operational log, Go's strings,
// whether a package logged a time.Duration or its String().
func TestLogger_DurationsAreGoStrings(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := newLogger(&buf, "json", new(slog.LevelVar))
	l.Info("x", "d", 1500*time.Millisecond, slog.Duration("e", 2*time.Minute), "s", (3 * time.Second).String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	assert.Equal(t, "1.5s", m["d"])
	assert.Equal(t, "2m0s", m["e"])
	assert.Equal(t, "3s", m["s"])
}

// imedge commands lists the whole catalog with what a configuration does
// with each command: served or not, and where it goes.
func TestCommands_ListsTheCatalogWithRoutes(t *testing.T) {
	t.Parallel()
	stdout, _, err := runCLI(t, "commands", "--json", "--forward-url", "http://u:secret@127.0.0.1:8080/im?k=s",
		"--route", "Group.*=http://groups.internal/im", "--decide", "C2C.*=http://mod.internal/d",
		"--decide-fallback", "Group.*=deny", "--commands", "Sns.*,Group.*,C2C.*")
	require.NoError(t, err)
	var rows []commandRow
	require.NoError(t, json.Unmarshal([]byte(stdout), &rows))
	require.Len(t, rows, catalog.New().Len(), "every catalog command")
	by := map[string]commandRow{}
	for _, r := range rows {
		by[r.Command] = r
	}
	assert.Equal(t, commandRow{"Group.CallbackAfterSendMsg", "Group", "after", true, "Group.* http://groups.internal/im"}, by["Group.CallbackAfterSendMsg"])
	assert.Equal(t, "default http://…@127.0.0.1:8080/im?…", by["Sns.CallbackFriendDelete"].Route, "no secret from the URL")
	assert.NotContains(t, stdout, "secret")
	assert.Equal(t, "decide C2C.* http://mod.internal/d", by["C2C.CallbackBeforeSendMsg"].Route)
	assert.Equal(t, "observe: fallback deny, stored for Group.* http://groups.internal/im", by["Group.CallbackBeforeSendMsg"].Route)
	assert.Equal(t, "observe: fallback allow", by["Sns.CallbackPrevFriendAdd"].Route)
	assert.False(t, by["State.StateChange"].Served, "outside --commands")

	stdout, _, err = runCLI(t, "commands")
	require.NoError(t, err)
	assert.Contains(t, stdout, "COMMAND")
	assert.Equal(t, catalog.New().Len()+1, strings.Count(stdout, "\n"), "a header and one line per command")

	// It reads serve's flags but needs none of them.
	help, _, err := runCLI(t, "commands", "--help")
	require.NoError(t, err)
	assert.Contains(t, help, "--forward-url")
	assert.NotContains(t, help, "(required)")
	help, _, err = runCLI(t, "serve", "--help")
	require.NoError(t, err)
	assert.Contains(t, help, "--forward-url string   (required)", "serve's own help keeps the marks")
}
