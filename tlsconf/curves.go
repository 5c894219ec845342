package tlsconf

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// curveByName maps a lower-case name without dashes to its key exchange.
func curveByName(name string) (tls.CurveID, bool) {
	switch name {
	case "x25519mlkem768":
		return tls.X25519MLKEM768, true
	case "secp256r1mlkem768":
		return tls.SecP256r1MLKEM768, true
	case "secp384r1mlkem1024":
		return tls.SecP384r1MLKEM1024, true
	case "x25519":
		return tls.X25519, true
	case "p256":
		return tls.CurveP256, true
	case "p384":
		return tls.CurveP384, true
	case "p521":
		return tls.CurveP521, true
	}
	return 0, false
}

// ParseCurves reads a comma-separated list of key exchanges, such as
// "X25519MLKEM768,X25519,P-256", case-insensitively. Go chooses among the
// listed ones by its own preference order, so the list's order does not
// matter. An empty string returns nil (Go's default set). An unknown name
// wraps [ErrBadCurve].
func ParseCurves(s string) ([]tls.CurveID, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []tls.CurveID
	for _, f := range strings.Split(s, ",") {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(f), "-", ""))
		id, ok := curveByName(name)
		if !ok {
			return nil, fmt.Errorf("%q (want X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519, P-256, P-384 or P-521): %w",
				strings.TrimSpace(f), ErrBadCurve)
		}
		out = append(out, id)
	}
	return out, nil
}

// FormatCurves writes ids as a comma-separated list that ParseCurves reads
// back; nil gives "".
func FormatCurves(ids []tls.CurveID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		switch id {
		case tls.CurveP256:
			names[i] = "P-256"
		case tls.CurveP384:
			names[i] = "P-384"
		case tls.CurveP521:
			names[i] = "P-521"
		default:
			names[i] = id.String()
		}
	}
	return strings.Join(names, ",")
}
