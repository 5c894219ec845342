package receiver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/imedge/imedge/audit"
)

// The commands whose reply IM acts on (Before and Reply) are answered by
// the Decider, and never refused for anything but an authentication
// failure: a 429, 503 or 400 is a callback failure to IM, which then
// applies its console policy (by default, let the message through). So an
// authentic callback imedge refuses for any other reason is answered HTTP
// 200 with the fallback the operator chose for the command, and audited
// with the original reason (status 200, the detail naming the fallback).

// authFailure reports whether a refusal says the caller is not IM (no or
// invalid client certificate, bad, stale or missing Sign, wrong SdkAppid):
// those are refused as for every command, since an error reply to a forger
// costs nothing.
func authFailure(r audit.Reason) bool {
	switch r {
	case audit.NoIdentity, audit.BadAppID, audit.MissingSign, audit.BadSign, audit.StaleSign:
		return true
	}
	return false
}

// limiterFor returns the limiter of rq's command: DecideLimiter for a
// command the Decider answers, Limiter for the others.
func (h *Handler) limiterFor(rq *request) Limiter {
	if rq.decides != nil {
		return h.o.DecideLimiter
	}
	return h.o.Limiter
}

// fallback returns the body, status and audit detail of the answer to a
// refused Before or Reply callback: the Decider's fallback, HTTP 200. When
// the refusal came before the body was read, the body is read first (within
// MaxBody) so that a fallback that lists the request's targets or members
// can name them.
func (h *Handler) fallback(rq *request, reason audit.Reason, detail string) ([]byte, int, string) {
	d := rq.decision
	if d == nil {
		h.readForFallback(rq)
		fb := h.o.Decider.Fallback(rq.decides.Name, rq.body, reason)
		d = &fb
	}
	if d.Fallback != "" {
		detail += " (answered fallback " + d.Fallback + ")"
	}
	return d.Body, http.StatusOK, detail
}

// readForFallback reads the body of a request refused before readBody ran,
// when it fits in MaxBody; otherwise it leaves rq.body nil.
func (h *Handler) readForFallback(rq *request) {
	r := rq.unread
	rq.unread = nil
	if r == nil || rq.bodyRead || r.ContentLength > h.o.MaxBody {
		return
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, h.o.MaxBody+1))
	if err != nil || int64(len(buf)) > h.o.MaxBody {
		return
	}
	rq.body, rq.bodyRead = buf, true
}

// decide answers a validated Before or Reply callback with the Decider's
// decision, audits a fallback, and in observe mode hands the event to the
// Sink once IM has its answer.
func (h *Handler) decide(ctx context.Context, w http.ResponseWriter, rq *request, ev Event, rawQuery string) {
	ev.Query = signFree(rawQuery)
	d := h.o.Decider.Decide(ctx, ev)
	h.decided.Add(1)
	switch {
	case d.Reason != "":
		rq.decision = &d
		h.refuse(w, rq, d.Reason, http.StatusOK, d.Detail)
	case d.Fallback != "":
		rq.outcome = "observed"
		h.reply(w, rq, http.StatusOK, d.Body)
	default:
		rq.outcome = "decided"
		h.reply(w, rq, http.StatusOK, d.Body)
	}
	if !d.Observe {
		return
	}
	// IM has its answer before the event is stored: durability comes
	// after the reply on this path (im-callbacks.md §1.5).
	_ = http.NewResponseController(w).Flush()
	ev.Observe = true
	if err := h.o.Sink.Accept(ctx, ev); err != nil {
		h.observeFailed.Add(1)
		if h.observeWarns.allow(ev.Command, rq.start) {
			h.o.Logger.LogAttrs(ctx, slog.LevelWarn, "observed callback not stored; its answer stands",
				slog.String("request_id", rq.id), slog.String("command", ev.Command), slog.Any("err", err))
		}
		return
	}
	h.observed.Add(1)
}

// signFree returns the raw query without its Sign and RequestTime
// parameters (under any spelling the receiver accepts), for the decision
// service: the signature authenticates IM to imedge, not to the service.
func signFree(raw string) string {
	var b strings.Builder
	for raw != "" {
		var seg string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			seg, raw = raw[:i], raw[i+1:]
		} else {
			seg, raw = raw, ""
		}
		k, _, _ := strings.Cut(seg, "=")
		if seg == "" || !validEscapes(k) {
			continue
		}
		if id := knownParam(k); id == paramSign || id == paramRequestTime {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(seg)
	}
	return b.String()
}
