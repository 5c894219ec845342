package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite imedge.example.yaml from the flag definitions")

const examplePath = "../../imedge.example.yaml"

const exampleHeader = `# imedge.example.yaml: every setting of "imedge serve" with its default.
# Keys are the flag names; flags given on the command line override this file.
# Secrets never go here: token-file and forward-secret-file name files that hold them
# (or set IMEDGE_TOKEN / IMEDGE_FORWARD_SECRET). Regenerate with:
#   go test ./cmd/imedge -run TestExampleConfig -update
`

// TestExampleConfig keeps imedge.example.yaml true: it documents every key
// with its default and parses as a config file.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	fs, _ := newServeFlags()
	want := exampleHeader + effectiveConfig(fs.FlagSet, Config{})
	if *update {
		require.NoError(t, os.WriteFile(examplePath, []byte(want), 0o644))
	}
	got, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	assert.Equal(t, want, string(got), "imedge.example.yaml is stale: run go test ./cmd/imedge -run TestExampleConfig -update")

	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFlag || f.Name == "dev" || f.Name == "dev-dir" {
			return
		}
		assert.Regexp(t, "\n(# )?"+f.Name+":", string(got), "key %s documented", f.Name)
	})
	copyPath := filepath.Join(t.TempDir(), "example.yaml")
	require.NoError(t, os.WriteFile(copyPath, got, 0o600))
	c, _, err := parseServeConfig([]string{"--config", copyPath}, noEnv)
	require.NoError(t, err, "the example parses")
	assert.Equal(t, defaultConfig().Server.Listen, c.Server.Listen)
	assert.Equal(t, "/var/lib/imedge", c.State.Dir, "the example leaves state-dir unset: $STATE_DIRECTORY or the fixed default applies")
	assert.Contains(t, string(got), "\n# state-dir:\n")
	assert.True(t, strings.HasPrefix(string(got), "# imedge.example.yaml"))
}
