package groupcommit

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGroup_ConcurrentCallersShareCommits runs 64 callers of 50 requests
// each: every request is committed exactly once, its caller gets its own
// result, commits never overlap, and concurrent requests shared commits.
func TestGroup_ConcurrentCallersShareCommits(t *testing.T) {
	const callers, each = 64, 50
	var mu sync.Mutex
	seen := map[int]int{}
	commits, running := 0, 0
	errOdd := errors.New("odd")
	g := New(func(group []*Call[int]) {
		mu.Lock()
		running++
		overlap := running > 1
		commits++
		for _, c := range group {
			seen[c.Req]++
			if c.Req%2 == 1 {
				c.Err = errOdd
			}
		}
		running--
		mu.Unlock()
		assert.False(t, overlap, "commits overlap")
	})
	var wg sync.WaitGroup
	for w := range callers {
		wg.Go(func() {
			for i := range each {
				req := w*each + i
				err := g.Run(req)
				if req%2 == 1 {
					assert.ErrorIs(t, err, errOdd)
				} else {
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, seen, callers*each)
	for req, n := range seen {
		assert.Equal(t, 1, n, "request %d committed once", req)
	}
	assert.Less(t, commits, callers*each, "some requests shared a commit")
	t.Logf("%d requests in %d commits", callers*each, commits)
}

// TestGroup_LoneCallerCommitsAtOnce: with no other caller, Run commits a
// group of one and returns its result.
func TestGroup_LoneCallerCommitsAtOnce(t *testing.T) {
	var sizes []int
	g := New(func(group []*Call[string]) {
		sizes = append(sizes, len(group))
		group[0].Err = errors.New(group[0].Req)
	})
	assert.EqualError(t, g.Run("a"), "a")
	assert.EqualError(t, g.Run("b"), "b")
	assert.Equal(t, []int{1, 1}, sizes)
}
