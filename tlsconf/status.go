package tlsconf

import (
	"crypto/x509"
	"time"

	"github.com/imedge/imedge/certs"
)

// Status is a snapshot of the material a Source serves and of its reload
// history, for the admin/status output and rotation scripts. It holds
// fingerprints and names only, never key material. The zero value means
// nothing was loaded.
type Status struct {
	ClientAuth      string       `json:"client_auth"`      // "require" or "none"
	ServerCert      CertStatus   `json:"server_cert"`      // the served leaf; zero while ACME has none yet
	ClientCAs       []CertStatus `json:"client_cas"`       // the bundle, in file order
	CRLs            []CRLStatus  `json:"crls"`             // in file order
	CRLFailClosed   bool         `json:"crl_fail_closed"`  // stale CRLs refuse clients
	AllowedClients  int          `json:"allowed_clients"`  // allow-list entries; 0 = any client of the bundle
	LoadedAt        time.Time    `json:"loaded_at"`        // when the current material was read
	LastReload      ReloadStatus `json:"last_reload"`      // zero until the first Reload
	ReloadSuccesses uint64       `json:"reload_successes"` // Reload calls that swapped material (New not counted)
	ReloadFailures  uint64       `json:"reload_failures"`  // Reload calls that kept the old material
	ACME            *ACMEStatus  `json:"acme,omitempty"`   // set when the server certificate comes from ACME
}

// CertStatus describes one certificate.
type CertStatus struct {
	Subject    string    `json:"subject"`     // distinguished name
	SHA256     string    `json:"sha256"`      // SHA-256 of the DER certificate, hex
	SPKISHA256 string    `json:"spki_sha256"` // SHA-256 of the SubjectPublicKeyInfo, hex
	NotAfter   time.Time `json:"not_after"`   // UTC
}

// CRLStatus describes one loaded CRL.
type CRLStatus struct {
	File       string    `json:"file"`             // path it was read from
	Issuer     string    `json:"issuer"`           // subject of the bundle CA that signed it
	ThisUpdate time.Time `json:"this_update"`      // UTC
	NextUpdate time.Time `json:"next_update"`      // UTC; zero when the CRL has none
	Number     string    `json:"number,omitempty"` // CRL number, decimal
	Revoked    int       `json:"revoked"`          // entries listed
	Stale      bool      `json:"stale"`            // past NextUpdate now
}

// ReloadStatus is the outcome of the last Reload.
type ReloadStatus struct {
	At    time.Time `json:"at"`              // when it finished
	OK    bool      `json:"ok"`              // the new material is served
	Error string    `json:"error,omitempty"` // why not, naming the file; empty when OK
}

func certStatus(c *x509.Certificate) CertStatus {
	return CertStatus{
		Subject:    c.Subject.String(),
		SHA256:     certs.CertFingerprint(c),
		SPKISHA256: certs.Fingerprint(c),
		NotAfter:   c.NotAfter.UTC(),
	}
}

// Status returns a snapshot of the current material and reload counters.
// Safe for concurrent use; it does not wait for a Reload in progress.
func (s *Source) Status() Status {
	st := s.cur.Load()
	now := s.now()
	out := Status{
		ClientAuth:      st.mode.String(),
		ClientCAs:       make([]CertStatus, 0, len(st.cas)),
		CRLs:            make([]CRLStatus, 0, len(st.crlList)),
		CRLFailClosed:   st.failClosed,
		AllowedClients:  st.allow.n,
		LoadedAt:        st.loadedAt,
		ReloadSuccesses: s.okCount.Load(),
		ReloadFailures:  s.failCount.Load(),
	}
	leaf := st.leaf
	if s.acme != nil {
		out.ACME, leaf = s.acmeStatus()
	}
	if leaf != nil {
		out.ServerCert = certStatus(leaf)
	}
	for _, c := range st.cas {
		out.ClientCAs = append(out.ClientCAs, certStatus(c))
	}
	for _, e := range st.crlList {
		cs := CRLStatus{
			File:       e.file,
			Issuer:     e.issuer.Subject.String(),
			ThisUpdate: e.list.ThisUpdate.UTC(),
			NextUpdate: e.list.NextUpdate.UTC(),
			Revoked:    len(e.revoked),
			Stale:      e.stale(now),
		}
		if e.list.Number != nil {
			cs.Number = e.list.Number.String()
		}
		out.CRLs = append(out.CRLs, cs)
	}
	s.lastMu.Lock()
	out.LastReload = s.last
	s.lastMu.Unlock()
	return out
}
