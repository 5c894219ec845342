package forward

import (
	"runtime"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit gathers the requests of concurrent callers into groups and
// hands each group to one commit function, without waiting for a timer: the
// first caller commits as soon as the goroutines ready to run have had
// their turn; callers arriving meanwhile or while a commit runs queue up,
// and when it ends the first of them commits everything queued, so a
// group is whatever arrived during one commit. The outbox uses one for its
// journal (one write and one fsync per group) and one for its bbolt
// transactions. bbolt's own Batch instead held every group open for
// MaxBatchDelay, which put a 2 ms floor under each callback's answer.
type groupCommit[T any] struct {
	commit func(group []*groupCall[T]) // sets each call's err

	mu      sync.Mutex
	queue   []*groupCall[T] // waiting for the next commit
	spare   []*groupCall[T] // the previous group's slice, reused
	leading bool            // a caller is committing a group
	calls   sync.Pool       // *groupCall[T]
}

// groupCall is one caller's request and, once committed, its result. done
// receives true when the call was committed (err is set), or false when
// the caller is to lead the next group itself.
type groupCall[T any] struct {
	req  T
	err  error
	done chan bool
}

func newGroupCommit[T any](commit func(group []*groupCall[T])) *groupCommit[T] {
	g := &groupCommit[T]{commit: commit}
	g.calls.New = func() any { return &groupCall[T]{done: make(chan bool, 1)} }
	return g
}

// run commits req, in a group with the requests of concurrent callers, and
// returns its error.
func (g *groupCommit[T]) run(req T) error {
	c := g.calls.Get().(*groupCall[T])
	c.req = req
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead || !<-c.done {
		g.lead(c)
	}
	err := c.err
	var zero T
	c.req, c.err = zero, nil
	g.calls.Put(c)
	return err
}

// lead commits every queued call (self among them), wakes their callers,
// and passes the lead to the first call queued meanwhile, or gives it up.
func (g *groupCommit[T]) lead(self *groupCall[T]) {
	// Let the goroutines that are ready to run go first: those about to
	// call run join this group instead of the next one. Under the bench's
	// keep-alive load (one processor) the journal's groups grew from 26
	// to 30 callbacks per fsync, and CPU per callback fell by about 2 us
	// (medians of two sets of six interleaved runs, 29.5 -> 26.8 and
	// 26.4 -> 25.9). With nothing else to run it returns at once.
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

// txFunc is a write of a bbolt transaction.
type txFunc = func(*bolt.Tx) error

// newTxGroup returns a groupCommit running its calls' functions in one
// bbolt transaction per group. As with bbolt's Batch, a function may run
// more than once: when a group's transaction fails, each function is
// retried in a transaction of its own so that one failing write does not
// fail the others. Functions must therefore set their results from scratch
// on every run.
func newTxGroup(db *bolt.DB) *groupCommit[txFunc] {
	return newGroupCommit(func(group []*groupCall[txFunc]) {
		err := db.Update(func(tx *bolt.Tx) error {
			for _, c := range group {
				if err := c.req(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || len(group) == 1 {
			for _, c := range group {
				c.err = err
			}
			return
		}
		for _, c := range group {
			c.err = db.Update(c.req)
		}
	})
}

// update commits fn through the outbox's transaction group.
func (o *Outbox) update(fn txFunc) error { return o.group.run(fn) }
