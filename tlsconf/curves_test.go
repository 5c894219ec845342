package tlsconf

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs/certstest"
)

func TestParseCurves(t *testing.T) {
	got, err := ParseCurves(" X25519MLKEM768, x25519 ,P-256,p384,P521,SecP256r1MLKEM768,secp384r1mlkem1024")
	require.NoError(t, err)
	assert.Equal(t, []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521,
		tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024}, got)

	got, err = ParseCurves("  ")
	require.NoError(t, err)
	assert.Nil(t, got, "empty keeps Go's default")

	for _, bad := range []string{"X448", "X25519,", "P-256,ffdhe2048"} {
		_, err := ParseCurves(bad)
		assert.ErrorIs(t, err, ErrBadCurve, bad)
	}
}

// TestCurves_NegotiatedOverRealHandshake checks, with a Go client that
// offers Go's default key shares (X25519MLKEM768 and X25519), that the
// default server picks the post-quantum hybrid and a server limited to
// "X25519,P-256" picks X25519, over TLS 1.3 and 1.2.
func TestCurves_NegotiatedOverRealHandshake(t *testing.T) {
	clientCA := certstest.NewCA(t)
	cert := clientCA.Issue(t, certstest.Client("cn:im"))
	for _, tc := range []struct {
		name   string
		curves string
		max    uint16
		want   tls.CurveID
	}{
		{"default tls1.3", "", tls.VersionTLS13, tls.X25519MLKEM768},
		{"classic tls1.3", "X25519,P-256", tls.VersionTLS13, tls.X25519},
		{"classic tls1.2", "X25519,P-256", tls.VersionTLS12, tls.X25519},
		{"p256 only", "P-256", tls.VersionTLS13, tls.CurveP256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			curves, err := ParseCurves(tc.curves)
			require.NoError(t, err)
			e := newEnv(t, []*certstest.CA{clientCA}, func(_ string, o *Options) { o.Curves = curves })
			cfg := e.clientConfig(cert)
			cfg.MaxVersion = tc.max
			resp, err := e.client(cfg, false).Get(e.srv.URL)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.NotNil(t, resp.TLS)
			assert.Equal(t, tc.want, resp.TLS.CurveID)
		})
	}
}

func TestFormatCurves_RoundTripsThroughParseCurves(t *testing.T) {
	all := []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024, tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
	got, err := ParseCurves(FormatCurves(all))
	require.NoError(t, err)
	assert.Equal(t, all, got)
	assert.Equal(t, "X25519,P-256", FormatCurves([]tls.CurveID{tls.X25519, tls.CurveP256}))
	assert.Empty(t, FormatCurves(nil))
}
