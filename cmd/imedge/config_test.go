package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func noEnv(string) string { return "" }

func TestConfigFile_FlagsOverrideFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "imedge.yaml", `
listen: "127.0.0.1:9000"
sdkappid: "1400000000"
rate: 5
client-crl: [a.crl, b.crl]
allow-client:
  - cn:im
  - dns:im.example.com
dedupe-window: 2m
max-body: 512KiB
`)
	c, _, err := parseServeConfig([]string{"--config", cfgFile, "--rate", "7", "--client-crl", "c.crl"}, noEnv)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9000", c.Server.Listen, "file value kept")
	assert.Equal(t, "1400000000", c.IM.SdkAppid)
	assert.Equal(t, float64(7), c.Limits.Rate, "the flag overrides the file")
	wd, err := os.Getwd()
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(wd, "c.crl")}, c.TLS.ClientCRLFiles, "a repeatable flag replaces the file's list; paths become absolute")
	assert.Equal(t, []string{"cn:im", "dns:im.example.com"}, c.TLS.AllowClients)
	assert.Equal(t, 2*time.Minute, c.State.DedupeWindow)
	assert.Equal(t, int64(512<<10), c.IM.MaxBody)
}

func TestConfigFile_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listen: x:1\nlisten-addr: y\n", `line 2: key "listen-addr": unknown key`},
		{"typo suggestion", "Client_CA: ca.pem\n", `did you mean "client-ca"?`},
		{"bad duration", "sign-window: soon\n", `key "sign-window"`},
		{"bad number", "rate: fast\n", `key "rate"`},
		{"list for a scalar", "listen: [a, b]\n", `key "listen": takes a single value, not a list`},
		{"mapping value", "rate:\n  per: second\n", `key "rate": want a value or a list`},
		{"null value", "rate:\n", `key "rate": no value`},
		{"secret as a plain key", "token: s3cret\n", `key "token": unknown key`},
		{"not a mapping", "- a\n- b\n", "want a mapping"},
		{"duplicate key", "rate: 1\nrate: 2\n", `key "rate": given twice`},
		{"bad yaml", "rate: [1\n", "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", tc.yaml)
			_, _, err := parseServeConfig([]string{"--config", p}, noEnv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "s3cret", "a rejected secret is not echoed")
		})
	}
	_, _, err := parseServeConfig([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, noEnv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.yaml")
}

func TestConfig_ValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	c.Server.Listen = "nope"
	c.Server.Path = "im"
	c.IM.SdkAppid = "abc"
	c.TLS.ClientAuth = "maybe"
	c.Delivery.URL = "ftp://x"
	c.Delivery.CertFile = "only-cert.pem"
	c.Delivery.RetryBase, c.Delivery.RetryMax = time.Second, time.Millisecond
	c.IM.MaxAccountBytes = 0
	c.IM.MaxBody = 0
	c.Server.MaxHeaderBytes = 10
	c.Delivery.Concurrency = 0
	c.Delivery.MaxAttempts = -1
	c.State.MaxEvents = 0
	c.State.DedupeSize = 0
	c.State.Dir = "relative/state"
	c.Limits.Rate, c.Limits.Burst = 1, 0
	c.Limits.IPv6Prefix = 129
	c.Limits.MaxKeys = 0
	c.Logs.AuditBurst = 0
	c.Logs.Level = "loud"
	c.Logs.Format = "xml"
	c.Logs.AuditLog = filepath.Join(t.TempDir(), "no-such-dir", "audit.log")
	c.IM.SignWindow = 0
	c.Admin.Listen = "127.0.0.1:99999"
	c.IM.Commands = []string{"Group.*", "Grp*"}
	c.IM.UnknownCommands = "drop"
	c.IM.Validation = "lax"
	err := c.Validate()
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{"--listen", "--path", "--sdkappid", "--cert is required", "--key is required",
		"--client-auth", "--forward-url", "--forward-cert and --forward-key", "--retry-max", "--max-account-bytes",
		"--max-body", "--max-header-bytes", "--forward-concurrency", "--max-attempts", "--outbox-max-events",
		"--dedupe-size", "--burst", "--rate-ipv6-prefix", "--rate-max-keys", "--audit-burst", "--log-level",
		"--log-format", "--sign-window", `--state-dir "relative/state" must be an absolute path`,
		"--audit-log: directory of", `--admin-listen "127.0.0.1:99999"`, `--commands "Grp*"`,
		`--unknown-commands "drop": want forward or refuse`, `--validation "lax": want strict or warn`} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "\n", "one line for the operator")
}

