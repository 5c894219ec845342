package audit

import (
	"log/slog"
	"slices"
	"time"
)

// Record is one audit entry. Zero fields are left out of the output.
type Record struct {
	Reason      Reason // required
	Status      int    // HTTP status answered; 0 for a refused handshake
	Detail      string // short fixed text written by imedge, never echoed input
	RemoteAddr  string // TCP peer, host:port
	ClientIP    string // the ClientIP query parameter as received (at most 64 bytes kept)
	SdkAppid    string // as received (at most 64 bytes kept)
	Command     string // CallbackCommand as received (at most 64 bytes kept)
	RequestID   string // imedge's id for the request, also sent as X-Request-Id
	IMRequestID string // IM's RequestId query parameter, when present (at most 64 bytes kept)
	CertSubject string // presented client certificate subject
	CertSerial  string // its serial, hex
	CertSHA256  string // SHA-256 of the DER certificate, hex
	BodySHA256  string // SHA-256 of the body bytes read, hex
	BodySize    int64  // bytes of body read; -1 when unknown
	TLSVersion  string // offered or negotiated TLS version, for handshake refusals
}

// maxField bounds attacker-controlled strings copied into a record.
const maxField = 64

func clip(s string) string {
	if len(s) > maxField {
		return s[:maxField] + "…"
	}
	return s
}

func (r Record) attrs(t time.Time) []slog.Attr {
	a := make([]slog.Attr, 0, 16)
	a = append(a, slog.String("reason", clip4(string(r.Reason))))
	if r.Status != 0 {
		a = append(a, slog.Int("status", r.Status))
	}
	str := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	str("detail", clip4(r.Detail))
	str("remote_addr", clip4(r.RemoteAddr))
	str("client_ip", clip(r.ClientIP))
	str("sdkappid", clip(r.SdkAppid))
	str("command", clip(r.Command))
	str("request_id", clip4(r.RequestID))
	str("im_request_id", clip(r.IMRequestID))
	str("cert_subject", clip4(r.CertSubject))
	str("cert_serial", clip4(r.CertSerial))
	str("cert_sha256", clip4(r.CertSHA256))
	str("body_sha256", clip4(r.BodySHA256))
	if r.BodySHA256 != "" || r.BodySize > 0 {
		a = append(a, slog.Int64("body_size", r.BodySize))
	}
	str("tls_version", clip4(r.TLSVersion))
	return a
}

// clip4 allows a longer subject (distinguished names run long) but still
// bounds it; it also bounds every field imedge fills itself, so no Record
// can make an unbounded line.
func clip4(s string) string {
	if len(s) > 4*maxField {
		return s[:4*maxField] + "…"
	}
	return s
}

// AdminAction is the audit entry of one operator action that changed
// something on a running imedge (a mutating call of the admin listener's
// outbox operations). It is written whole for every such call, never
// sampled, whatever its outcome; calls refused before authentication are
// not actions and have no AdminAction. Zero fields are left out of the
// output.
type AdminAction struct {
	Action string // what was asked, e.g. "outbox.replay-dead"; required
	// Identity is who asked: the client certificate's identity (first URI
	// SAN, else DNS SAN, else common name), or "local credential".
	Identity    string
	Auth        string // how Identity was established: "mtls" or "credential"
	CertSubject string // the client certificate's subject; mutual TLS only
	CertSHA256  string // SHA-256 of the client certificate (DER), hex; mutual TLS only
	RemoteAddr  string // TCP peer, host:port
	// Filter is the selection the action applied to (e.g. "command",
	// "destination", "since", "until", "all"), written as a JSON object.
	Filter map[string]string
	// Refs are the event ids or sequence numbers named; the first
	// [MaxAdminRefs] are written, with refs_total giving how many there
	// were.
	Refs   []string
	Count  int    // events the action changed
	Status int    // HTTP status answered
	Error  string // why it did less than asked (not found, full, invalid), imedge's own text
}

// MaxAdminRefs bounds the refs written in one AdminAction record.
const MaxAdminRefs = 20

func (a *AdminAction) attrs() []slog.Attr {
	out := make([]slog.Attr, 0, 12)
	str := func(k, v string) {
		if v != "" {
			out = append(out, slog.String(k, clip4(v)))
		}
	}
	str("action", a.Action)
	str("identity", a.Identity)
	str("auth", a.Auth)
	str("cert_subject", a.CertSubject)
	str("cert_sha256", a.CertSHA256)
	str("remote_addr", a.RemoteAddr)
	if len(a.Filter) > 0 {
		keys := make([]string, 0, len(a.Filter))
		for k := range a.Filter {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(keys) > maxField {
			keys = keys[:maxField]
		}
		g := make([]any, 0, len(keys))
		for _, k := range keys {
			g = append(g, slog.String(clip(k), clip4(a.Filter[k])))
		}
		out = append(out, slog.Group("filter", g...))
	}
	if len(a.Refs) > 0 {
		refs := make([]string, 0, min(len(a.Refs), MaxAdminRefs))
		for _, r := range a.Refs[:min(len(a.Refs), MaxAdminRefs)] {
			refs = append(refs, clip4(r))
		}
		out = append(out, slog.Any("refs", refs), slog.Int("refs_total", len(a.Refs)))
	}
	out = append(out, slog.Int("count", a.Count))
	if a.Status != 0 {
		out = append(out, slog.Int("status", a.Status))
	}
	str("error", a.Error)
	return out
}
