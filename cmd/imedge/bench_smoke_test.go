package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchScript_QuickSmoke runs scripts/bench.sh --quick end to end (tiny
// rounds) with the test binary: it proves the benchmark still works; its
// figures mean nothing. It needs nginx, which .ci/run installs.
func TestBenchScript_QuickSmoke(t *testing.T) {
	t.Parallel()
	out := runBenchScript(t, "--quick", "--forward-batch", "16")

	for _, row := range []string{
		`(?m)^keepalive imedge\s+\d+\s+\d+\s+[\d.]+`,
		`(?m)^keepalive imedge-b16\s+\d+\s+\d+`,
		`(?m)^keepalive nginx\s+\d+\s+\d+`,
		`(?m)^new-conn\s+nginx\s+\d+`,
		`(?m)^resume\s+imedge\s+\d+`,
		`(?m)^mixed\s+imedge\s+\d+\s+\d+`,
		`(?m)^mixed\s+nginx\s+\d+\s+\d+`,
		`(?m)^dedupe\s+imedge\s+\d+`,
		`(?m)^sinkdown\s+imedge\s+\d+`,
		`(?m)^1m-ips\s+imedge-1m\s+\d+`,
		`(?m)^keepalive imedge\s+[\d.]+x\s+[\d.]+x\s+[\d.]+x$`,
		`(?m)^sinkdown: \d+ events drained in [\d.]+s`,
		`(?m)^1m-ips: imedge RSS after 5000 distinct ClientIPs and 5000 dedupe keys: \d+ MiB$`,
	} {
		assert.Regexp(t, regexp.MustCompile(row), out)
	}
	assert.NotRegexp(t, `(?m)^\S+\s+\S+\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[1-9]\d*$`, out,
		"no request failed")
	assert.NotContains(t, out, "sink got", "every accepted event reached the sink")
}

// runBenchScript runs scripts/bench.sh with args against a plain build of
// imedge and returns its output; it skips under -short and without nginx.
// A plain build: the race detector's slowdown would only stretch the run
// (the end-to-end tests cover imedge under -race).
func runBenchScript(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the benchmark script (20 to 40 s)")
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx is not installed (.ci/run installs it)")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "imedge")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	cmd := exec.CommandContext(ctx, "bash", append([]string{"../../scripts/bench.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "IMEDGE_BIN="+bin, "TMPDIR="+t.TempDir())
	out, err = cmd.CombinedOutput()
	t.Logf("build and bench.sh %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
	require.NoError(t, err, "bench.sh %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}
