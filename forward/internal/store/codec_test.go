package store

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// encodeRecordV1 writes r as format 1 did: no destination.
func encodeRecordV1(r Record) []byte {
	b := []byte{recordV1}
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.AcceptedAt)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(r.ReceivedAt)))
	for _, s := range []string{r.ID, r.AppID, r.Command, r.ClientIP, r.OptPlatform, r.Identity, r.CertSHA256, r.RequestID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	return append(b, r.Body...)
}

// encodeStateV1 writes st as format 1 did: no delivery time, no history.
func encodeStateV1(st State) []byte {
	b := []byte{stateV1}
	b = binary.AppendUvarint(b, uint64(st.Attempts))
	for _, t := range []time.Time{st.LastAttempt, st.NextAttempt, st.DeadAt} {
		b = binary.BigEndian.AppendUint64(b, uint64(unixNano(t)))
	}
	b = binary.AppendUvarint(b, uint64(len(st.LastError)))
	return append(b, st.LastError...)
}

func TestRecord_RoundTripBothVersions(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	r := testRecord("Group.*", "rt", 1, at)
	r.Identity, r.CertSHA256 = "spiffe://tencent/im", "ab12"
	rec := EncodeRecord(&r)
	assert.Equal(t, r.Body, rec[len(rec)-len(r.Body):], "the body is the record's last bytes")
	got, size, err := DecodeRecord(rec, true)
	require.NoError(t, err)
	assert.Equal(t, len(r.Body), size)
	assert.Equal(t, r, got)
	dest, err := RecordDestination(rec)
	require.NoError(t, err)
	assert.Equal(t, "Group.*", dest)
	noBody, _, err := DecodeRecord(rec, false)
	require.NoError(t, err)
	assert.Nil(t, noBody.Body)

	v1 := encodeRecordV1(r)
	old, size, err := DecodeRecord(v1, true)
	require.NoError(t, err)
	assert.Equal(t, len(r.Body), size)
	assert.Equal(t, DefaultDestination, old.Destination, "format 1 records go to the default destination")
	old.Destination = r.Destination
	assert.Equal(t, r, old)
	dest, err = RecordDestination(v1)
	require.NoError(t, err)
	assert.Equal(t, DefaultDestination, dest)

	empty, _, err := DecodeRecord(EncodeRecord(&Record{}), true)
	require.NoError(t, err)
	assert.True(t, empty.ReceivedAt.IsZero())
	assert.Empty(t, empty.Body)

	for _, n := range []int{0, 1, 16, 17, 20, len(rec) - 1} {
		_, _, err := DecodeRecord(rec[:n], true)
		assert.ErrorIs(t, err, ErrCorrupt, "truncated to %d", n)
	}
	newer := append([]byte{3}, rec[1:]...)
	_, _, err = DecodeRecord(newer, true)
	assert.ErrorIs(t, err, ErrNewerFormat)
	_, _, err = DecodeRecord(append([]byte{0}, rec[1:]...), true)
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestState_RoundTripWithHistory(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	st := State{Attempts: 12, LastAttempt: at, NextAttempt: at.Add(time.Second), DeadAt: at.Add(2 * time.Second),
		DeliveredAt: at.Add(3 * time.Second), LastError: strings.Repeat("e", 600)}
	for i := range 12 {
		st.AddAttempt(Attempt{At: at.Add(time.Duration(i) * time.Minute), Duration: time.Duration(i) * time.Millisecond,
			Status: 500 + i%4, Error: "HTTP 503 Service Unavailable" + strings.Repeat("!", 300*(i%2))})
	}
	require.Len(t, st.History, HistoryLen, "the last ten are kept")
	assert.True(t, st.History[0].At.Equal(at.Add(2*time.Minute)), "the oldest two were dropped")
	got, err := DecodeState(EncodeState(st))
	require.NoError(t, err)
	assert.Equal(t, 12, got.Attempts)
	assert.True(t, got.DeliveredAt.Equal(st.DeliveredAt))
	assert.Len(t, got.LastError, maxLastError)
	require.Len(t, got.History, HistoryLen)
	for i, a := range got.History {
		want := st.History[i]
		assert.True(t, a.At.Equal(want.At))
		assert.Equal(t, want.Duration, a.Duration)
		assert.Equal(t, want.Status, a.Status)
		assert.Equal(t, want.Error, a.Error)
		assert.LessOrEqual(t, len(a.Error), maxAttemptError)
	}

	old, err := DecodeState(encodeStateV1(State{Attempts: 2, LastAttempt: at, NextAttempt: at.Add(time.Minute), LastError: "HTTP 503"}))
	require.NoError(t, err)
	assert.Equal(t, 2, old.Attempts)
	assert.True(t, old.NextAttempt.Equal(at.Add(time.Minute)))
	assert.Equal(t, "HTTP 503", old.LastError)
	assert.Empty(t, old.History)

	enc := EncodeState(st)
	for _, n := range []int{0, 1, 5, 30, len(enc) - 1} {
		_, err := DecodeState(enc[:n])
		assert.True(t, errors.Is(err, ErrCorrupt), "truncated to %d: %v", n, err)
	}
	_, err = DecodeState(append([]byte{9}, enc[1:]...))
	assert.ErrorIs(t, err, ErrNewerFormat)
}

func TestMatchCommand(t *testing.T) {
	for _, tc := range []struct {
		pattern, command string
		want             bool
	}{
		{"", "C2C.CallbackAfterSendMsg", true},
		{"*", "C2C.CallbackAfterSendMsg", true},
		{"C2C.*", "C2C.CallbackAfterSendMsg", true},
		{"C2C.*", "C2CX.CallbackAfterSendMsg", false},
		{"Group.*", "C2C.CallbackAfterSendMsg", false},
		{"C2C.CallbackAfterSendMsg", "C2C.CallbackAfterSendMsg", true},
		{"C2C.CallbackAfterSendMsg", "C2C.CallbackAfterMsgReport", false},
	} {
		assert.Equal(t, tc.want, MatchCommand(tc.pattern, tc.command), "%q %q", tc.pattern, tc.command)
	}
}
