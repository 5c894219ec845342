package groupcommit

import (
	"runtime"
	"sync"
)

// Group gathers the requests of concurrent callers into groups and hands
// each group to one commit function, without waiting for a timer: the
// first caller commits as soon as the goroutines ready to run have had
// their turn; callers arriving meanwhile or while a commit runs queue up,
// and when it ends the first of them commits everything queued, so a
// group is whatever arrived during one commit. (bbolt's own Batch held
// every group open for MaxBatchDelay, which put a 2 ms floor under each
// callback's answer.)
//
// Create it with [New]; the zero value is not usable. Safe for concurrent
// use. It starts no goroutine: commits run on the callers' goroutines.
type Group[T any] struct {
	commit func(group []*Call[T]) // sets each call's Err

	mu      sync.Mutex
	queue   []*Call[T] // waiting for the next commit
	spare   []*Call[T] // the previous group's slice, reused
	leading bool       // a caller is committing a group
	calls   sync.Pool  // *Call[T]
}

// Call is one caller's request and, once committed, its result: the
// commit function reads Req and sets Err.
type Call[T any] struct {
	Req T     // the caller's request
	Err error // its result, set by the commit function
	// done receives true when the call was committed (Err is set), or
	// false when the caller is to lead the next group itself.
	done chan bool
}

// New returns a Group committing with commit, which must set the Err of
// every call of the group it is given (nil on success). It runs on one
// caller's goroutine, never two at once.
func New[T any](commit func(group []*Call[T])) *Group[T] {
	g := &Group[T]{commit: commit}
	g.calls.New = func() any { return &Call[T]{done: make(chan bool, 1)} }
	return g
}

// Run commits req, in a group with the requests of concurrent callers, and
// returns its error.
func (g *Group[T]) Run(req T) error {
	c := g.calls.Get().(*Call[T])
	c.Req = req
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead || !<-c.done {
		g.lead(c)
	}
	err := c.Err
	var zero T
	c.Req, c.Err = zero, nil
	g.calls.Put(c)
	return err
}

// lead commits every queued call (self among them), wakes their callers,
// and passes the lead to the first call queued meanwhile, or gives it up.
func (g *Group[T]) lead(self *Call[T]) {
	// Let the goroutines that are ready to run go first: those about to
	// call Run join this group instead of the next one, which makes groups
	// larger under load (fewer fdatasyncs per callback; see
	// BenchmarkAppend in package forward). With nothing else to run it
	// returns at once.
	runtime.Gosched()
	g.mu.Lock()
	group := g.queue
	g.queue, g.spare = g.spare, nil
	g.mu.Unlock()

	g.commit(group)
	for _, c := range group {
		if c != self {
			c.done <- true
		}
	}
	clear(group)

	g.mu.Lock()
	g.spare = group[:0]
	if len(g.queue) == 0 {
		g.leading = false
		g.mu.Unlock()
		return
	}
	next := g.queue[0]
	g.mu.Unlock()
	next.done <- false
}
