package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// OutboxAPI configures the outbox operations of the admin listener
// ([Options].OutboxAPI), served under /outbox/ to authenticated clients
// only:
//
//	GET  /outbox/stats             counts, in total and per destination ([OutboxStats])
//	GET  /outbox/events            a page of events ([EventPage]); query: state, command,
//	                               destination, since, until (RFC 3339), after, limit
//	GET  /outbox/events/{ref}      one event with body and attempt history ([Event])
//	POST /outbox/replay-dead       body: a [Selection]; answer: an [ActionResult]
//	POST /outbox/replay-delivered  likewise
//	POST /outbox/retry             likewise
//	POST /outbox/purge-dead        likewise
//
// A client is authenticated by its verified certificate when the listener
// uses mutual TLS, or, on a plain-HTTP listener and from a loopback address
// only, by "Authorization: Bearer" with Credential. Anything else is
// refused (401, or 403 for a plain-HTTP peer off loopback) before the
// request is looked at, and only logged. Every authenticated POST is
// written to Audit with the client's identity, whatever its outcome.
// Errors are JSON {"error": "..."}: 400 for a bad request (unknown
// parameter, bad filter, empty selection), 404 for refs that match
// nothing, 409 when a destination's share of the outbox is full, 503
// while the outbox closes.
type OutboxAPI struct {
	// Outbox is the server's outbox. Required.
	Outbox OutboxOps
	// Audit receives one record per authenticated mutating call. Required.
	Audit ActionAudit
	// Credential is the local credential plain-HTTP clients on loopback
	// must present; empty refuses them all (a mutual-TLS listener needs
	// none).
	Credential string
}

// ActionAudit records the outbox operations' changes. *audit.Logger
// implements it.
type ActionAudit interface {
	Admin(audit.AdminAction)
}

// maxActionBody bounds an action's request body: MaxRefs refs of 128
// bytes fit with room to spare.
const maxActionBody = 256 << 10

// caller is an authenticated admin client.
type caller struct {
	identity, auth, subject, certSHA256, remote string
}

// outboxHandler serves the outbox operations.
type outboxHandler struct {
	api  *OutboxAPI
	ops  Local
	log  *slog.Logger
	cred [sha256.Size]byte // SHA-256 of api.Credential, compared in constant time
}

// outboxRoutes mounts the outbox operations when they are configured.
func (s *Server) outboxRoutes(mux *http.ServeMux) {
	api := s.o.OutboxAPI
	if api == nil {
		return
	}
	h := &outboxHandler{api: api, ops: Local{Outbox: api.Outbox}, log: s.o.Logger, cred: sha256.Sum256([]byte(api.Credential))}
	mux.Handle("GET /outbox/stats", h.authed(h.stats))
	mux.Handle("GET /outbox/events", h.authed(h.list))
	mux.Handle("GET /outbox/events/{ref}", h.authed(h.show))
	for _, a := range Actions() {
		mux.Handle("POST /outbox/"+string(a), h.authed(h.act(a)))
	}
	mux.Handle("/outbox/", h.authed(func(w http.ResponseWriter, r *http.Request, _ *caller) {
		writeJSON(w, http.StatusNotFound, errorReply{Error: fmt.Sprintf("no outbox operation %s %s", r.Method, r.URL.Path)})
	}))
}

func (o *OutboxAPI) check() error {
	if o.Outbox == nil || o.Audit == nil {
		return fmt.Errorf("%w: OutboxAPI needs Outbox and Audit", ErrInvalidOptions)
	}
	return nil
}

