package tlsconf

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/imedge/imedge/certs"
)

// allowList is a parsed Options.AllowedClients. The zero value (all maps
// nil) accepts everyone. Immutable once built.
type allowList struct {
	n    int
	cn   map[string]struct{}
	dns  map[string]struct{} // lowercased
	uri  map[string]struct{}
	spki map[string]struct{} // lowercase hex
}

// parseAllowList parses entries; a bad entry is an error naming it and
// wrapping ErrBadAllowEntry.
func parseAllowList(entries []string) (allowList, error) {
	var a allowList
	add := func(m *map[string]struct{}, v string) {
		if *m == nil {
			*m = make(map[string]struct{})
		}
		(*m)[v] = struct{}{}
	}
	for _, e := range entries {
		kind, val, ok := strings.Cut(e, ":")
		if !ok || val == "" {
			return allowList{}, fmt.Errorf("parsing allowed client %q: %w (want cn:, dns:, uri: or spki: followed by a value)", e, ErrBadAllowEntry)
		}
		switch strings.ToLower(kind) {
		case "cn":
			add(&a.cn, val)
		case "dns":
			add(&a.dns, strings.ToLower(strings.TrimSuffix(val, ".")))
		case "uri":
			u, err := url.Parse(val)
			if err != nil || u.Scheme == "" {
				return allowList{}, fmt.Errorf("parsing allowed client %q: %w (not an absolute URI)", e, ErrBadAllowEntry)
			}
			add(&a.uri, val)
		case "spki":
			h := strings.ToLower(val)
			if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
				return allowList{}, fmt.Errorf("parsing allowed client %q: %w (want 64 hex digits of a SHA-256)", e, ErrBadAllowEntry)
			}
			add(&a.spki, h)
		default:
			return allowList{}, fmt.Errorf("parsing allowed client %q: %w (unknown kind %q; want cn, dns, uri or spki)", e, ErrBadAllowEntry, kind)
		}
		a.n++
	}
	return a, nil
}

// empty reports whether the list accepts every certificate.
func (a allowList) empty() bool { return a.n == 0 }

// allows reports whether leaf matches at least one entry.
func (a allowList) allows(leaf *x509.Certificate) bool {
	if a.empty() {
		return true
	}
	if _, ok := a.cn[leaf.Subject.CommonName]; ok && leaf.Subject.CommonName != "" {
		return true
	}
	for _, d := range leaf.DNSNames {
		if _, ok := a.dns[strings.ToLower(strings.TrimSuffix(d, "."))]; ok {
			return true
		}
	}
	for _, u := range leaf.URIs {
		if _, ok := a.uri[u.String()]; ok {
			return true
		}
	}
	if len(a.spki) > 0 {
		if _, ok := a.spki[certs.Fingerprint(leaf)]; ok {
			return true
		}
	}
	return false
}

// allowFileEntries returns the entries of an allow-list file: one per line,
// surrounding space trimmed, blank lines and # comments skipped.
func allowFileEntries(data []byte) []string {
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out
}
