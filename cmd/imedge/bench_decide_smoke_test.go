package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestBenchScript_DecideQuickSmoke runs scripts/bench.sh --quick --only
// decide end to end: the decide scenario still runs and prints its table
// and its goals; its figures mean nothing. It needs nginx, which .ci/run
// installs.
func TestBenchScript_DecideQuickSmoke(t *testing.T) {
	t.Parallel()
	out := runBenchScript(t, "--quick", "--only", "decide")

	for _, row := range []string{
		`(?m)^decide throughput imedge-dec\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\s+\d+$`,
		`(?m)^decide throughput nginx-dec\s+\d+`,
		`(?m)^decide rate1k\s+imedge-dec\s+\d+`,
		`(?m)^decide rate1k\s+direct\s+\d+`,
		`(?m)^decide stalled\s+imedge-dec\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+0\s+\d+$`,
		`(?m)^decide open\s+imedge-dec\s+\d+`,
		`(?m)^goal: imedge decisions/s vs nginx \(default flags\): [\d.]+x \(goal >= 1.0x: (met|NOT met)\)`,
		`(?m)^goal: added latency at 1000 decisions/s over calling the service directly: p50 [-+][\d.]+ ms, p99 [-+][\d.]+ ms`,
		`(?m)^goal: service stalled: p99 [\d.]+ ms .*slowest answer [\d.]+ ms \(IM's deadline 2000 ms: (met|NOT met)\)`,
		`(?m)^goal: circuit open: p99 [\d.]+ ms`,
		`(?m)^nginx with the service stalled: \d+ answers missed IM's 2 s deadline`,
	} {
		assert.Regexp(t, regexp.MustCompile(row), out)
	}
	assert.NotContains(t, out, "keepalive imedge", "--only decide runs the decide scenario alone")
}
