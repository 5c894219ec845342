package testkit_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/internal/testkit"
)

func TestClock_Advance(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testkit.NewClock(start)
	assert.Equal(t, start, c.Now())
	c.Advance(90 * time.Second)
	assert.Equal(t, start.Add(90*time.Second), c.Now())
}

func TestClock_SetAndStep(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testkit.NewClock(start)
	c.Set(start.Add(-time.Hour))
	assert.Equal(t, start.Add(-time.Hour), c.Now(), "Set moves backwards too")
	c.SetStep(time.Millisecond)
	a, b := c.Now(), c.Now()
	assert.Equal(t, time.Millisecond, b.Sub(a), "each reading advances by the step")
	c.SetStep(0)
	assert.Equal(t, c.Now(), c.Now())
}

func TestRSSBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	assert.Greater(t, testkit.RSSBytes(), float64(1<<20), "a Go test process has more than 1 MiB resident")
}

func TestSyncBuffer_ConcurrentWriteAndRead(t *testing.T) {
	var b testkit.SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	assert.Len(t, b.String(), 400)
}

func TestReportMemory_MeasuresWhatBuildKeepsAlive(t *testing.T) {
	r := testing.Benchmark(func(b *testing.B) {
		testkit.ReportMemory(b, 1024, func() any { return make([]byte, 8<<20) })
	})
	assert.InDelta(t, 8, r.Extra["heap-MiB"], 1, "an 8 MiB slice kept alive")
	assert.InDelta(t, 8<<10, r.Extra["heap-B/key"], 1<<10)
}

func TestJSONLines(t *testing.T) {
	var buf testkit.SyncBuffer
	_, _ = buf.Write([]byte("{\"msg\":\"a\",\"n\":1}\n\n{\"msg\":\"b\"}\n"))
	lines := testkit.JSONLines(t, buf.String())
	require.Len(t, lines, 2, "the blank line is skipped")
	assert.Equal(t, "a", lines[0]["msg"])
	assert.Equal(t, 1.0, lines[0]["n"])
	assert.Equal(t, "b", lines[1]["msg"])
	assert.Empty(t, testkit.JSONLines(t, ""))
}

func TestMarkdownSection(t *testing.T) {
	doc := "# T\n## A\na1\n```sh\n# a shell comment\n```\n### A.1\na2\n## B\nb1\n"
	assert.Equal(t, "a1\n```sh\n# a shell comment\n```\n### A.1\na2", testkit.MarkdownSection(t, doc, "## A"),
		"up to the next heading of the same level; a comment in code and a deeper heading do not end it")
	assert.Equal(t, "a2", testkit.MarkdownSection(t, doc, "### A.1"), "a higher level ends it")
	assert.Equal(t, "b1\n", testkit.MarkdownSection(t, doc, "## B"), "the last section runs to the end")
}
