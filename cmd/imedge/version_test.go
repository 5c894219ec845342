package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge"
)

func TestVersion_JSONReportsVersionGoAndPlatform(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"version", "--json"}, func(string) string { return "" }, &stdout, &stderr))
	var got map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), "%s", stdout.String())
	assert.Equal(t, imedge.Version(), got["version"])
	assert.Equal(t, runtime.Version(), got["go_version"])
	assert.Equal(t, runtime.GOOS+"/"+runtime.GOARCH, got["platform"])
	assert.Contains(t, got, "commit")
	assert.Contains(t, got, "dirty")
	assert.Empty(t, stderr.String())
}

func TestVersion_RefusesUnknownFlagsAndArguments(t *testing.T) {
	t.Parallel()
	for args, want := range map[[2]string]string{
		{"version", "--jsn"}: "unknown flag --jsn (did you mean --json?)",
		{"version", "json"}:  `unexpected argument "json"`,
		{"--version", "-x"}:  "unknown flag --x",
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), args[:], func(string) string { return "" }, &stdout, &stderr)
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), want)
		assert.Equal(t, 2, exitCode(err), "a bad command line exits 2")
		assert.Empty(t, stdout.String(), "%v prints no version", args)
	}
}

// The built binary carries the VERSION file: the plain line and the JSON
// agree on it.
func TestE2E_VersionJSON(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binPath, "version", "--json").Output()
	require.NoError(t, err)
	var b buildInfo
	require.NoError(t, json.Unmarshal(out, &b), "%s", out)
	assert.Equal(t, imedge.Version(), b.Version)
	line, err := exec.Command(binPath, "version").Output()
	require.NoError(t, err)
	assert.Equal(t, b.String()+"\n", string(line))
}
