package certs_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/certs/certstest"
)

// ClientTLS makes a configuration that completes a real mutual-TLS
// handshake with a server of the bundle's CA, and names the file that
// failed otherwise.
func TestClientTLS(t *testing.T) {
	ca := certstest.NewCA(t)
	cliFiles := ca.WriteFiles(t, ca.Issue(t, certstest.Client("spiffe://imedge/test")))

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String())
	}))
	srv.TLS = certstest.MutualServerTLS(t, ca, "127.0.0.1")
	srv.StartTLS()
	defer srv.Close()

	conf, err := certs.ClientTLS("forward", cliFiles.CA, cliFiles.Cert, cliFiles.Key)
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS12), conf.MinVersion)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}}
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "spiffe://imedge/test", string(b), "the server saw the client certificate")

	missing := filepath.Join(t.TempDir(), "missing.pem")
	_, err = certs.ClientTLS("forward", missing, "", "")
	assert.ErrorContains(t, err, "loading the forward CA bundle")
	assert.ErrorContains(t, err, missing)
	_, err = certs.ClientTLS("forward", "", cliFiles.Cert, missing)
	assert.ErrorContains(t, err, "loading the forward client certificate")
	assert.ErrorContains(t, err, missing)
}
