package testkit

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// MarkdownSection returns the lines of doc under the heading line head
// ("## /status"), up to the next heading of the same or a higher level.
// Lines in fenced code blocks are never headings, so a shell comment does
// not end a section. A doc without the heading fails t.
func MarkdownSection(t testing.TB, doc, head string) string {
	t.Helper()
	level := strings.IndexByte(head, ' ')
	lines := strings.Split(doc, "\n")
	start := slices.Index(lines, head)
	require.True(t, start >= 0, "the document has the heading %q", head)
	end, fenced := len(lines), false
	for k := start + 1; k < len(lines); k++ {
		if strings.HasPrefix(lines[k], "```") {
			fenced = !fenced
		}
		n := len(lines[k]) - len(strings.TrimLeft(lines[k], "#"))
		if !fenced && n > 0 && n <= level && strings.HasPrefix(lines[k][n:], " ") {
			end = k
			break
		}
	}
	return strings.Join(lines[start+1:end], "\n")
}
