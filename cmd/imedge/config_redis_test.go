package main

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseCluster(t *testing.T, env map[string]string, args ...string) (clusterConfig, error) {
	t.Helper()
	c, _, err := parseServeConfig(args, func(k string) string { return env[k] })
	return c.Cluster, err
}

func TestClusterConfig_DefaultsAreSingleInstance(t *testing.T) {
	t.Parallel()
	c, err := parseCluster(t, nil)
	require.NoError(t, err)
	assert.Empty(t, c.RedisURL)
	assert.Equal(t, "fail-open", c.Policy)
	assert.Equal(t, 100*time.Millisecond, c.Timeout)
	assert.Empty(t, c.validate(Config{}))
	st, err := c.stages(nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Nil(t, st, "no PROXY stage without --proxy-protocol")
	var zero clusterConfig
	assert.Empty(t, zero.validate(Config{}))
}

func TestClusterConfig_PasswordNeverInAFlag(t *testing.T) {
	t.Parallel()
	c, err := parseCluster(t, nil, "--redis-url", "redis://user:hunter2@127.0.0.1:6379/0")
	require.NoError(t, err)
	errs := errors.Join(c.validate(Config{})...)
	require.Error(t, errs)
	assert.Contains(t, errs.Error(), "--redis-url must not contain a password")
	assert.NotContains(t, errs.Error(), "hunter2", "the error does not echo the password")

	c, err = parseCluster(t, map[string]string{"IMEDGE_REDIS_PASSWORD": "from-env"}, "--redis-url", "rediss://127.0.0.1:6380")
	require.NoError(t, err)
	assert.Empty(t, c.validate(Config{}))
	assert.Equal(t, "from-env", string(c.password))

	f := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(f, []byte("from-file\n"), 0o600))
	c, err = parseCluster(t, map[string]string{"IMEDGE_REDIS_PASSWORD": "from-env"}, "--redis-url", "redis://127.0.0.1:6379", "--redis-password-file", f)
	require.NoError(t, err)
	assert.Equal(t, "from-file", string(c.password), "the file wins")
}

func TestClusterConfig_Rejects(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"scheme":         {"--redis-url", "http://127.0.0.1:6379"},
		"policy":         {"--redis-url", "redis://127.0.0.1:6379", "--redis-policy", "maybe"},
		"timeout":        {"--redis-url", "redis://127.0.0.1:6379", "--redis-timeout", "3s"},
		"ca without url": {"--redis-ca", "/etc/hosts"},
	} {
		c, err := parseCluster(t, nil, args...)
		require.NoError(t, err, name)
		assert.NotEmpty(t, c.validate(Config{}), name)
	}
	_, err := parseCluster(t, nil, "--proxy-protocol", "10.0.0.0/33")
	assert.ErrorContains(t, err, `--proxy-protocol: "10.0.0.0/33": want a CIDR`, "a bad CIDR is refused when parsed")
}

// A PROXY stage that cannot be built stops imedge: serving without the
// PROXY requirement the operator configured would attribute every
// connection to the balancer. (It used to return no stage at all.)
func TestClusterConfig_StagesFailClosed(t *testing.T) {
	t.Parallel()
	c := clusterConfig{ProxyProtocol: []netip.Prefix{{}}} // an invalid prefix, as a Config built in code can hold
	st, err := c.stages(nil, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--proxy-protocol")
	assert.Nil(t, st)
	assert.NotEmpty(t, c.validate(Config{}), "validation refuses it too")

	c = clusterConfig{ProxyProtocol: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	st, err = c.stages(nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Len(t, st, 1)
}
