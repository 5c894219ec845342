package receiver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/certs"
)

// Handler is the callback endpoint: an [http.Handler] that checks each
// request against IM's protocol and hands accepted events to the Sink. It is
// safe for concurrent use and holds no goroutines; it needs no Close.
type Handler struct {
	o Options

	okBody     []byte
	failBodies map[audit.Reason][]byte         // read-only after New
	rejected   map[audit.Reason]*atomic.Uint64 // read-only map after New

	cmds    map[string]*commandState // every catalog command; read-only after New
	generic *bodyRule                // for commands outside the catalog

	accepted      atomic.Uint64
	inProgress    atomic.Int64
	duplicates    atomic.Uint64
	empty         atomic.Uint64
	unknown       atomic.Uint64
	nonconforming atomic.Uint64
	decided       atomic.Uint64
	observed      atomic.Uint64
	observeFailed atomic.Uint64

	unknownWarns warnGate
	driftWarns   warnGate
	observeWarns warnGate

	idPrefix string
	idSeq    atomic.Uint64

	scanners sync.Pool // *scanner
	lastCert atomic.Pointer[certNames]
	jsonType []string // shared Content-Type value; len == cap so appends copy
}

// commandState is how the Handler treats one catalog command.
type commandState struct {
	cmd    *catalog.Command
	rule   *bodyRule
	served bool
	why    string // audit detail when not served
}

// Stats are the Handler's counters since New.
type Stats struct {
	Accepted      uint64                  // events the Sink accepted
	Duplicates    uint64                  // valid callbacks answered OK as duplicates, not forwarded
	Empty         uint64                  // valid callbacks with an empty PairList, answered OK, not forwarded
	Unknown       uint64                  // callbacks of commands outside the catalog taken for forwarding (UnknownForward)
	Nonconforming uint64                  // bodies that broke their catalog entry, taken for forwarding anyway (ValidateWarn)
	Decided       uint64                  // Before and Reply callbacks answered by the Decider
	Observed      uint64                  // of those, answered in observe mode and taken by the Sink afterwards
	ObserveFailed uint64                  // answered in observe mode and refused by the Sink (the answer stood)
	InProgress    int64                   // requests being read, checked or answered right now
	Rejected      map[audit.Reason]uint64 // refusals by reason; reasons never used are absent
}

