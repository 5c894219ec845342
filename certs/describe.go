package certs

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Info is a readable summary of a certificate, for `imedge certs inspect`
// and the status output.
type Info struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	IsCA        bool      `json:"is_ca"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPs         []string  `json:"ip_addresses,omitempty"`
	URIs        []string  `json:"uris,omitempty"`
	ExtKeyUsage []string  `json:"ext_key_usage,omitempty"`
	SHA256      string    `json:"sha256"`
	SPKISHA256  string    `json:"spki_sha256"`
}

// Describe summarises c.
func Describe(c *x509.Certificate) Info {
	in := Info{
		Subject:    c.Subject.String(),
		Issuer:     c.Issuer.String(),
		Serial:     SerialHex(c),
		NotBefore:  c.NotBefore.UTC(),
		NotAfter:   c.NotAfter.UTC(),
		IsCA:       c.IsCA,
		DNSNames:   c.DNSNames,
		SHA256:     CertFingerprint(c),
		SPKISHA256: Fingerprint(c),
	}
	for _, ip := range c.IPAddresses {
		in.IPs = append(in.IPs, ip.String())
	}
	for _, u := range c.URIs {
		in.URIs = append(in.URIs, u.String())
	}
	for _, u := range c.ExtKeyUsage {
		in.ExtKeyUsage = append(in.ExtKeyUsage, ekuName(u))
	}
	return in
}

// SerialHex returns the serial number as lowercase hex.
func SerialHex(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// String renders the summary as aligned "key: value" lines.
func (in Info) String() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-14s %s\n", k+":", v) }
	line("subject", in.Subject)
	line("issuer", in.Issuer)
	line("serial", in.Serial)
	line("not before", in.NotBefore.Format(time.RFC3339))
	line("not after", in.NotAfter.Format(time.RFC3339))
	line("is CA", fmt.Sprint(in.IsCA))
	if len(in.DNSNames) > 0 {
		line("DNS SANs", strings.Join(in.DNSNames, ", "))
	}
	if len(in.IPs) > 0 {
		line("IP SANs", strings.Join(in.IPs, ", "))
	}
	if len(in.URIs) > 0 {
		line("URI SANs", strings.Join(in.URIs, ", "))
	}
	if len(in.ExtKeyUsage) > 0 {
		line("EKU", strings.Join(in.ExtKeyUsage, ", "))
	}
	line("sha256", in.SHA256)
	line("spki sha256", in.SPKISHA256)
	return b.String()
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth"
	case x509.ExtKeyUsageCodeSigning:
		return "codeSigning"
	case x509.ExtKeyUsageEmailProtection:
		return "emailProtection"
	case x509.ExtKeyUsageTimeStamping:
		return "timeStamping"
	case x509.ExtKeyUsageOCSPSigning:
		return "OCSPSigning"
	}
	return fmt.Sprintf("eku(%d)", int(u))
}