// authed runs next for authenticated clients only.
func (h *outboxHandler) authed(next func(http.ResponseWriter, *http.Request, *caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, code, why := h.authenticate(r)
		if c == nil {
			h.log.Warn("admin: outbox request refused", "remote_addr", r.RemoteAddr, "method", r.Method,
				"path", clipText(r.URL.Path), "status", code, "reason", why)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="imedge admin"`)
			}
			writeJSON(w, code, errorReply{Error: why})
			return
		}
		next(w, r, c)
	})
}

// authenticate names the client of r, or says why it is refused.
func (h *outboxHandler) authenticate(r *http.Request) (*caller, int, string) {
	if r.TLS != nil {
		if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return nil, http.StatusForbidden, "a verified client certificate is required"
		}
		leaf := r.TLS.VerifiedChains[0][0]
		return &caller{identity: receiver.IdentityOf(leaf), auth: "mtls", subject: leaf.Subject.String(),
			certSHA256: certs.CertFingerprint(leaf), remote: r.RemoteAddr}, 0, ""
	}
	if !loopbackPeer(r.RemoteAddr) {
		return nil, http.StatusForbidden, "plain HTTP is accepted from a loopback address only"
	}
	if h.api.Credential == "" {
		return nil, http.StatusUnauthorized, "this admin listener accepts no local credential"
	}
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return nil, http.StatusUnauthorized, "authentication required: Authorization: Bearer with the local credential (STATE-DIR/admin.credential)"
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], h.cred[:]) != 1 {
		return nil, http.StatusUnauthorized, "wrong credential (imedge writes a new one at each start)"
	}
	return &caller{identity: "local credential", auth: "credential", remote: r.RemoteAddr}, 0, ""
}

// bearer returns the token of an "Authorization: Bearer TOKEN" value.
func bearer(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// loopbackPeer reports whether a request's remote address is a loopback
// address.
func loopbackPeer(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

func (h *outboxHandler) stats(w http.ResponseWriter, r *http.Request, _ *caller) {
	st, err := h.ops.OutboxStats(r.Context())
	if err != nil {
		writeError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *outboxHandler) list(w http.ResponseWriter, r *http.Request, _ *caller) {
	q, err := parseListQuery(r.URL.Query())
	if err == nil {
		var p EventPage
		if p, err = h.ops.ListEvents(r.Context(), q); err == nil {
			writeJSON(w, http.StatusOK, p)
			return
		}
	}
	writeError(w, err, nil)
}

func (h *outboxHandler) show(w http.ResponseWriter, r *http.Request, _ *caller) {
	ev, err := h.ops.ShowEvent(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeError(w, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

// act serves one action and audits it, whatever its outcome.
func (h *outboxHandler) act(a Action) func(http.ResponseWriter, *http.Request, *caller) {
	return func(w http.ResponseWriter, r *http.Request, c *caller) {
		var sel Selection
		res := ActionResult{Action: a}
		err := decodeSelection(w, r, &sel)
		if err == nil {
			res, err = h.ops.Act(r.Context(), a, sel)
		}
		status := http.StatusOK
		if err != nil {
			status = statusOf(err)
		}
		rec := audit.AdminAction{
			Action: "outbox." + string(a), Identity: c.identity, Auth: c.auth, CertSubject: c.subject, CertSHA256: c.certSHA256,
			RemoteAddr: c.remote, Filter: sel.auditFilter(), Refs: sel.Refs, Count: res.Count, Status: status,
		}
		switch {
		case err != nil:
			rec.Error = err.Error()
		case len(res.NotFound)+len(res.Skipped) > 0:
			rec.Error = fmt.Sprintf("%d ref(s) not found, %d event(s) skipped", len(res.NotFound), len(res.Skipped))
		}
		h.api.Audit.Admin(rec)
		h.log.Info("admin: outbox "+string(a), "identity", c.identity, "auth", c.auth, "remote_addr", c.remote,
			"count", res.Count, "not_found", len(res.NotFound), "skipped", len(res.Skipped), "status", status)
		if err != nil {
			writeError(w, err, &res)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// decodeSelection reads an action's body: one JSON Selection, no unknown
// member, at most maxActionBody bytes.
func decodeSelection(w http.ResponseWriter, r *http.Request, sel *Selection) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxActionBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(sel); err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return fmt.Errorf("%w: body over %d bytes", ErrBadRequest, maxActionBody)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body: give a JSON selection (refs, command, destination, since, until or all)", ErrBadRequest)
		}
		*sel = Selection{} // nothing of a half-read body is audited as the filter
		return fmt.Errorf("%w: body: %w", ErrBadRequest, err)
	}
	if dec.More() {
		*sel = Selection{}
		return fmt.Errorf("%w: body: one JSON object expected", ErrBadRequest)
	}
	return nil
}

// listParams are the query parameters of GET /outbox/events.
var listParams = []string{"state", "command", "destination", "since", "until", "after", "limit"}

// parseListQuery reads GET /outbox/events's query. Unknown or repeated
// parameters are refused, so a typo never widens a listing silently.
func parseListQuery(v url.Values) (ListQuery, error) {
	var q ListQuery
	bad := func(format string, a ...any) (ListQuery, error) {
		return ListQuery{}, fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, a...)...)
	}
	for k, vals := range v {
		known := false
		for _, p := range listParams {
			known = known || k == p
		}
		if !known {
			return bad("unknown parameter %q (known: %s)", clipText(k), strings.Join(listParams, ", "))
		}
		if len(vals) != 1 {
			return bad("parameter %q given %d times", k, len(vals))
		}
	}
	q.State = forward.State(v.Get("state"))
	q.Command, q.Destination = v.Get("command"), v.Get("destination")
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(t.name); s != "" {
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return bad("%s %q: want an RFC 3339 time", t.name, clipText(s))
			}
			*t.dst = at
		}
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad("after %q: want a sequence number", clipText(s))
		}
		q.After = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return bad("limit %q: want 1 to %d", clipText(s), MaxListLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// values is q as GET /outbox/events's query.
func (q *ListQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("state", string(q.State))
	set("command", q.Command)
	set("destination", q.Destination)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// errorReply is the body of an error answer; an action's adds its result.
type errorReply struct {
	Error string `json:"error"`
	*ActionResult
}

// statusOf is the HTTP status for an outbox operation's error.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, forward.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, forward.ErrFull):
		return http.StatusConflict
	case errors.Is(err, forward.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error, res *ActionResult) {
	writeJSON(w, statusOf(err), errorReply{Error: err.Error(), ActionResult: res})
}
