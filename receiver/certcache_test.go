package receiver

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

func TestHandler_EventNamesTheCertificateOfEachRequest(t *testing.T) {
	f := newFixture(t, nil)
	ca := certstest.NewCA(t)
	other := ca.Issue(t, certstest.Client("spiffe://im.test/other")).Cert
	// A copy parsed separately, as a new connection presenting the same
	// certificate would carry it.
	again, err := x509.ParseCertificate(f.client.Raw)
	require.NoError(t, err)

	certsInTurn := []*x509.Certificate{f.client, other, again, other, f.client}
	for i, c := range certsInTurn {
		r := f.request(goodQuery, fmt.Sprintf(`{"CallbackCommand":"Sns.CallbackFriendDelete","PairList":[{"From_Account":"a%d","To_Account":"b"}]}`, i))
		r.TLS.PeerCertificates = []*x509.Certificate{c}
		require.Equal(t, http.StatusOK, f.serve(r).Code)
	}
	evs := f.sink.got()
	require.Len(t, evs, len(certsInTurn))
	for i, c := range certsInTurn {
		assert.Equal(t, IdentityOf(c), evs[i].Identity, "request %d", i)
		assert.Equal(t, certs.CertFingerprint(c), evs[i].CertSHA256, "request %d", i)
	}
	assert.Equal(t, "spiffe://im.test/other", evs[1].Identity)
}