// New checks o and returns a Handler. Errors wrap the sentinels of this
// package (ErrNoAppID, ErrBadAppID, ErrNoSink, ErrBadPath,
// ErrNegativeLimit, ErrBadMode) or catalog.ErrBadPattern.
func New(o Options) (*Handler, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("configuring receiver: %w", err)
	}
	var prefix [6]byte
	_, _ = rand.Read(prefix[:]) // never fails (crypto/rand documents so since Go 1.24)
	h := &Handler{
		o:          o,
		okBody:     []byte(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`),
		failBodies: make(map[audit.Reason][]byte),
		rejected:   make(map[audit.Reason]*atomic.Uint64),
		idPrefix:   hex.EncodeToString(prefix[:]) + "-",
		jsonType:   []string{"application/json"},
	}
	for _, r := range audit.Reasons() {
		h.failBodies[r] = []byte(`{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"` + string(r) + `"}`)
		h.rejected[r] = new(atomic.Uint64)
	}
	h.scanners.New = func() any { return new(scanner) }
	h.compileCommands()
	h.unknownWarns.interval, h.driftWarns.interval, h.observeWarns.interval = warnInterval, warnInterval, warnInterval
	return h, nil
}

// compileCommands decides which catalog commands are served and compiles
// their entries, and warns about patterns that name no catalog command.
func (h *Handler) compileCommands() {
	cmds := h.o.Catalog.Commands()
	h.cmds = make(map[string]*commandState, len(cmds))
	h.generic = genericRule()
	for i := range cmds {
		cmd, _ := h.o.Catalog.Lookup(cmds[i].Name)
		st := &commandState{cmd: cmd, rule: compileCommand(cmd, h.o.MaxAccountBytes)}
		switch {
		case len(h.o.Commands) > 0 && !matchAny(h.o.Commands, cmd.Name):
			st.why = "CallbackCommand not served (--commands)"
		case cmd.Kind.Decides() && h.o.Decider == nil:
			st.why = "CallbackCommand needs a decision path, none configured"
		case len(h.o.Commands) == 0 && !cmd.ServedByDefault() && h.o.Decider == nil:
			st.why = "CallbackCommand not served by default"
		default:
			st.served = true
		}
		h.cmds[cmd.Name] = st
	}
	for _, p := range h.o.Commands {
		if !h.matchesCatalog(p) {
			h.o.Logger.Warn("command pattern matches no catalog command", slog.String("pattern", p),
				slog.String("unknown_commands", string(h.o.UnknownCommands)))
		}
	}
}

func (h *Handler) matchesCatalog(pattern string) bool {
	for name := range h.cmds {
		if catalog.Match(pattern, name) {
			return true
		}
	}
	return false
}

// matchAny reports whether name matches one of patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if catalog.Match(p, name) {
			return true
		}
	}
	return false
}

// servesUnknown reports whether a command outside the catalog is taken.
func (h *Handler) servesUnknown(name string) bool {
	return commandName(name) && h.o.UnknownCommands == UnknownForward &&
		(len(h.o.Commands) == 0 || matchAny(h.o.Commands, name))
}

// maxCommandName bounds the name of a command outside the catalog; IM's
// longest today is 53 bytes.
const maxCommandName = 96

// commandName reports whether s is shaped like IM's command names, Family.Name
// with letters, digits and underscores: a command outside the catalog is
// forwarded (and travels on as an HTTP header and an outbox key), so its
// name must be plain text of bounded length.
func commandName(s string) bool {
	dot := strings.IndexByte(s, '.')
	if len(s) > maxCommandName || dot <= 0 || dot == len(s)-1 || strings.IndexByte(s[dot+1:], '.') >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (h *Handler) Stats() Stats {
	s := Stats{
		Accepted:      h.accepted.Load(),
		Duplicates:    h.duplicates.Load(),
		Empty:         h.empty.Load(),
		Unknown:       h.unknown.Load(),
		Nonconforming: h.nonconforming.Load(),
		Decided:       h.decided.Load(),
		Observed:      h.observed.Load(),
		ObserveFailed: h.observeFailed.Load(),
		InProgress:    h.inProgress.Load(),
		Rejected:      make(map[audit.Reason]uint64),
	}
	for r, c := range h.rejected {
		if n := c.Load(); n > 0 {
			s.Rejected[r] = n
		}
	}
	return s
}

// request is the state of one request, for the reply, the audit record and
// the access line.
type request struct {
	id     string
	start  time.Time
	remote string
	q      query
	cert   *x509.Certificate

	body     []byte
	bodyRead bool

	claimed string // de-duplication key held and not yet settled

	// A Before or Reply command the Decider answers: every refusal other
	// than an authentication failure is answered with its fallback.
	decides  *catalog.Command
	unread   *http.Request // its request while the body is not yet read, for the fallback
	decision *Decision     // the Decider's fallback, when Decide gave one

	replied bool
	status  int
	reason  audit.Reason
	outcome string // for the access line: accepted, duplicate, empty, decided, observed, fallback or refused
}

// ServeHTTP answers one callback. See the package documentation for the
// order of the checks.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := request{id: h.nextRequestID(), start: h.o.Now(), remote: r.RemoteAddr}
	w.Header()["X-Request-Id"] = []string{rq.id}
	h.inProgress.Add(1)
	defer h.inProgress.Add(-1)
	defer h.finish(w, r, &rq)
	h.serve(w, r, &rq)
}

// finish recovers a panic (answering 500 internal_error), releases a
// de-duplication key left held, lingers after a refusal of an unread body
// (linger.go), and writes the access line.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, rq *request) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler { // let net/http abort the connection quietly
			h.settleHeld(rq)
			panic(p)
		}
		h.o.Logger.Error("panic serving callback", slog.String("request_id", rq.id),
			slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
		if !rq.replied {
			h.refuse(w, rq, audit.Internal, http.StatusInternalServerError, "panic recovered")
		}
	}
	h.settleHeld(rq)
	h.linger(w, r, rq)
	ctx := r.Context()
	debug := h.o.Logger.Enabled(ctx, slog.LevelDebug)
	if !debug && h.o.AccessLog == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", rq.id),
		slog.String("outcome", rq.outcome),
		slog.String("command", clip(rq.q.vals[paramCommand], maxLoggedCommand)),
		slog.String("remote_addr", rq.remote),
		slog.String("client_ip", clip(rq.q.vals[paramClientIP], maxLoggedCommand)),
		slog.Int("status", rq.status),
		slog.String("reason", string(rq.reason)),
		slog.String("client_id", IdentityOf(rq.cert)),
		slog.String("latency", h.o.Now().Sub(rq.start).String()),
	}
	if h.o.AccessLog != nil {
		h.o.AccessLog.LogAttrs(ctx, slog.LevelInfo, "callback", attrs...)
	}
	if debug {
		h.o.Logger.LogAttrs(ctx, slog.LevelDebug, "callback", append(attrs, slog.String("method", r.Method))...)
	}
}

func (h *Handler) settleHeld(rq *request) {
	if rq.claimed != "" && h.o.Seen != nil {
		h.o.Seen.Settle(rq.claimed, false)
		rq.claimed = ""
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rq *request) {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = []string{http.MethodPost}
		h.refuse(w, rq, audit.BadMethod, http.StatusMethodNotAllowed, "method not POST")
		return
	}
	if r.URL.Path != h.o.Path {
		h.refuse(w, rq, audit.BadPath, http.StatusNotFound, "path not served")
		return
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rq.cert = r.TLS.PeerCertificates[0]
	}
	if rq.cert == nil && (h.o.RequireClientCert || h.o.Token == nil) {
		h.refuse(w, rq, audit.NoIdentity, http.StatusForbidden, "no client certificate")
		return
	}

	if detail, ok := parseQuery(r.URL.RawQuery, &rq.q); !ok {
		h.refuse(w, rq, audit.BadQuery, http.StatusBadRequest, detail)
		return
	}
	q := &rq.q
	if appID, ok := q.get(paramAppID); !ok || appID != h.o.AppID {
		h.refuse(w, rq, audit.BadAppID, http.StatusForbidden, "SdkAppid missing or not ours")
		return
	}
	command, _ := q.get(paramCommand)
	st := h.cmds[command] // nil: not in the catalog
	switch {
	case st != nil && !st.served:
		h.refuse(w, rq, audit.UnsupportedCommand, http.StatusBadRequest, st.why)
		return
	case st == nil && !h.servesUnknown(command):
		h.refuse(w, rq, audit.UnsupportedCommand, http.StatusBadRequest, "CallbackCommand missing or not served")
		return
	}
	if st != nil && st.served && st.cmd.Kind.Decides() {
		rq.decides, rq.unread = st.cmd, r
	}
	if ct, ok := q.get(paramContentType); ok && !equalFoldASCIIString(ct, "json") {
		h.refuse(w, rq, audit.BadContentType, http.StatusUnsupportedMediaType, "contenttype not json")
		return
	}
	// ClientIP is required where IM documents it; the families IM triggers
	// itself (Push, ContentCallback, Alert) and commands outside the
	// catalog may lack it. Present, it must be an address.
	var clientIP netip.Addr
	rawIP, hasIP := q.get(paramClientIP)
	if hasIP || st != nil && st.cmd.ClientIP {
		ip, ok := parseClientIP(rawIP)
		if !ok {
			h.refuse(w, rq, audit.BadClientIP, http.StatusBadRequest, "ClientIP missing or not an address")
			return
		}
		clientIP = ip
	}
	platform, _ := q.get(paramPlatform)
	platform = normalisePlatform(platform)
	if h.o.Token != nil {
		if reason, detail := h.checkSign(q, rq.start); reason != "" {
			h.refuse(w, rq, reason, http.StatusUnauthorized, detail)
			return
		}
	}

	// The limit is per client; a callback without a ClientIP was triggered
	// by IM itself, not by a client (see the package documentation). The
	// commands a Decider answers have their own limit.
	if lim := h.limiterFor(rq); lim != nil && clientIP.IsValid() {
		ok, wait, err := allow(r.Context(), lim, clientIP)
		if err != nil {
			h.stateFailed(w, rq, err)
			return
		}
		if !ok {
			if rq.decides != nil {
				h.refuse(w, rq, audit.RateLimited, http.StatusTooManyRequests, "ClientIP over its decision rate")
				return
			}
			w.Header()["Retry-After"] = []string{retryAfter(wait)}
			h.refuse(w, rq, audit.RateLimited, http.StatusTooManyRequests, "ClientIP over its rate")
			return
		}
	}

	rq.unread = nil // from here on readBody owns the body
	if !h.readBody(w, r, rq) {
		return
	}

	rule := h.generic
	if st != nil {
		rule = st.rule
	}
	s := h.scanners.Get().(*scanner)
	v := s.validate(rq.body, rule, command)
	h.putScanner(s)
	if v.reason != "" {
		if h.o.Validation != ValidateWarn || !entryReason(v.reason) {
			h.refuse(w, rq, v.reason, http.StatusBadRequest, v.detail)
			return
		}
		h.nonconforming.Add(1)
		if h.driftWarns.allow(command, rq.start) {
			h.o.Logger.LogAttrs(r.Context(), slog.LevelWarn, "callback body breaks its catalog entry; forwarded (validation warn)",
				slog.String("request_id", rq.id), slog.String("command", command),
				slog.String("reason", string(v.reason)), slog.String("detail", v.detail))
		}
		v.empty = false
	}
	if v.empty {
		h.empty.Add(1)
		rq.outcome = "empty"
		h.reply(w, rq, http.StatusOK, h.okBody)
		return
	}

	ev := Event{
		AppID:       h.o.AppID,
		OptPlatform: platform,
		RequestID:   rq.id,
		ReceivedAt:  rq.start,
		Body:        rq.body,
	}
	if clientIP.IsValid() {
		ev.ClientIP = clientIP.String()
	}
	if st != nil {
		ev.Command, ev.Known = st.cmd.Name, true
	} else {
		ev.Command = strings.Clone(command) // not the request's query memory
		h.unknown.Add(1)
		if h.unknownWarns.allow(command, rq.start) {
			h.o.Logger.LogAttrs(r.Context(), slog.LevelWarn, "callback command not in the catalog; forwarded after generic checks",
				slog.String("request_id", rq.id), slog.String("command", clip(command, maxLoggedCommand)))
		}
	}
	if rq.cert != nil {
		ev.Identity, ev.CertSHA256 = h.certNames(rq.cert)
	}
	ctx := r.Context()
	ev.ID = EventID(h.o.AppID, ev.Command, rq.body)
	if rq.decides != nil {
		h.decide(ctx, w, rq, ev, r.URL.RawQuery)
		return
	}

	if h.o.Seen != nil {
		fresh, err := h.o.Seen.Claim(ctx, ev.ID)
		if errors.Is(err, ErrStateUnavailable) {
			h.stateFailed(w, rq, err)
			return
		}
		if err != nil {
			h.refuse(w, rq, audit.OutboxError, http.StatusServiceUnavailable, "identical request in flight failed")
			return
		}
		if !fresh {
			h.duplicates.Add(1)
			rq.outcome = "duplicate"
			h.reply(w, rq, http.StatusOK, h.okBody)
			return
		}
		rq.claimed = ev.ID
	}
	err := h.o.Sink.Accept(ctx, ev)
	if h.o.Seen != nil {
		h.o.Seen.Settle(ev.ID, err == nil)
		rq.claimed = ""
	}
	if err != nil {
		h.sinkFailed(ctx, w, rq, err)
		return
	}
	h.accepted.Add(1)
	rq.outcome = "accepted"
	h.reply(w, rq, http.StatusOK, h.okBody)
}

// entryReason reports whether a refusal reason comes from the command's
// catalog entry (which ValidateWarn lets through) rather than from the
// generic checks every body must pass.
func entryReason(r audit.Reason) bool {
	return r == audit.BadField || r == audit.BadAccount || r == audit.BadPairList
}

// maxLoggedCommand bounds a command name written to the log.
const maxLoggedCommand = 128

// clip returns s cut to at most n bytes.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// stateFailed answers a failure of the shared state (dedupe or limiter):
// 503 redis_unavailable when it is unreachable and fails closed, 500
// otherwise.
func (h *Handler) stateFailed(w http.ResponseWriter, rq *request, err error) {
	if errors.Is(err, ErrStateUnavailable) {
		h.refuse(w, rq, audit.RedisUnavailable, http.StatusServiceUnavailable, "shared state unavailable")
		return
	}
	h.o.Logger.Error("shared state failed", slog.String("request_id", rq.id), slog.Any("err", err))
	h.refuse(w, rq, audit.Internal, http.StatusInternalServerError, "shared state failed")
}

func (h *Handler) sinkFailed(ctx context.Context, w http.ResponseWriter, rq *request, err error) {
	reason, detail := audit.OutboxError, "sink write failed"
	if errors.Is(err, ErrSinkFull) {
		reason, detail = audit.OutboxFull, "sink at capacity"
	}
	h.o.Logger.LogAttrs(ctx, slog.LevelWarn, "event not accepted by sink",
		slog.String("request_id", rq.id), slog.String("reason", string(reason)), slog.Any("err", err))
	h.refuse(w, rq, reason, http.StatusServiceUnavailable, detail)
}

// maxPooledScratch bounds the buffers a pooled scanner keeps.
const maxPooledScratch = 64 << 10

func (h *Handler) putScanner(s *scanner) {
	s.release()
	if cap(s.arena) > maxPooledScratch || cap(s.buf) > maxPooledScratch || cap(s.keys) > maxPooledScratch/8 {
		return
	}
	h.scanners.Put(s)
}

// checkSign verifies Sign and RequestTime against the token: RequestTime
// within SignWindow of now, and Sign the lowercase hex SHA-256 of the token
// followed by the RequestTime string, compared in constant time.
func (h *Handler) checkSign(q *query, now time.Time) (audit.Reason, string) {
	sign, okS := q.get(paramSign)
	rt, okT := q.get(paramRequestTime)
	if !okS || !okT || sign == "" || rt == "" {
		return audit.MissingSign, "Sign or RequestTime missing"
	}
	if len(rt) > 18 || !isDecimal(rt) {
		return audit.BadSign, "RequestTime not a decimal number"
	}
	t, _ := strconv.ParseInt(rt, 10, 64) // 18 digits cannot overflow
	d := now.Unix() - t
	if d < 0 {
		d = -d
	}
	if d > int64(h.o.SignWindow/time.Second) {
		return audit.StaleSign, "RequestTime outside the window"
	}
	var got [sha256.Size]byte
	if len(sign) != 2*sha256.Size || !decodeLowerHex(got[:], sign) {
		return audit.BadSign, "Sign does not match"
	}
	want := signDigest(h.o.Token, rt)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return audit.BadSign, "Sign does not match"
	}
	return "", ""
}

// signDigest returns sha256(token + requestTime).
func signDigest(token []byte, requestTime string) [sha256.Size]byte {
	var buf [256]byte
	if len(token)+len(requestTime) <= len(buf) {
		n := copy(buf[:], token)
		n += copy(buf[n:], requestTime)
		return sha256.Sum256(buf[:n])
	}
	d := sha256.New()
	d.Write(token)
	io.WriteString(d, requestTime)
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	return sum
}

// decodeLowerHex decodes s, which must be lowercase hex of len(dst) bytes.
// Upper case is refused: IM sends lower case, and one spelling per digest
// keeps the comparison exact.
func decodeLowerHex(dst []byte, s string) bool {
	for i := range dst {
		hi, lo := s[2*i], s[2*i+1]
		if !isLowerHex(hi) || !isLowerHex(lo) {
			return false
		}
		dst[i] = unhex(hi)<<4 | unhex(lo)
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// retryAfter renders d as whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

// readBody reads the body into rq.body within MaxBody, refusing (and
// returning false) when it is larger or unreadable.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, rq *request) bool {
	limit := h.o.MaxBody
	if r.ContentLength > limit {
		closeAfter(w, r)
		h.refuse(w, rq, audit.BodyTooLarge, http.StatusRequestEntityTooLarge, "Content-Length over the cap")
		return false
	}
	var (
		buf []byte
		err error
	)
	if r.ContentLength >= 0 {
		// The server ends the body at Content-Length, checked above.
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, buf)
	} else {
		buf, err = readAllBounded(http.MaxBytesReader(w, r.Body, limit), limit)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.refuse(w, rq, audit.BodyTooLarge, http.StatusRequestEntityTooLarge, "body over the cap")
			return false
		}
		h.refuse(w, rq, audit.BadJSON, http.StatusBadRequest, "body unreadable")
		return false
	}
	rq.body, rq.bodyRead = buf, true
	return true
}

// readAllBounded reads r to its end; r is bounded by MaxBytesReader, and
// limit only sizes the first buffer.
func readAllBounded(r io.Reader, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, 4096))
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// refuse answers a refusal and writes its audit record. A Before or Reply
// command the Decider answers is answered with its fallback instead, with
// status 200, unless the refusal is an authentication failure (see
// fallback).
func (h *Handler) refuse(w http.ResponseWriter, rq *request, reason audit.Reason, status int, detail string) {
	var fallback []byte
	if rq.decides != nil && !authFailure(reason) {
		fallback, status, detail = h.fallback(rq, reason, detail)
	}
	if c := h.rejected[reason]; c != nil {
		c.Add(1)
	}
	rec := audit.Record{
		Reason:      reason,
		Status:      status,
		Detail:      detail,
		RemoteAddr:  rq.remote,
		ClientIP:    rq.q.vals[paramClientIP],
		SdkAppid:    rq.q.vals[paramAppID],
		Command:     rq.q.vals[paramCommand],
		RequestID:   rq.id,
		IMRequestID: rq.q.imRequestID,
	}
	if c := rq.cert; c != nil {
		rec.CertSubject = c.Subject.String()
		rec.CertSerial = certs.SerialHex(c)
		rec.CertSHA256 = certs.CertFingerprint(c)
	}
	if rq.bodyRead {
		sum := sha256.Sum256(rq.body)
		rec.BodySHA256 = hex.EncodeToString(sum[:])
		rec.BodySize = int64(len(rq.body))
	}
	h.o.Audit.Log(rec)
	rq.reason, rq.outcome = reason, "refused"
	body := h.failBodies[reason]
	if body == nil { // a reason outside audit.Reasons; cannot happen
		body = []byte(`{"ActionStatus":"FAIL","ErrorCode":1,"ErrorInfo":"internal_error"}`)
	}
	if fallback != nil {
		body, rq.outcome = fallback, "fallback"
	}
	h.reply(w, rq, status, body)
}

// reply writes a JSON answer.
func (h *Handler) reply(w http.ResponseWriter, rq *request, status int, body []byte) {
	rq.replied, rq.status = true, status
	w.Header()["Content-Type"] = h.jsonType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// nextRequestID returns a new request id: the Handler's random prefix and a
// counter, unique per process run with overwhelming probability.
func (h *Handler) nextRequestID() string {
	var buf [40]byte
	b := append(buf[:0], h.idPrefix...)
	b = strconv.AppendUint(b, h.idSeq.Add(1), 16)
	return string(b)
}
