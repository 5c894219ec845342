package forward

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/forward/internal/groupcommit"
	"github.com/imedge/imedge/forward/internal/journal"
	"github.com/imedge/imedge/forward/internal/store"
	"github.com/imedge/imedge/internal/uring"
)

// journalEntry is one appended event on its way: what Append hands the
// journal, what the journal hands the applier, and (until its first
// attempt) what the Dispatcher delivers from memory.
type journalEntry struct {
	store.Entry        // sequence number, record, id and acceptance time
	q           *queue // the destination's queue
	err         error  // a failure of this entry alone (stored directly)
	// ev is the event as appended, its body within Rec; the zero Event
	// for entries found by recovery. See queue.fresh.
	ev Event
	// early: the dispatcher could take it from memory before it was
	// stored (see handoff). absorbed: it was delivered before that, so
	// the applier does not store it as pending (see apply).
	early, absorbed bool
}

// success is a successful attempt of one or more events of a queue,
// handed to the applier, which removes (or retains) them.
type success struct {
	q        *queue
	seqs     []uint64
	at       time.Time // when the attempt started
	duration time.Duration
}

// applier is the outbox's write path between Append and the store: it
// writes appended events to the journal (one write and flush per group of
// concurrent Appends), makes them deliverable at once, and copies them
// into the store in the background, as many per transaction as are
// waiting, together with the removals of delivered events. Readers wait
// for it (waitApplied) so that they see every appended event and no
// delivered one. Its methods are safe for concurrent use; stop it before
// closing the store.
type applier struct {
	applierOptions
	jr     *journal.Journal
	jgroup *groupcommit.Group[*journalEntry]

	absorbed atomic.Uint64 // events delivered before they were stored

	mu    sync.Mutex
	queue []*journalEntry // synced to the journal, not yet in the store
	dones []success       // delivered, to be removed from the store
	err   error           // the last failure to apply, nil once one succeeds
	wake  chan struct{}
	hurry chan struct{} // the journal waits to be reused: skip the pause
	stop  chan struct{}
	ended chan struct{}

	// Deletes handed to the applier, and those it finished; see waitApplied.
	delMu              sync.Mutex
	delCond            *sync.Cond
	delQueued, delDone uint64

	scratch []*store.Entry // the applier goroutine's

	// The journal group leader's (one at a time), reused.
	leaderEntries  []*journalEntry
	leaderPayloads [][]byte
}

// applyRetry is how long the applier waits after a failed transaction.
const applyRetry = time.Second

// applyInterval is the least time between two applier transactions while
// events keep coming: waiting lets each transaction carry more events and
// deletes, so bbolt commits (and their two fdatasyncs) stay few. It delays
// the store's copy of an event and the removal of delivered events, never
// an answer to IM nor a first delivery attempt (events are deliverable
// from memory once journaled). Each commit's fdatasync blocks a thread for
// about a millisecond, long enough for the Go runtime to hand the
// processor to another thread; 100 ms against 20 ms saved about 1.5 us of
// CPU per callback under keep-alive load. At 30 000 callbacks/s a
// transaction then carries about 3 000 events, well inside maxFresh and
// the journal.
const applyInterval = 100 * time.Millisecond

// applierOptions is what an applier needs of the outbox.
type applierOptions struct {
	st          *store.Store
	path        string // the journal's
	journalSize int64
	newRing     func() (*uring.Ring, error)
	queueFor    func(dest string) *queue
	queues      func() []*queue
	maxEvents   int
	maxBytes    int64
	// retain is how long delivered events are kept; zero or less: not at
	// all (and those kept before are dropped).
	retain time.Duration
	now    func() time.Time
	closed *atomic.Bool // the outbox's
	log    *slog.Logger
}

// maxAgedPerApply bounds how many retained events past their age one
// transaction drops (those over the limits are always all dropped).
const maxAgedPerApply = 4096

