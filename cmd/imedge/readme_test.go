package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadme keeps the README what an operator reads first: at most 300
// lines, the two quick-start commands the brief promises (the receiver with
// built-in defaults, and the whole suite through the same script CI runs),
// and only flags serve really has.
func TestReadme(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	readme := string(b)
	assert.LessOrEqual(t, strings.Count(readme, "\n"), 300, "README.md stays within 300 lines; reference material goes to docs/")

	assert.Regexp(t, `(?m)^go run \./cmd/imedge serve --dev\s`, readme, "quick start: run the receiver")
	assert.Regexp(t, `(?m)^scripts/test\.sh\s`, readme, "quick start: run the whole suite")
	ci, err := os.ReadFile("../../.ci/run")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^scripts/test\.sh$`, string(ci), ".ci/run runs the README's test command")

	fs, _ := newServeFlags()
	other := map[string]bool{"--help": true, "--no-install": true} // imedge COMMAND --help; scripts/test.sh --no-install
	for _, m := range regexp.MustCompile("--[a-z][a-z0-9-]*").FindAllString(readme, -1) {
		if other[m] {
			continue
		}
		assert.NotNil(t, fs.Lookup(strings.TrimPrefix(m, "--")), "README names %s, which imedge serve does not have", m)
	}
}
