package forward

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/imedge/imedge/forward/internal/groupcommit"
	"github.com/imedge/imedge/forward/internal/journal"
)

// journalEntry is one record: what Append hands the journal, and what the
// journal hands the applier.
type journalEntry struct {
	seq uint64 // assigned by the journal, in file order
	at  time.Time
	acc acceptedID // the event id, as the accepted bucket stores it
	rec []byte
	err error // a failure of this entry alone (written to the store directly)
	// ev is the event as appended, its body within rec; the zero Event
	// for entries found by recovery. See Outbox.fresh.
	ev Event
	// early: the dispatcher could take it from memory before it was
	// stored. skip: it was delivered before that, so the applier stores
	// only its id (see Outbox.applyEntries).
	early, skip bool
}

// applyRetry is how long the applier waits after a failed transaction.
const applyRetry = time.Second

// recoverJournal copies into the store every journal record newer than the
// store's journal-applied mark (events acknowledged before a crash that
// the applier had not copied yet), then opens the journal for writing from
// its start and sets the next sequence number above everything stored.
func (o *Outbox) recoverJournal(path string) error {
	found, seqMax, err := o.journalTail(path)
	if err != nil {
		return err
	}
	if len(found) > 0 {
		if err := o.db.Update(func(tx *bolt.Tx) error { return o.putEntries(tx, found) }); err != nil {
			return fmt.Errorf("applying %d journal records: %w", len(found), err)
		}
		o.log.Info("outbox journal recovered", "events", len(found))
	}
	j, err := journal.Open(path, journal.Options{Size: o.journalSize, NewRing: o.newRing})
	if err != nil {
		return err
	}
	method, why := j.Method()
	if why != nil {
		o.log.Info("outbox journal flushes with fdatasync(2): io_uring unavailable", "error", why.Error())
	}
	o.journalSync = method
	j.Start(seqMax)
	o.jr = j
	o.jgroup = groupcommit.New(o.commitJournal)
	return nil
}

