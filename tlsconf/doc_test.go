package tlsconf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/tlsconf"
)

// Example serves HTTPS with mandatory client certificates and shows a
// client from the bundle getting through.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tlsconf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// A throwaway PKI: one CA issuing the server and the client certificate.
	ca, err := certs.NewCA(certs.Request{CommonName: "example CA"})
	if err != nil {
		panic(err)
	}
	server, err := ca.Issue(certs.Request{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: certs.UsageServer})
	if err != nil {
		panic(err)
	}
	client, err := ca.Issue(certs.Request{CommonName: "im-callback", Usage: certs.UsageClient})
	if err != nil {
		panic(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	caFile := filepath.Join(dir, "client-ca.pem")
	if err := certs.WriteIssued(server, certFile, keyFile); err != nil {
		panic(err)
	}
	if err := certs.WriteFileAtomic(caFile, certs.EncodeCertificatesPEM(ca.Cert), 0o644); err != nil {
		panic(err)
	}

	src, err := tlsconf.New(ctx, tlsconf.Options{
		CertFile:       certFile,
		KeyFile:        keyFile,
		ClientCAFile:   caFile,
		AllowedClients: []string{"cn:im-callback"},
		Audit:          audit.New(io.Discard, audit.Options{}),
	})
	if err != nil {
		panic(err)
	}
	defer src.Close()

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = src.ServerConfig()
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{client.Cert.Raw}, PrivateKey: client.Key}},
	}}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Status, string(body))
	fmt.Println("client auth:", src.Status().ClientAuth)
	// Output:
	// 200 OK hello im-callback
	// client auth: require
}
