package decide

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReferenceDoc keeps docs/decide.md in step with the defaults it
// states.
func TestReferenceDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/decide.md")
	require.NoError(t, err)
	doc := string(b)
	for _, want := range []string{
		"`" + DefaultTimeout.String() + "`",
		"At most `" + MaxTimeout.String() + "`",
		strconv.Itoa(DefaultBreakerFailures) + " consecutive failures open it",
		"once " + strconv.Itoa(int(DefaultBreakerCoolDown.Seconds())) + " s has passed since the circuit opened",
		"at most 10 000\ndecisions and " + strconv.Itoa(DefaultCacheBytes>>20) + " MiB",
		"over " + strconv.Itoa(MaxReplyBytes>>10) + " KiB",
		"at most " + strconv.Itoa(DefaultMaxConns) + " connections",
		"kept " + strconv.Itoa(int(DefaultIdleTimeout.Seconds())) + " s",
	} {
		assert.Contains(t, doc, want)
	}
	assert.Equal(t, 10_000, DefaultCacheEntries, "the doc writes it as 10 000")
}
