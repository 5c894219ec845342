package egress_test

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/egress"
)

// The appendix of im-webhooks.md: a public example key and the sig it
// gives. The compressed string depends on the zlib implementation, so the
// test compares the decoded fields and the sig.
const (
	vectorKey = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
	vectorSig = "yLAe+w7WUeUuqbV9h/TX78u21oTGi+i9Zp1u3PpnY60="
)

func TestUserSig_SpecVector(t *testing.T) {
	issued := time.Unix(1700000000, 0)
	s := egress.UserSig([]byte(vectorKey), 1400000000, "administrator", issued, 86400*time.Second)

	assert.NotContains(t, s, "+", "URL-safe alphabet")
	assert.NotContains(t, s, "/", "URL-safe alphabet")
	assert.NotContains(t, s, "=", "URL-safe alphabet")
	info, err := egress.ParseUserSig(s)
	require.NoError(t, err)
	assert.Equal(t, egress.UserSigInfo{
		Version: "2.0", Identifier: "administrator", AppID: 1400000000,
		Time: 1700000000, Expire: 86400, Sig: vectorSig,
	}, info)

	_, err = egress.VerifyUserSig(s, []byte(vectorKey), issued.Add(time.Hour))
	assert.NoError(t, err, "valid within its lifetime")
}

func TestVerifyUserSig_Refuses(t *testing.T) {
	issued := time.Unix(1700000000, 0)
	good := egress.UserSig([]byte(vectorKey), 1400000000, "administrator", issued, time.Hour)

	// A document with the right shape but a sig made with another key.
	forged := egress.UserSig([]byte("another key"), 1400000000, "administrator", issued, time.Hour)

	// A document that claims a longer lifetime than it was signed for.
	info, err := egress.ParseUserSig(good)
	require.NoError(t, err)
	stretched := encodeDoc(t, `{"TLS.ver":"2.0","TLS.identifier":"administrator","TLS.sdkappid":1400000000,"TLS.expire":999999,"TLS.time":1700000000,"TLS.sig":"`+info.Sig+`"}`)
	oldVersion := encodeDoc(t, `{"TLS.ver":"1.0","TLS.identifier":"administrator","TLS.sdkappid":1400000000,"TLS.expire":3600,"TLS.time":1700000000,"TLS.sig":"`+info.Sig+`"}`)

	for _, tc := range []struct {
		name string
		sig  string
		now  time.Time
	}{
		{"wrong key", forged, issued},
		{"expired", good, issued.Add(time.Hour + time.Second)},
		{"fields changed after signing", stretched, issued},
		{"other version", oldVersion, issued},
		{"not base64", "!!!", issued},
		{"not zlib", base64.StdEncoding.EncodeToString([]byte("plain text")), issued},
		{"not JSON", encodeDoc(t, "not json"), issued},
		{"too long", strings.Repeat("A", 5000), issued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := egress.VerifyUserSig(tc.sig, []byte(vectorKey), tc.now)
			assert.ErrorIs(t, err, egress.ErrBadUserSig)
		})
	}
	_, err = egress.VerifyUserSig(good, []byte(vectorKey), issued.Add(time.Hour))
	assert.NoError(t, err, "valid up to and including its last second")
}

// encodeDoc compresses doc and encodes it the way a UserSig is encoded.
func encodeDoc(t *testing.T, doc string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, err := zw.Write([]byte(doc))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(base64.StdEncoding.EncodeToString(buf.Bytes()))
}
