package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// check-config runs exactly the validation serve runs: on every row of
// this table, a configuration check-config accepts starts (the binary
// listens), and one it refuses stops serve at start, with the same
// message. check-config writes nothing.
func TestCheckConfig_AgreesWithServe(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	s := newSink(t)
	dir := t.TempDir()
	token := writeFile(t, dir, "token", "xxxxyyyy\n")
	for _, tc := range []struct {
		name string
		args []string // added to a valid base
		want string   // "" for a valid configuration
	}{
		{"valid", nil, ""},
		{"valid token only", []string{"--client-auth", "none", "--token-file", token}, ""},
		{"valid command patterns", []string{"--commands", "Sns.*", "--commands", "C2C.CallbackAfterSendMsg"}, ""},
		{"no sdkappid", []string{"--sdkappid", ""}, "--sdkappid is required"},
		{"port out of range", []string{"--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999"`},
		{"admin port out of range", []string{"--admin-listen", "127.0.0.1:70000"}, `--admin-listen "127.0.0.1:70000"`},
		{"audit directory missing", []string{"--audit-log", filepath.Join(dir, "nope", "audit.log")}, "--audit-log: directory of"},
		{"relative state dir", []string{"--state-dir", "imedge-state"}, `--state-dir "imedge-state" must be an absolute path`},
		{"key of another certificate", []string{"--key", other.keyFile}, other.keyFile},
		{"client CA not PEM", []string{"--client-ca", token}, token},
		{"forward URL not http", []string{"--forward-url", "ftp://example.com/x"}, "--forward-url"},
		{"admin off loopback without mTLS", []string{"--admin-listen", "0.0.0.0:0"}, "is not a loopback address"},
		{"bad command pattern", []string{"--commands", "Grp*"}, `--commands "Grp*"`},
		{"token only without token", []string{"--client-auth", "none"}, "--client-auth=none is refused without a token"},
		{"egress without its key", []string{"--im-egress", "--im-admin", "administrator", "--im-region", "singapore"}, "needs the app's secret key"},
		{"pid file directory missing", []string{"--pid-file", filepath.Join(dir, "nope", "imedge.pid")}, "--pid-file: directory of"},
		{"redis password in URL", []string{"--redis-url", "redis://u:pw@127.0.0.1:6379"}, "--redis-url must not contain a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state := filepath.Join(t.TempDir(), "state")
			args := append(baseArgs(p, s.srv.URL, state, filepath.Join(t.TempDir(), "audit.log")), tc.args...)[1:] // without "serve"

			var out, errOut bytes.Buffer
			checkErr := run(context.Background(), append([]string{"check-config"}, args...), noEnv, &out, &errOut)
			assert.NoDirExists(t, state, "check-config creates nothing")

			if tc.want == "" {
				require.NoError(t, checkErr, "check-config accepts it")
				assert.Contains(t, out.String(), "configuration OK")
				im := start(t, append([]string{"serve"}, args...)...)
				im.stop(t)
				return
			}
			require.Error(t, checkErr, "check-config refuses it")
			assert.Contains(t, checkErr.Error(), tc.want)
			_, serveErr, err := runBin(t, nil, append([]string{"serve"}, args...)...)
			require.Error(t, err, "serve refuses it at start")
			assert.Contains(t, serveErr, tc.want, "with the same message")
			assert.NotContains(t, serveErr, `"msg":"listening"`)
		})
	}
}

// check-config prints the resolved absolute paths, whatever the working
// directory and however the paths were given.
func TestCheckConfig_PrintsAbsolutePaths(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	wd, err := os.Getwd()
	require.NoError(t, err)
	rel, err := filepath.Rel(wd, p.certFile)
	require.NoError(t, err)
	require.False(t, filepath.IsAbs(rel))
	args := append(baseArgs(p, "http://127.0.0.1:1/x", filepath.Join(t.TempDir(), "state"), filepath.Join(t.TempDir(), "a.log")), "--cert", rel)
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), append([]string{"check-config"}, args[1:]...), noEnv, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "\ncert: "+p.certFile+"\n", "the relative --cert printed absolute")
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, "#") && strings.HasSuffix(k, "-file") {
			assert.True(t, filepath.IsAbs(v), "%s is absolute", line)
		}
	}
	assert.Contains(t, out.String(), "# (resolved from: state-dir)\nstate-dir: /")
}