// State never follows the working directory: --state-dir, else systemd's
// $STATE_DIRECTORY, else /var/lib/imedge; a relative one is refused.
func TestConfig_StateDirIsAbsolute(t *testing.T) {
	t.Parallel()
	c, _, err := parseServeConfig(nil, noEnv)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/imedge", c.State.Dir)
	assert.Equal(t, "/var/lib/imedge/outbox", c.State.spoolDir())

	env := func(k string) string {
		if k == "STATE_DIRECTORY" {
			return "/var/lib/imedge-b:/var/lib/other"
		}
		return ""
	}
	c, _, err = parseServeConfig(nil, env)
	require.NoError(t, err)
	assert.Equal(t, "/var/lib/imedge-b", c.State.Dir, "systemd's first state directory")

	dir := t.TempDir()
	c, _, err = parseServeConfig([]string{"--state-dir", dir}, env)
	require.NoError(t, err)
	assert.Equal(t, dir, c.State.Dir, "the flag wins over $STATE_DIRECTORY")

	c.State.Dir = "imedge-state"
	errs := c.State.validate(c)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "must be an absolute path")
	c.Dev = true
	assert.Empty(t, c.State.validate(c), "--dev may keep its state next to its PKI")
}

func TestCheckConfig_PrintsEffectiveConfigWithoutSecrets(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "xxxxyyyy-super-secret\n")
	cfgFile := writeFile(t, dir, "imedge.yaml", strings.Join([]string{
		"cert: " + p.certFile, "key: " + p.keyFile, "client-ca: " + p.caFile,
		"sdkappid: \"1400000000\"", "forward-url: http://127.0.0.1:8080/im?k=v", "token-file: " + tokenFile,
		"state-dir: " + filepath.Join(dir, "state"), "rate: 3",
	}, "\n"))
	var out, errOut bytes.Buffer
	env := func(k string) string {
		if k == "IMEDGE_FORWARD_SECRET" {
			return "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
		}
		return ""
	}
	err := run(context.Background(), []string{"check-config", "--config", cfgFile, "--rate", "9"}, env, &out, &errOut)
	require.NoError(t, err, errOut.String())
	got := out.String()
	assert.Contains(t, got, "configuration OK")
	assert.Contains(t, got, "\nrate: 9\n", "flags override the file")
	assert.Contains(t, got, "token-file: "+tokenFile)
	assert.Contains(t, got, "IM token: file "+tokenFile)
	assert.NotContains(t, got, "super-secret")
	assert.NotContains(t, got, "c2VjcmV0", "the forward secret never appears")

	// The printed configuration is itself a valid config file.
	reprinted := writeFile(t, dir, "effective.yaml", got)
	c, _, err := parseServeConfig([]string{"--config", reprinted}, noEnv)
	require.NoError(t, err)
	assert.Equal(t, float64(9), c.Limits.Rate)
	assert.Equal(t, p.certFile, c.TLS.CertFile)

	// A key that does not match its certificate is caught by check-config.
	other := newPKI(t)
	err = run(context.Background(), []string{"check-config", "--config", cfgFile, "--key", other.keyFile}, env, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), other.keyFile)
}

func TestConfigArg(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "a.yaml", configArg([]string{"--rate", "1", "--config", "a.yaml"}))
	assert.Equal(t, "b.yaml", configArg([]string{"-config=b.yaml"}))
	assert.Equal(t, "", configArg([]string{"--", "--config", "c.yaml"}))
	assert.Equal(t, "", configArg([]string{"--configx", "d"}))
}

func TestConfig_CurvesFlag(t *testing.T) {
	t.Parallel()
	c, _, err := parseServeConfig([]string{"--tls-curves", "X25519,P-256"}, noEnv)
	require.NoError(t, err)
	assert.Equal(t, []tls.CurveID{tls.X25519, tls.CurveP256}, c.TLS.Curves)

	c, _, err = parseServeConfig(nil, noEnv)
	require.NoError(t, err)
	assert.Nil(t, c.TLS.Curves, "default: Go's key exchanges")

	_, _, err = parseServeConfig([]string{"--tls-curves", "X448"}, noEnv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--tls-curves: "X448"`)
}

// The runtime and journal flags were removed in favour of GOGC, GOMEMLIMIT,
// GOMAXPROCS and one automatic journal flush: each, as a flag or a config
// key, fails with one line naming what replaces it.
func TestRemovedSettings_FailNamingTheirReplacement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, value, want string }{
		{"gc-percent", "400", "--gc-percent: removed, set GOGC"},
		{"memory-limit", "256MiB", "--memory-limit: removed, set GOMEMLIMIT"},
		{"max-procs", "1", "--max-procs: removed, set GOMAXPROCS"},
		{"journal-sync", "fdatasync", "--journal-sync: removed: the outbox journal always flushes"},
		{"http1", "fast", "--http1: removed, imedge always serves HTTP/1.1 with net/http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{{"--" + tc.name, tc.value}, {"-" + tc.name + "=" + tc.value}} {
				_, _, err := parseServeConfig(append([]string{"--sdkappid", "1400000000"}, args...), noEnv)
				require.Error(t, err)
				assert.True(t, strings.HasPrefix(err.Error(), tc.want), "got %q", err)
				assert.Equal(t, 2, exitCode(err), "a bad command line exits 2")
			}
			file := writeFile(t, t.TempDir(), "c.yaml", tc.name+": "+tc.value+"\n")
			_, _, err := parseServeConfig([]string{"--config", file}, noEnv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), `key "`+tc.name+`": removed`)
		})
	}
}
