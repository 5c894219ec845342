package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// openTest opens a store in a fresh directory (or at path, when given)
// and closes it when the test ends.
func openTest(t *testing.T, path string, o Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "outbox.db")
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 200 * time.Millisecond
	}
	s, err := Open(path, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testRecord returns a distinct, realistic record for destination dest.
func testRecord(dest, tag string, i int, at time.Time) Record {
	body := fmt.Appendf(nil, `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#%s%d","From_Account":"user_%d"}`, tag, i, i)
	sum := sha256.Sum256(body)
	return Record{
		Destination: dest, ID: hex.EncodeToString(sum[:]), AppID: "1400000000", Command: "Group.CallbackAfterSendMsg",
		ClientIP: "203.0.113.7", OptPlatform: "Web", RequestID: fmt.Sprintf("req-%s-%d", tag, i),
		ReceivedAt: at.Add(-time.Millisecond), AcceptedAt: at, Body: body,
	}
}

// entry returns r as the applier hands it to Apply, with sequence seq.
func entry(seq uint64, r Record) *Entry {
	return &Entry{Seq: seq, Rec: EncodeRecord(&r), ID: NewAcceptedID(r.AcceptedAt, r.ID)}
}

// putRecords stores records as pending with sequences from first on, and
// returns them.
func putRecords(t *testing.T, s *Store, first uint64, recs ...Record) []Record {
	t.Helper()
	var es []*Entry
	for i, r := range recs {
		es = append(es, entry(first+uint64(i), r))
	}
	_, err := s.Apply(&Apply{Entries: es, Now: recs[len(recs)-1].AcceptedAt})
	require.NoError(t, err)
	return recs
}

// seqs returns the sequence numbers of items.
func seqs(items []Item) []uint64 {
	var out []uint64
	for _, it := range items {
		out = append(out, it.Seq)
	}
	return out
}