// openJournal recovers the journal into the store (the records past the
// store's journal-applied mark: events acknowledged before a crash that
// the applier had not copied yet), then opens it for writing from its
// start, numbering on above everything the store knows. Call start to
// run the applier.
func openJournal(o applierOptions) (*applier, error) {
	st := o.st
	found, last, err := journalTail(st, o.path, o.queueFor)
	if err != nil {
		return nil, err
	}
	entries := make([]*store.Entry, len(found))
	for i, e := range found {
		entries[i] = &e.Entry
	}
	if err := st.Recover(entries); err != nil {
		return nil, err
	}
	if len(found) > 0 {
		o.log.Info("outbox journal recovered", "events", len(found))
	}
	jr, err := journal.Open(o.path, journal.Options{Size: o.journalSize, NewRing: o.newRing})
	if err != nil {
		return nil, err
	}
	jr.Start(last)
	a := &applier{
		applierOptions: o, jr: jr,
		wake: make(chan struct{}, 1), hurry: make(chan struct{}, 1),
		stop: make(chan struct{}), ended: make(chan struct{}),
	}
	a.delCond = sync.NewCond(&a.delMu)
	a.jgroup = groupcommit.New(a.commit)
	jr.SetHooks(func() {
		select {
		case a.hurry <- struct{}{}:
		default:
		}
	}, a.failure)
	return a, nil
}

// journalTail returns the intact journal records past the store's
// journal-applied mark (events answered OK before a crash that the
// applier had not stored), each with its destination's queue, and the
// highest sequence number the store or those records know. It only reads.
func journalTail(st *store.Store, path string, queueFor func(string) *queue) (found []*journalEntry, last uint64, err error) {
	applied, last, err := st.Marks()
	if err != nil {
		return nil, 0, err
	}
	err = journal.Scan(path, func(seq uint64, rec []byte) error {
		if seq <= applied {
			return nil
		}
		r, _, err := store.DecodeRecord(rec, false)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", seq, err)
		}
		found = append(found, &journalEntry{
			Entry: store.Entry{Seq: seq, Rec: rec, ID: store.NewAcceptedID(r.AcceptedAt, r.ID)},
			q:     queueFor(r.Destination),
		})
		last = max(last, seq)
		return nil
	})
	return found, last, err
}

// start runs the apply loop until close.
func (a *applier) start() { go a.loop() }

// append journals e (sharing the write and flush with concurrent callers)
// and returns once it is on stable storage.
func (a *applier) append(e *journalEntry) error {
	err := a.jgroup.Run(e)
	if err == nil {
		err = e.err
	}
	return err
}

// commit is the journal group's commit: it writes the group to the
// journal (one write and one flush) and hands it to the applier. A record
// too large for the journal is stored directly, in order, once everything
// before it is applied.
func (a *applier) commit(group []*groupcommit.Call[*journalEntry]) {
	allEntries, allPayloads := a.leaderEntries[:0], a.leaderPayloads[:0]
	for _, c := range group {
		allEntries = append(allEntries, c.Req)
		allPayloads = append(allPayloads, c.Req.Rec)
	}
	defer func() {
		clear(allEntries)
		clear(allPayloads)
		a.leaderEntries, a.leaderPayloads = allEntries[:0], allPayloads[:0]
	}()
	entries, payloads := allEntries, allPayloads
	var err error
	for len(entries) > 0 && err == nil {
		n := 0
		for n < len(entries) && int64(len(entries[n].Rec)) <= a.jr.Size()/4 {
			n++
		}
		synced := 0
		err = a.jr.Write(payloads[:n], func(first uint64, k int) {
			run := entries[synced : synced+k]
			for i, e := range run {
				e.Seq = first + uint64(i)
			}
			synced += k
			a.handoff(run)
		})
		if err == nil && n < len(entries) {
			a.storeDirect(entries[n])
			n++
		}
		entries, payloads = entries[n:], payloads[n:]
	}
	for _, c := range group {
		c.Err = err
	}
}

// storeDirect writes one oversized entry straight to the store.
func (a *applier) storeDirect(e *journalEntry) {
	// Everything journaled before it is stored first (Reserve waits), so
	// that the journal-applied mark moved to it claims nothing that is not.
	if e.Seq, e.err = a.jr.Reserve(); e.err != nil {
		return
	}
	if e.err = a.st.PutDirect(&e.Entry, e.At()); e.err == nil {
		a.stored([]*journalEntry{e})
		a.jr.MarkApplied(e.Seq)
	}
}

