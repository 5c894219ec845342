package certs_test

import (
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// verdicts maps each check's name to its outcomes, in order.
func verdicts(rs []certs.CheckResult) map[string][]bool {
	out := map[string][]bool{}
	for _, r := range rs {
		out[r.Name] = append(out[r.Name], r.OK)
	}
	return out
}

func TestCheck_StagedServerSet(t *testing.T) {
	ca := certstest.NewCA(t, certstest.ValidFor(400*24*time.Hour))
	good := ca.WriteFiles(t, ca.Issue(t, certstest.Server("im.example.com"), certstest.ValidFor(60*24*time.Hour)))
	other := ca.WriteFiles(t, ca.Issue(t, certstest.Server("other.example.com")))

	rs := certs.Check(certs.CheckOptions{CertFile: good.Cert, KeyFile: good.Key, Root: good.CA,
		Names: []string{"im.example.com"}, MinValidity: 30 * 24 * time.Hour})
	assert.Equal(t, map[string][]bool{"parse": {true}, "key": {true}, "validity": {true}, "chain": {true}, "name": {true}}, verdicts(rs))

	rs = certs.Check(certs.CheckOptions{CertFile: good.Cert, KeyFile: other.Key, Root: good.CA,
		Names: []string{"im.example.com", "nope.example.com"}, MinValidity: 90 * 24 * time.Hour, Client: true})
	assert.Equal(t, map[string][]bool{"parse": {true}, "key": {false}, "validity": {false}, "chain": {false}, "name": {true, false}}, verdicts(rs),
		"wrong key, too little validity left, no clientAuth, one name not covered")

	rs = certs.Check(certs.CheckOptions{CertFile: good.Cert, KeyFile: good.Key, Now: time.Now().AddDate(1, 0, 0)})
	assert.Equal(t, map[string][]bool{"parse": {true}, "key": {true}, "validity": {false}}, verdicts(rs), "expired a year from now")
	assert.Contains(t, rs[2].Detail, "expired at")

	rs = certs.Check(certs.CheckOptions{CertFile: filepath.Join(t.TempDir(), "missing.pem"), KeyFile: good.Key})
	require.Len(t, rs, 1)
	assert.False(t, rs[0].OK)
	assert.Contains(t, rs[0].Detail, "missing.pem")
}

func TestCheck_CRL(t *testing.T) {
	ca, rogue := certstest.NewCA(t), certstest.NewCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	ca.WriteCA(t, caFile)
	crlFile := filepath.Join(dir, "ca.crl")
	require.NoError(t, os.WriteFile(crlFile, ca.CRL(t, big.NewInt(5)), 0o644))
	rogueFile := filepath.Join(dir, "rogue.crl")
	require.NoError(t, os.WriteFile(rogueFile, rogue.CRL(t), 0o644))

	rs := certs.Check(certs.CheckOptions{CRLFile: crlFile, CRLIssuer: caFile})
	require.Len(t, rs, 1)
	assert.True(t, rs[0].OK, rs[0].Detail)
	assert.Contains(t, rs[0].Detail, "1 revoked")

	rs = certs.Check(certs.CheckOptions{CRLFile: rogueFile, CRLIssuer: caFile})
	require.Len(t, rs, 1)
	assert.False(t, rs[0].OK)
	assert.Contains(t, rs[0].Detail, "is not signed by any certificate in")

	rs = certs.Check(certs.CheckOptions{CRLFile: crlFile, CRLIssuer: caFile, Now: time.Now().AddDate(1, 0, 0)})
	require.Len(t, rs, 1)
	assert.False(t, rs[0].OK)
	assert.Contains(t, rs[0].Detail, "past its next update")
}

func TestSignCRL_KeepsEntriesAndNumbersAfterThePrevious(t *testing.T) {
	ca := certstest.NewCA(t)
	signer := &certs.CA{Cert: ca.Cert, Key: ca.Key}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r1, err := certs.SignCRL(signer, certs.CRLUpdate{Revoke: []*big.Int{big.NewInt(0x3a)}, Validity: 24 * time.Hour, Now: first})
	require.NoError(t, err)
	assert.Equal(t, int64(1), r1.Number.Int64())
	prev, err := certs.ParseCRLs(r1.PEM)
	require.NoError(t, err)
	require.NoError(t, prev[0].CheckSignatureFrom(ca.Cert))

	r2, err := certs.SignCRL(signer, certs.CRLUpdate{From: prev[0], Revoke: []*big.Int{big.NewInt(0x3a), big.NewInt(0x4b)},
		Validity: 48 * time.Hour, Now: first.Add(time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, int64(2), r2.Number.Int64())
	assert.Equal(t, []*big.Int{big.NewInt(0x3a)}, r2.AlreadyRevoked)
	assert.Equal(t, []*big.Int{big.NewInt(0x4b)}, r2.Added)
	next, err := certs.ParseCRLs(r2.PEM)
	require.NoError(t, err)
	require.Len(t, next[0].RevokedCertificateEntries, 2)
	assert.True(t, next[0].RevokedCertificateEntries[0].RevocationTime.Equal(first), "the first entry keeps its revocation time")
	assert.True(t, next[0].NextUpdate.Equal(first.Add(49*time.Hour)))

	_, err = certs.SignCRL(signer, certs.CRLUpdate{})
	assert.Error(t, err, "a CRL needs a validity")
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]int64{"3a9f": 0x3a9f, "0x3A9F": 0x3a9f, "3a:9f": 0x3a9f, " 01 ": 1} {
		n, err := certs.ParseSerial(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, n.Int64(), in)
	}
	for _, bad := range []string{"", "0x", "xyz", "-1"} {
		_, err := certs.ParseSerial(bad)
		assert.Error(t, err, bad)
	}
}