// journalTail returns the intact journal records past the store's
// journal-applied mark (events answered OK before a crash that the applier
// had not stored), and the highest sequence number the store or those
// records know. It only reads.
func (o *Outbox) journalTail(path string) (found []*journalEntry, seqMax uint64, err error) {
	var applied uint64
	err = o.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if v := m.Get(keyJournalApplied); v != nil {
				applied = keySeq(v)
			}
		}
		seqMax = applied
		if p := tx.Bucket(bucketPending); p != nil {
			seqMax = max(seqMax, p.Sequence())
			if k, _ := p.Cursor().Last(); k != nil {
				seqMax = max(seqMax, keySeq(k))
			}
		}
		if d := tx.Bucket(bucketDead); d != nil {
			if k, _ := d.Cursor().Last(); k != nil {
				seqMax = max(seqMax, keySeq(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	err = journal.Scan(path, func(seq uint64, rec []byte) error {
		if seq <= applied {
			return nil
		}
		ev, at, _, err := decodeRecord(rec, false)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", seq, err)
		}
		found = append(found, &journalEntry{seq: seq, at: at, acc: newAcceptedID(at, ev.ID), rec: rec})
		seqMax = max(seqMax, seq)
		return nil
	})
	return found, seqMax, err
}

// putEntries stores entries as pending, remembers their ids and moves the
// journal-applied mark to the last of them (entries are in sequence order).
func (o *Outbox) putEntries(tx *bolt.Tx, entries []*journalEntry) error {
	p := tx.Bucket(bucketPending)
	for _, e := range entries {
		if !e.skip {
			if err := p.Put(seqKey(e.seq), e.rec); err != nil {
				return err
			}
		}
	}
	if err := putAccepted(tx.Bucket(bucketAccepted), entries); err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keyJournalApplied, seqKey(entries[len(entries)-1].seq))
}

// commitJournal is the journal group's commit: it writes the group to the
// journal (one write and one fdatasync) and queues it for the applier.
// A record too large for the journal is stored in bbolt directly, in
// order, once everything before it is applied.
func (o *Outbox) commitJournal(group []*groupcommit.Call[*journalEntry]) {
	entries := make([]*journalEntry, 0, len(group))
	payloads := make([][]byte, 0, len(group))
	for _, c := range group {
		entries = append(entries, c.Req)
		payloads = append(payloads, c.Req.rec)
	}
	var err error
	for len(entries) > 0 && err == nil {
		n := 0
		for n < len(entries) && int64(len(entries[n].rec)) <= o.jr.Size()/4 {
			n++
		}
		done := 0
		err = o.jr.Write(payloads[:n], func(first uint64, k int) {
			run := entries[done : done+k]
			for i, e := range run {
				e.seq = first + uint64(i)
			}
			done += k
			o.handoff(run)
		})
		if err == nil && n < len(entries) {
			o.storeDirect(entries[n])
			n++
		}
		entries, payloads = entries[n:], payloads[n:]
	}
	for _, c := range group {
		c.Err = err
	}
}

// storeDirect writes one oversized entry straight to the store.
func (o *Outbox) storeDirect(e *journalEntry) {
	// Everything journaled before it is stored first, so that marking it
	// applied below claims nothing that is not.
	if e.seq, e.err = o.jr.Reserve(); e.err != nil {
		return
	}
	var pruned int
	e.err = o.update(func(tx *bolt.Tx) error {
		a := tx.Bucket(bucketAccepted)
		if err := tx.Bucket(bucketPending).Put(seqKey(e.seq), e.rec); err != nil {
			return err
		}
		if err := putAccepted(a, []*journalEntry{e}); err != nil {
			return err
		}
		n, err := o.pruneAccepted(a, e.at, 1)
		pruned = n
		return err
	})
	if e.err == nil {
		o.applied([]*journalEntry{e}, pruned)
		o.jr.MarkApplied(e.seq)
	}
}

// handoff queues synced journal entries for the applier and makes those
// that fit in fresh deliverable at once (early): the dispatcher takes them
// from memory, and one delivered before the applier's next transaction
// never has its record written to bbolt, only its id. Each insert is queued
// before its event becomes deliverable, so the applier always sees it no
// later than the delete of a delivery.
func (o *Outbox) handoff(entries []*journalEntry) {
	o.mu.Lock()
	for _, e := range entries {
		if e.ev.ID != "" && len(o.fresh) < maxFresh {
			o.fresh[e.seq] = e
			e.early = true
		}
	}
	o.mu.Unlock()
	o.applyMu.Lock()
	o.applyQ = append(o.applyQ, entries...)
	o.applyMu.Unlock()
	select {
	case o.applyWake <- struct{}{}:
	default:
	}
	early := false
	o.mu.Lock()
	for _, e := range entries {
		if e.early {
			o.sched.add(e.seq, time.Time{})
			early = true
		}
	}
	o.mu.Unlock()
	if early {
		o.signal()
	}
}

// waitSeqApplied waits until every event up to seq is in the store (not
// when the applier is failing or the outbox closing). The paths that read
// or change an event's stored record call it first, as an event delivered
// early may not be stored yet.
func (o *Outbox) waitSeqApplied(seq uint64) {
	if o.jr != nil {
		o.jr.WaitApplied(seq, o.applyFailing)
	}
}

// applyFailing reports whether the applier is failing (waits give up).
func (o *Outbox) applyFailing() bool { return o.applyFailure() != nil }

// applyFailure returns the applier's last error while it keeps failing:
// Append refuses new events meanwhile, so that a store that cannot be
// written answers 503 instead of filling the journal.
func (o *Outbox) applyFailure() error {
	o.applyMu.Lock()
	defer o.applyMu.Unlock()
	return o.applyErr
}

func (o *Outbox) startApplier() {
	if o.jr == nil {
		return
	}
	o.applyWake = make(chan struct{}, 1)
	o.applyHurry = make(chan struct{}, 1)
	o.jr.SetHooks(func() {
		select {
		case o.applyHurry <- struct{}{}:
		default:
		}
	}, o.applyFailure)
	o.delCond = sync.NewCond(&o.delMu)
	o.applyStop = make(chan struct{})
	o.applyDone = make(chan struct{})
	go o.applyLoop()
}

// stopApplier lets the applier copy what is queued (unless the store keeps
// failing) and waits for it to end.
func (o *Outbox) stopApplier() {
	if o.applyStop == nil {
		return
	}
	close(o.applyStop)
	<-o.applyDone
}

func (o *Outbox) closeJournal() {
	if o.jr != nil {
		_ = o.jr.Close()
	}
}

// applyInterval is the least time between two applier transactions while
// events keep coming: waiting lets each transaction carry more events and
// deletes, so bbolt commits (and their two fdatasyncs) stay few. It delays
// the store's copy of an event and the deletes of delivered events, never
// an answer to IM nor a first delivery attempt (events are deliverable
// from memory once journaled). Each commit's fdatasync blocks a thread for
// about a millisecond, long enough for the Go runtime to hand the
// processor to another thread and to poll every 20 us for the next
// millisecond. 20 -> 100 ms measured 33.5 -> 32.0 us of CPU per callback
// under keep-alive load (medians of six interleaved runs of the bench's
// tuned instance). At 30 000 callbacks/s a transaction then carries about
// 3 000 events, well inside maxFresh and the journal.
const applyInterval = 100 * time.Millisecond

// applyLoop copies journal entries into the store and deletes delivered
// events, as many per transaction as are queued. On failure the entries
// stay queued (and in the journal) and it tries again after applyRetry;
// when stopped while failing it leaves them to the next open's recovery.
func (o *Outbox) applyLoop() {
	defer close(o.applyDone)
	var last time.Time // start of the last transaction with work
	for {
		if wait := applyInterval - time.Since(last); wait > 0 {
			select {
			case <-time.After(wait):
			case <-o.applyHurry:
			case <-o.applyStop:
			}
		}
		o.applyMu.Lock()
		batch, dones := o.applyQ, o.doneQ
		o.applyQ, o.doneQ = nil, nil
		o.applyMu.Unlock()
		if len(batch) == 0 && len(dones) == 0 {
			select {
			case <-o.applyWake:
				continue
			case <-o.applyStop:
				o.applyMu.Lock()
				n := len(o.applyQ) + len(o.doneQ)
				o.applyMu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		last = time.Now()
		err := o.applyEntries(batch, dones)
		o.applyMu.Lock()
		o.applyErr = err
		if err != nil {
			o.applyQ = append(batch, o.applyQ...)
			o.doneQ = append(dones, o.doneQ...)
		}
		o.applyMu.Unlock()
		if err == nil {
			continue
		}
		// waitApplied gives up while the applier fails.
		o.jr.Wake()
		o.delCond.Broadcast()
		o.log.Error("copying journaled events into the outbox store failed; new callbacks are refused until it works",
			"events", len(batch), "err", err)
		select {
		case <-time.After(applyRetry):
		case <-o.applyStop:
			return
		}
	}
}

// applyEntries, in one transaction, stores batch and deletes the
// delivered events of dones, then makes batch deliverable. An event of
// batch that dones already holds (delivered early, before this
// transaction) is neither written nor deleted, only its id is remembered.
// On failure nothing is accounted: the caller queues both again.
func (o *Outbox) applyEntries(batch []*journalEntry, dones []uint64) error {
	var inBatch batchIndex
	skipped := 0
	if len(dones) > 0 && len(batch) > 0 {
		inBatch = newBatchIndex(batch)
		for _, e := range batch {
			e.skip = false
		}
		for _, seq := range dones {
			if e, ok := inBatch.find(seq); ok && !e.skip {
				e.skip = true
				skipped++
			}
		}
	}
	var pruned int
	var sizes []int64
	err := o.update(func(tx *bolt.Tx) error {
		var err error
		if sizes, err = deleteDelivered(tx, dones, inBatch); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if err := o.putEntries(tx, batch); err != nil {
			return err
		}
		pruned, err = o.pruneAccepted(tx.Bucket(bucketAccepted), batch[len(batch)-1].at, len(batch))
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return err
	}
	if len(batch) > 0 {
		o.applied(batch, pruned)
		o.jr.MarkApplied(batch[len(batch)-1].seq)
	}
	o.absorbed.Add(uint64(skipped))
	o.finishDeletes(dones, sizes)
	return nil
}

// batchIndex finds an applier batch's entries by sequence number, by
// binary search: a map built for each transaction (about 3 000 entries at
// full load) was 2.4 % of the keep-alive CPU profile.
type batchIndex []*journalEntry

// newBatchIndex indexes batch, which is in journal order (so sorted by
// sequence number) as the journal hands entries off; a batch that is not
// is indexed through a sorted copy.
func newBatchIndex(batch []*journalEntry) batchIndex {
	bySeq := func(a, b *journalEntry) int { return cmp.Compare(a.seq, b.seq) }
	if !slices.IsSortedFunc(batch, bySeq) {
		batch = slices.SortedFunc(slices.Values(batch), bySeq)
	}
	return batch
}

// find returns the entry of sequence number seq.
func (b batchIndex) find(seq uint64) (*journalEntry, bool) {
	i, ok := slices.BinarySearchFunc(b, seq, func(e *journalEntry, s uint64) int { return cmp.Compare(e.seq, s) })
	if !ok {
		return nil, false
	}
	return b[i], true
}

// deleteDelivered deletes the delivered events dones and their delivery
// states and returns the stored size of each (0: already gone). Events of
// inBatch, not stored yet, are left alone and count their record's size.
func deleteDelivered(tx *bolt.Tx, dones []uint64, inBatch batchIndex) ([]int64, error) {
	if len(dones) == 0 {
		return nil, nil
	}
	p, s := tx.Bucket(bucketPending), tx.Bucket(bucketState)
	sizes := make([]int64, len(dones))
	for i, seq := range dones {
		if e, ok := inBatch.find(seq); ok {
			sizes[i] = int64(len(e.rec))
			continue
		}
		k := seqKey(seq)
		sizes[i] = int64(len(p.Get(k)))
		if err := p.Delete(k); err != nil {
			return nil, err
		}
		if err := s.Delete(k); err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// finishDeletes accounts for deletes once their transaction committed:
// the events leave the pending counts and the schedule.
func (o *Outbox) finishDeletes(dones []uint64, sizes []int64) {
	if len(dones) == 0 {
		return
	}
	o.mu.Lock()
	for i, seq := range dones {
		if sizes[i] > 0 {
			o.pendingN--
			o.pendingBytes -= sizes[i]
		}
		o.sched.finish(seq, false, time.Time{})
	}
	o.mu.Unlock()
	o.delMu.Lock()
	o.delDone += uint64(len(dones))
	o.delMu.Unlock()
	o.delCond.Broadcast()
}

// queueDeletes hands delivered events to the applier, which deletes them
// with its next transaction; until then they stay claimed.
func (o *Outbox) queueDeletes(seqs []uint64) {
	o.delMu.Lock()
	o.delQueued += uint64(len(seqs))
	o.delMu.Unlock()
	o.applyMu.Lock()
	o.doneQ = append(o.doneQ, seqs...)
	o.applyMu.Unlock()
	select {
	case o.applyWake <- struct{}{}:
	default:
	}
}

// applied makes stored entries deliverable, keeping appended events in
// fresh for their first attempt while it has room.
func (o *Outbox) applied(entries []*journalEntry, pruned int) {
	o.remembered.Add(int64(len(entries) - pruned))
	o.mu.Lock()
	for _, e := range entries {
		if e.early {
			continue // deliverable since handoff
		}
		o.sched.add(e.seq, time.Time{})
		if e.ev.ID != "" && len(o.fresh) < maxFresh {
			o.fresh[e.seq] = e
		}
	}
	o.mu.Unlock()
	o.signal()
}

// maxFresh bounds Outbox.fresh: enough for the events between their store
// and their first attempt under load (a dispatcher claims at most
// concurrency × batch at a time); beyond it, and for every retry, the
// dispatcher reads the store. About 1 KiB an event.
const maxFresh = 8192

// freshEvent is an appended event kept for its first delivery attempt.
type freshEvent struct {
	ev         Event
	acceptedAt time.Time
}

// freshCopy returns ev as decodeRecord would read it back from rec: the
// body within rec (the caller may reuse its buffer) and the times as
// stored (UTC, no monotonic reading).
func freshCopy(ev Event, rec []byte) Event {
	if len(ev.Body) > 0 {
		ev.Body = rec[len(rec)-len(ev.Body) : len(rec) : len(rec)]
	}
	ev.ReceivedAt = fromUnixNano(unixNano(ev.ReceivedAt))
	return ev
}

// takeFresh removes and returns seq's fresh event, if kept.
func (o *Outbox) takeFresh(seq uint64) (freshEvent, bool) {
	o.mu.Lock()
	e, ok := o.fresh[seq]
	if ok {
		delete(o.fresh, seq)
	}
	o.mu.Unlock()
	if !ok {
		return freshEvent{}, false
	}
	return freshEvent{ev: e.ev, acceptedAt: fromUnixNano(unixNano(e.at))}, true
}

// waitApplied waits until everything acknowledged so far is in the store
// and every delete queued so far is done (not when the applier is failing
// or the outbox closing), so that reads (List, Stats, AcceptedSince, ...)
// see every appended event and no delivered one.
func (o *Outbox) waitApplied() {
	if o.jr == nil || o.delCond == nil {
		return
	}
	o.jr.WaitApplied(o.jr.Written(), o.applyFailing)
	o.delMu.Lock()
	defer o.delMu.Unlock()
	for o.delDone < o.delQueued && !o.closed.Load() && !o.applyFailing() {
		o.delCond.Wait()
	}
}