// handoff queues synced journal entries for the applier and makes those
// that fit in their queue's fresh map deliverable at once (early): the
// dispatcher takes them from memory, and one delivered before the
// applier's next transaction never has its record written to bbolt as
// pending. Each is queued for the applier before it becomes deliverable,
// so the applier always sees it no later than the removal of a delivery.
func (a *applier) handoff(entries []*journalEntry) {
	eachQueue(entries, func(q *queue, run []*journalEntry) {
		q.mu.Lock()
		for _, e := range run {
			e.early = q.keepFresh(e)
		}
		q.mu.Unlock()
	})
	a.mu.Lock()
	a.queue = append(a.queue, entries...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	eachQueue(entries, func(q *queue, run []*journalEntry) {
		early := false
		q.mu.Lock()
		for _, e := range run {
			if e.early {
				q.sched.add(e.Seq, time.Time{})
				early = true
			}
		}
		q.mu.Unlock()
		if early {
			q.signal()
		}
	})
}

// eachQueue calls fn for each run of consecutive entries of one queue.
func eachQueue(entries []*journalEntry, fn func(q *queue, run []*journalEntry)) {
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].q == entries[i].q {
			j++
		}
		fn(entries[i].q, entries[i:j])
		i = j
	}
}

// stored makes stored entries deliverable, keeping appended events fresh
// for their first attempt while there is room.
func (a *applier) stored(entries []*journalEntry) {
	eachQueue(entries, func(q *queue, run []*journalEntry) {
		added := false
		q.mu.Lock()
		for _, e := range run {
			if e.early || e.absorbed {
				continue // deliverable since handoff
			}
			q.sched.add(e.Seq, time.Time{})
			q.keepFresh(e)
			added = true
		}
		q.mu.Unlock()
		if added {
			q.signal()
		}
	})
}

// failure returns the applier's last error while it keeps failing: Append
// refuses new events meanwhile, so that a store that cannot be written
// answers 503 instead of filling the journal.
func (a *applier) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// failing reports whether the applier is failing (waits give up).
func (a *applier) failing() bool { return a.failure() != nil }

// close lets the applier copy what is queued (unless the store keeps
// failing), waits for it to end, and closes the journal.
func (a *applier) close() {
	close(a.stop)
	<-a.ended
	_ = a.jr.Close()
	a.delCond.Broadcast()
}

