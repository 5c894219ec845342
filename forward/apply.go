package forward

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// applyRetry is how long the applier waits after a failed transaction.
const applyRetry = time.Second

// recoverJournal copies into the store every journal record newer than the
// store's journal-applied mark (events acknowledged before a crash that
// the applier had not copied yet), then opens the journal for writing from
// its start and sets the next sequence number above everything stored.
func (o *Outbox) recoverJournal(path string) error {
	var applied, seqMax uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyJournalApplied); v != nil {
			applied = keySeq(v)
		}
		p := tx.Bucket(bucketPending)
		seqMax = max(applied, p.Sequence())
		if k, _ := p.Cursor().Last(); k != nil {
			seqMax = max(seqMax, keySeq(k))
		}
		if k, _ := tx.Bucket(bucketDead).Cursor().Last(); k != nil {
			seqMax = max(seqMax, keySeq(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	var found []*journalEntry
	err = scanJournal(path, o.journalSize, func(seq uint64, rec []byte) error {
		if seq <= applied {
			return nil
		}
		ev, at, _, err := decodeRecord(rec, false)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", seq, err)
		}
		found = append(found, &journalEntry{seq: seq, at: at, id: ev.ID, rec: rec})
		return nil
	})
	if err != nil {
		return err
	}
	if len(found) > 0 {
		if err := o.db.Update(func(tx *bolt.Tx) error { return o.putEntries(tx, found) }); err != nil {
			return fmt.Errorf("applying %d journal records: %w", len(found), err)
		}
		seqMax = max(seqMax, found[len(found)-1].seq)
		o.log.Info("outbox journal recovered", "events", len(found))
	}
	j, err := openJournal(path, o.journalSize)
	if err != nil {
		return err
	}
	if err := j.reset(); err != nil {
		_ = j.f.Close()
		return err
	}
	j.written, j.applied = seqMax, seqMax
	o.jr = j
	o.nextSeq = seqMax
	o.jgroup = newGroupCommit(o.commitJournal)
	return nil
}

// putEntries stores entries as pending, remembers their ids and moves the
// journal-applied mark to the last of them (entries are in sequence order).
func (o *Outbox) putEntries(tx *bolt.Tx, entries []*journalEntry) error {
	p, a := tx.Bucket(bucketPending), tx.Bucket(bucketAccepted)
	for _, e := range entries {
		if err := p.Put(seqKey(e.seq), e.rec); err != nil {
			return err
		}
		if err := a.Put(acceptedKey(e.at, e.seq), encodeID(e.id)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyJournalApplied, seqKey(entries[len(entries)-1].seq))
}

// commitJournal is the journal group's commit: it writes the group to the
// journal (one write and one fdatasync) and queues it for the applier.
// A record too large for the journal is stored in bbolt directly, in
// order, once everything before it is applied.
func (o *Outbox) commitJournal(group []*groupCall[*journalEntry]) {
	entries := make([]*journalEntry, 0, len(group))
	for _, c := range group {
		entries = append(entries, c.req)
	}
	var err error
	for len(entries) > 0 && err == nil {
		n := 0
		for n < len(entries) && int64(len(entries[n].rec)) <= o.journalSize/4 {
			n++
		}
		err = o.jr.writeGroup(entries[:n], &o.nextSeq, o.handoff)
		if err == nil && n < len(entries) {
			o.storeDirect(entries[n])
			n++
		}
		entries = entries[n:]
	}
	for _, c := range group {
		c.err = err
	}
}

// storeDirect writes one oversized entry straight to the store.
func (o *Outbox) storeDirect(e *journalEntry) {
	o.nextSeq++
	e.seq = o.nextSeq
	var pruned int
	e.err = o.update(func(tx *bolt.Tx) error {
		p, a := tx.Bucket(bucketPending), tx.Bucket(bucketAccepted)
		if err := p.Put(seqKey(e.seq), e.rec); err != nil {
			return err
		}
		if err := a.Put(acceptedKey(e.at, e.seq), encodeID(e.id)); err != nil {
			return err
		}
		n, err := o.pruneAccepted(a, e.at, 1)
		pruned = n
		return err
	})
	if e.err == nil {
		o.applied([]*journalEntry{e}, pruned)
	}
}

// handoff queues synced journal entries for the applier.
func (o *Outbox) handoff(entries []*journalEntry) {
	o.applyMu.Lock()
	o.applyQ = append(o.applyQ, entries...)
	o.applyMu.Unlock()
	select {
	case o.applyWake <- struct{}{}:
	default:
	}
}

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
		_ = o.jr.close()
	}
}

// applyLoop copies journal entries into the store, as many per
// transaction as are queued. On failure the entries stay queued (and in
// the journal) and it tries again after applyRetry; when stopped while
// failing it leaves them to the next open's recovery.
func (o *Outbox) applyLoop() {
	defer close(o.applyDone)
	for {
		o.applyMu.Lock()
		batch := o.applyQ
		o.applyQ = nil
		o.applyMu.Unlock()
		if len(batch) == 0 {
			select {
			case <-o.applyWake:
				continue
			case <-o.applyStop:
				o.applyMu.Lock()
				n := len(o.applyQ)
				o.applyMu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		err := o.applyEntries(batch)
		o.applyMu.Lock()
		o.applyErr = err
		if err != nil {
			o.applyQ = append(batch, o.applyQ...)
		}
		o.applyMu.Unlock()
		if err == nil {
			continue
		}
		o.jr.cond.Broadcast() // waitApplied gives up while the applier fails
		o.log.Error("copying journaled events into the outbox store failed; new callbacks are refused until it works",
			"events", len(batch), "err", err)
		select {
		case <-time.After(applyRetry):
		case <-o.applyStop:
			return
		}
	}
}

// applyEntries stores batch in one transaction and makes it deliverable.
func (o *Outbox) applyEntries(batch []*journalEntry) error {
	var pruned int
	err := o.update(func(tx *bolt.Tx) error {
		if err := o.putEntries(tx, batch); err != nil {
			return err
		}
		n, err := o.pruneAccepted(tx.Bucket(bucketAccepted), batch[len(batch)-1].at, len(batch))
		pruned = n
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return err
	}
	o.applied(batch, pruned)
	o.jr.markApplied(batch[len(batch)-1].seq)
	return nil
}

// applied makes stored entries deliverable.
func (o *Outbox) applied(entries []*journalEntry, pruned int) {
	o.remembered.Add(int64(len(entries) - pruned))
	o.mu.Lock()
	for _, e := range entries {
		o.sched.add(e.seq, time.Time{})
	}
	o.mu.Unlock()
	o.signal()
}

// waitApplied waits until everything acknowledged so far is in the store
// (not when the applier is failing or the outbox closing), so that reads
// (List, Stats, AcceptedSince, ...) see every appended event.
func (o *Outbox) waitApplied() {
	j := o.jr
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	target := j.written
	for j.applied < target && !j.closed && o.applyFailure() == nil {
		j.cond.Wait()
	}
}
