package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseCluster(t *testing.T, env map[string]string, args ...string) (clusterConfig, error) {
	t.Helper()
	c, _, _, err := parseServeConfig(args, func(k string) string { return env[k] }, &bytes.Buffer{})
	return c.Cluster, err
}

func TestClusterConfig_DefaultsAreSingleInstance(t *testing.T) {
	c, err := parseCluster(t, nil)
	require.NoError(t, err)
	assert.Empty(t, c.RedisURL)
	assert.Equal(t, "fail-open", c.Policy)
	assert.Equal(t, 100*time.Millisecond, c.Timeout)
	assert.Empty(t, c.validate())
	assert.Nil(t, c.stages(nil, slog.New(slog.DiscardHandler)), "no PROXY stage without --proxy-protocol")
	var zero clusterConfig
	assert.Empty(t, zero.validate())
}

func TestClusterConfig_PasswordNeverInAFlag(t *testing.T) {
	c, err := parseCluster(t, nil, "--redis-url", "redis://user:hunter2@127.0.0.1:6379/0")
	require.NoError(t, err)
	errs := errors.Join(c.validate()...)
	require.Error(t, errs)
	assert.Contains(t, errs.Error(), "--redis-url must not contain a password")
	assert.NotContains(t, errs.Error(), "hunter2", "the error does not echo the password")

	c, err = parseCluster(t, map[string]string{"IMEDGE_REDIS_PASSWORD": "from-env"}, "--redis-url", "rediss://127.0.0.1:6380")
	require.NoError(t, err)
	assert.Empty(t, c.validate())
	assert.Equal(t, "from-env", string(c.password))

	f := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(f, []byte("from-file\n"), 0o600))
	c, err = parseCluster(t, map[string]string{"IMEDGE_REDIS_PASSWORD": "from-env"}, "--redis-url", "redis://127.0.0.1:6379", "--redis-password-file", f)
	require.NoError(t, err)
	assert.Equal(t, "from-file", string(c.password), "the file wins")
}

func TestClusterConfig_Rejects(t *testing.T) {
	for name, args := range map[string][]string{
		"scheme":         {"--redis-url", "http://127.0.0.1:6379"},
		"policy":         {"--redis-url", "redis://127.0.0.1:6379", "--redis-policy", "maybe"},
		"timeout":        {"--redis-url", "redis://127.0.0.1:6379", "--redis-timeout", "3s"},
		"ca without url": {"--redis-ca", "/etc/hosts"},
		"bad cidr":       {"--proxy-protocol", "10.0.0.0/33"},
	} {
		c, err := parseCluster(t, nil, args...)
		require.NoError(t, err, name)
		assert.NotEmpty(t, c.validate(), name)
	}
}
