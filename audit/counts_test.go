package audit_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/imedge/imedge/audit"
)

func TestLogger_CountsEveryRecordBeforeSampling(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	l := audit.New(&buf, audit.Options{Interval: time.Minute, Burst: 2, Now: func() time.Time { return now }})
	for range 5 {
		l.Log(audit.Record{Reason: audit.TLSNoCert, RemoteAddr: "192.0.2.1:1000"})
	}
	l.Log(audit.Record{Reason: audit.BadSign, ClientIP: "10.0.0.1"})

	got := l.Counts()
	assert.Equal(t, map[audit.Reason]uint64{audit.TLSNoCert: 5, audit.BadSign: 1}, got,
		"suppressed records are counted too")
	written, suppressed := l.Stats()
	assert.Equal(t, uint64(3), written, "sampling still applies to the log")
	assert.Equal(t, uint64(3), suppressed)

	got[audit.TLSNoCert] = 99
	assert.Equal(t, uint64(5), l.Counts()[audit.TLSNoCert], "Counts returns a copy")
}

func TestLogger_CountsUnsampled(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf, audit.Options{})
	l.Log(audit.Record{Reason: audit.RateLimited})
	l.Log(audit.Record{Reason: audit.RateLimited})
	assert.Equal(t, map[audit.Reason]uint64{audit.RateLimited: 2}, l.Counts())
}

func TestNilLogger_Counts(t *testing.T) {
	var l *audit.Logger
	assert.Empty(t, l.Counts())
}
