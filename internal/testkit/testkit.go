// Package testkit holds small helpers shared by imedge's tests and
// benchmarks: a manually advanced clock, the process's resident set size,
// running the real binary, a buffer for concurrent writers, the decoding
// of JSON log lines, a file's allocated bytes and a Markdown section of a
// doc under test. Waiting for a condition uses testify's
// require.Eventually / assert.Eventually, never a sleep. It is imported only
// by _test.go files.
package testkit

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// Clock is a manually advanced clock: the one fake clock of imedge's tests.
// With a step set (SetStep), every reading first advances it by the step, so
// that successive readings differ as they would on a real clock. Safe for
// concurrent use.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time, after advancing it by the step, if any.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// Set moves the clock to t, backwards or forwards.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// SetStep makes every later reading advance the clock by d first; zero
// stops it.
func (c *Clock) SetStep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.step = d
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// RSSBytes returns the resident set size of the process from
// /proc/self/status, or 0 where that is unavailable.
func RSSBytes() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if f := bytes.Fields(line); len(f) == 3 && string(f[0]) == "VmRSS:" {
			kb, err := strconv.ParseFloat(string(f[1]), 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