// loop copies journal entries into the store and removes delivered
// events, as many per transaction as are queued. On failure the entries
// stay queued (and in the journal) and it tries again after applyRetry;
// when stopped while failing it leaves them to the next open's recovery.
func (a *applier) loop() {
	defer close(a.ended)
	var last time.Time // start of the last transaction with work
	for {
		if wait := applyInterval - time.Since(last); wait > 0 {
			select {
			case <-time.After(wait):
			case <-a.hurry:
			case <-a.stop:
			}
		}
		a.mu.Lock()
		batch, dones := a.queue, a.dones
		a.queue, a.dones = nil, nil
		a.mu.Unlock()
		if len(batch) == 0 && len(dones) == 0 {
			var prune <-chan time.Time
			if every := a.pruneEvery(); every > 0 {
				prune = time.After(every)
			}
			select {
			case <-a.wake:
				continue
			case <-prune: // retained events may have aged: an apply drops them
			case <-a.stop:
				a.mu.Lock()
				n := len(a.queue) + len(a.dones)
				a.mu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		last = time.Now()
		err := a.apply(batch, dones)
		a.mu.Lock()
		a.err = err
		if err != nil {
			a.queue = append(batch, a.queue...)
			a.dones = append(dones, a.dones...)
		}
		a.mu.Unlock()
		if err == nil {
			continue
		}
		// Waiters give up while the applier fails.
		a.jr.Wake()
		a.delCond.Broadcast()
		a.log.Error("copying journaled events into the outbox store failed; new callbacks are refused until it works",
			"events", len(batch), "err", err)
		select {
		case <-time.After(applyRetry):
		case <-a.stop:
			return
		}
	}
}

// apply, in one transaction, stores batch and removes the delivered
// events of dels, then makes batch deliverable and accounts for the
// removals. An event of batch that dels already holds (delivered early,
// before this transaction) is absorbed: not written as pending, only its
// id is remembered (and, when retaining, it is retained). On failure
// nothing is accounted: the caller queues both again.
func (a *applier) apply(batch []*journalEntry, dels []success) error {
	for _, e := range batch {
		e.absorbed = false
	}
	var idx batchIndex
	if len(dels) > 0 && len(batch) > 0 {
		idx = newBatchIndex(batch)
	}
	req := store.Apply{Retain: a.retain > 0, Evict: a.eviction()}
	var fromBatch []*journalEntry // per removed event in dels' order: its entry if absorbed
	for _, d := range dels {
		for _, seq := range d.seqs {
			done := store.Done{Seq: seq, At: d.at, Duration: d.duration}
			if e, ok := idx.find(seq); ok && !e.absorbed {
				e.absorbed = true
				req.Absorbed = append(req.Absorbed, done)
				fromBatch = append(fromBatch, e)
				continue
			}
			req.Done = append(req.Done, done)
			fromBatch = append(fromBatch, nil)
		}
	}
	slices.SortFunc(req.Absorbed, func(x, y store.Done) int { return cmp.Compare(x.Seq, y.Seq) })
	if len(batch) > 0 {
		a.scratch = a.scratch[:0]
		for _, e := range batch {
			a.scratch = append(a.scratch, &e.Entry)
		}
		req.Entries = a.scratch
		req.Now = batch[len(batch)-1].At()
	}
	res, err := a.st.Apply(&req)
	clear(a.scratch)
	if err != nil {
		if store.IsClosed(err) {
			return ErrClosed
		}
		return err
	}
	// Accounted before the waiters are woken (MarkApplied, finishDeletes),
	// so that a read after waitApplied sees the counts of this transaction.
	for _, r := range res.Evicted {
		q := a.queueFor(r.Destination)
		q.mu.Lock()
		q.retainedN--
		q.retainedBytes -= r.Size
		q.mu.Unlock()
	}
	a.absorbed.Add(uint64(len(req.Absorbed)))
	if len(batch) > 0 {
		a.stored(batch)
		a.jr.MarkApplied(batch[len(batch)-1].Seq)
	}
	a.finishDeletes(dels, fromBatch, res.DoneSizes)
	return nil
}

// eviction says which retained delivered events the next transaction
// drops: enough that everything stored (pending, dead and retained, the
// events being applied included) fits in the limits again, and those
// older than the retention. A retained event therefore never makes Append
// refuse an event: Append counts only pending events and dead letters, and
// the room retained events take is given back at the next transaction.
func (a *applier) eviction() store.Evict {
	var ev store.Evict
	retained := 0
	events, bytes := 0, int64(0)
	for _, q := range a.queues() {
		q.mu.Lock()
		events += q.pendingN + q.deadN + q.retainedN
		bytes += q.pendingBytes + q.deadBytes + q.retainedBytes
		retained += q.retainedN
		q.mu.Unlock()
	}
	if retained == 0 {
		return ev
	}
	ev.Events, ev.Bytes = events-a.maxEvents, bytes-a.maxBytes
	ev.MaxAged = maxAgedPerApply
	ev.Before = a.now().Add(-a.retain)
	if a.retain <= 0 { // retention turned off: drop what was kept
		ev.Before = a.now().Add(time.Hour)
	}
	return ev
}

// pruneEvery returns how long the idle applier waits before dropping
// retained events that aged, zero when none is retained.
func (a *applier) pruneEvery() time.Duration {
	for _, q := range a.queues() {
		q.mu.Lock()
		n := q.retainedN
		q.mu.Unlock()
		if n > 0 {
			return min(max(a.retain/4, 10*time.Millisecond), time.Minute)
		}
	}
	return 0
}

// finishDeletes accounts for the removals of delivered events once their
// transaction committed: they leave their queue's pending counts (for its
// retained ones, when retaining) and its schedule. fromBatch has, per
// event of dels in order, its entry when it was absorbed (its record's
// size counts); the others' sizes are storedSizes, in order.
func (a *applier) finishDeletes(dels []success, fromBatch []*journalEntry, storedSizes []int64) {
	if len(fromBatch) == 0 {
		return
	}
	i, j := 0, 0
	for _, d := range dels {
		d.q.mu.Lock()
		for _, seq := range d.seqs {
			var size int64
			if e := fromBatch[i]; e != nil {
				size = int64(len(e.Rec))
			} else {
				size = storedSizes[j]
				j++
			}
			i++
			if size > 0 {
				d.q.pendingN--
				d.q.pendingBytes -= size
				if a.retain > 0 {
					d.q.retainedN++
					d.q.retainedBytes += size
				}
			}
			d.q.sched.finish(seq, false, time.Time{})
		}
		d.q.mu.Unlock()
	}
	a.delMu.Lock()
	a.delDone += uint64(len(fromBatch))
	a.delMu.Unlock()
	a.delCond.Broadcast()
}

// queueDeletes hands a success to the applier, which removes its events
// with its next transaction; until then they stay claimed. It is counted
// and queued under delMu together, so the removals counted before any
// moment are the first ones queued (see waitApplied).
func (a *applier) queueDeletes(d success) {
	a.delMu.Lock()
	a.delQueued += uint64(len(d.seqs))
	a.mu.Lock() // after delMu, as in waitApplied
	a.dones = append(a.dones, d)
	a.mu.Unlock()
	a.delMu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// waitSeq waits until every event up to seq is in the store (not when the
// applier is failing or the outbox closing). The paths that read or
// change an event's stored record call it first, as an event delivered
// early may not be stored yet.
func (a *applier) waitSeq(seq uint64) {
	a.jr.WaitApplied(seq, a.failing)
}

// waitApplied waits until everything acknowledged so far is in the store
// and every removal queued so far is done (not when the applier is
// failing or the outbox closing), so that reads see every appended event
// and no delivered one. Removals queued while it waits are not waited for:
// under a steady load there is always another. The applier does removals
// in the order queued, and queueDeletes counts them in that order, so the
// count done reaching the count queued at the call means those are done.
func (a *applier) waitApplied() {
	a.jr.WaitApplied(a.jr.Written(), a.failing)
	a.delMu.Lock()
	defer a.delMu.Unlock()
	target := a.delQueued
	for a.delDone < target && !a.closed.Load() && !a.failing() {
		a.delCond.Wait()
	}
}

// batchIndex finds an applier batch's entries by sequence number, by
// binary search: a map built for each transaction (about 3 000 entries at
// full load) was 2.4 % of the keep-alive CPU profile.
type batchIndex []*journalEntry

// newBatchIndex indexes batch, which is in journal order (so sorted by
// sequence number) as the journal hands entries off; a batch that is not
// is indexed through a sorted copy.
func newBatchIndex(batch []*journalEntry) batchIndex {
	bySeq := func(a, b *journalEntry) int { return cmp.Compare(a.Seq, b.Seq) }
	if !slices.IsSortedFunc(batch, bySeq) {
		batch = slices.SortedFunc(slices.Values(batch), bySeq)
	}
	return batch
}

// find returns the entry of sequence number seq.
func (b batchIndex) find(seq uint64) (*journalEntry, bool) {
	i, ok := slices.BinarySearchFunc(b, seq, func(e *journalEntry, s uint64) int { return cmp.Compare(e.Seq, s) })
	if !ok {
		return nil, false
	}
	return b[i], true
}

// freshCopy returns ev as the store would give it back from rec: the body
// within rec (the caller may reuse its buffer; EncodeRecord puts the body
// last) and the times as stored (UTC, no monotonic reading).
func freshCopy(ev Event, rec []byte) Event {
	if len(ev.Body) > 0 {
		ev.Body = rec[len(rec)-len(ev.Body) : len(rec) : len(rec)]
	}
	ev.ReceivedAt = store.Normalize(ev.ReceivedAt)
	return ev
}

// errIsClosed reports whether err means the outbox was closed under a
// write.
func errIsClosed(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, journal.ErrClosed) || store.IsClosed(err)
}
