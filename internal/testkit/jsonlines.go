package testkit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// JSONLines decodes text as JSON lines, the form of imedge's logs and
// audit records: one object per line, blank lines skipped. A line that is
// not a JSON object fails t.
func JSONLines(t testing.TB, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "JSON line %q", line)
		out = append(out, m)
	}
	return out
}
