//go:build v1fixture

package forward

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// v1FixtureDir is the outbox directory TestWriteV1Fixture writes, in the
// format of this commit (record and state version 1, no format key).
const v1FixtureDir = "testdata/outbox-v1"

// v1FixtureEvent is one event of the fixture as its manifest lists it.
type v1FixtureEvent struct {
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	RequestID string `json:"request_id"`
	State     string `json:"state"` // pending, retrying, dead, journal
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// TestWriteV1Fixture writes an outbox directory as the code of this commit
// leaves it, for the format-upgrade test of later versions: three pending
// events, one with a failed attempt and its retry state, one dead letter
// with its error, and two events only in the journal (synced, not yet
// copied into the store, as after a crash). The journal is 8 KiB so the
// fixture stays small. It also writes the manifest the upgrade test checks
// against. Run it with
//
//	go test -tags v1fixture -run TestWriteV1Fixture ./forward/
func TestWriteV1Fixture(t *testing.T) {
	require.NoError(t, os.RemoveAll(v1FixtureDir))
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), step: time.Second}
	const jsize = 8 << 10
	ob, err := OpenOutbox(OutboxOptions{Dir: v1FixtureDir, journalSize: jsize, Now: clock.Now, RememberFor: 24 * time.Hour})
	require.NoError(t, err)

	var events []Event
	for i := range 5 {
		ev := testEvent("v1-fixture", i)
		require.NoError(t, ob.Append(t.Context(), ev))
		events = append(events, ev)
	}
	_, err = ob.Stats() // waits for the applier: all five are stored and schedulable
	require.NoError(t, err)

	// The oldest failed twice with a 503 and waits for its next attempt.
	retry, _, ok := ob.claim(clock.Now())
	require.True(t, ok)
	failedAt := clock.Now()
	retryState := deliveryState{Attempts: 2, LastAttempt: failedAt, NextAttempt: failedAt.Add(5 * time.Minute),
		LastError: "HTTP 503 Service Unavailable"}
	require.NoError(t, ob.reschedule(retry, retryState))

	// The next was refused with a 400 and dead-lettered.
	dead, _, ok := ob.claim(clock.Now())
	require.True(t, ok)
	deadAt := clock.Now()
	deadState := deliveryState{Attempts: 1, LastAttempt: deadAt, DeadAt: deadAt,
		LastError: "HTTP 400 Bad Request; permanent failure"}
	require.NoError(t, ob.bury(dead, deadState, deadAt.Add(time.Minute)))
	require.NoError(t, ob.Close())

	// Two more events reached the journal but not the store.
	j, err := openJournal(filepath.Join(v1FixtureDir, JournalFileName), jsize)
	require.NoError(t, err)
	var tail []*journalEntry
	for i := 5; i < 7; i++ {
		ev := testEvent("v1-fixture", i)
		at := clock.Now()
		tail = append(tail, &journalEntry{at: at, acc: newAcceptedID(at, ev.ID), rec: encodeRecord(ev, at)})
		events = append(events, ev)
	}
	next := uint64(5) // the store holds sequences 1 to 5
	require.NoError(t, j.writeGroup(tail, &next, func([]*journalEntry) {}))
	require.NoError(t, j.close())

	manifest := make([]v1FixtureEvent, len(events))
	for i, ev := range events {
		m := v1FixtureEvent{Seq: uint64(i + 1), ID: ev.ID, RequestID: ev.RequestID, State: "pending"}
		switch {
		case m.Seq == retry:
			m.State, m.Attempts, m.LastError = "retrying", retryState.Attempts, retryState.LastError
		case m.Seq == dead:
			m.State, m.Attempts, m.LastError = "dead", deadState.Attempts, deadState.LastError
		case i >= 5:
			m.State = "journal"
		}
		manifest[i] = m
	}
	b, err := json.MarshalIndent(manifest, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(v1FixtureDir+".json", append(b, '\n'), 0o600))
}
