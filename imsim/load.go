package imsim

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how a load worker uses connections.
type Mode int

const (
	// KeepAlive sends every request of a worker on one persistent
	// connection (reconnecting only after an error), as IM's callback
	// client does.
	KeepAlive Mode = iota
	// NewConn opens a new connection with a full TLS handshake (session
	// tickets off) for every request.
	NewConn
	// Resume opens a new connection for every request and resumes the TLS
	// session from a ticket received earlier (an abbreviated handshake).
	Resume
)

// String returns the mode's command-line name.
func (m Mode) String() string {
	switch m {
	case KeepAlive:
		return "keepalive"
	case NewConn:
		return "new-conn"
	case Resume:
		return "resume"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// MarshalText returns the mode's name.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMode reads "keepalive", "new-conn" or "resume".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{KeepAlive, NewConn, Resume} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("parsing mode %q: %w: want keepalive, new-conn or resume", s, ErrInvalidOptions)
}

// LoadOptions configures [Load]. Target and AppID are required, and
// Duration or Requests (or both: whichever ends first).
type LoadOptions struct {
	// Target is the receiver and the client's TLS identity.
	Target Target
	// AppID is the SdkAppid every callback carries. Required.
	AppID string
	// Token, when set, signs every callback (Sign, RequestTime).
	Token []byte
	// OptPlatform is sent on every callback; empty leaves it out.
	OptPlatform string
	// Mode is how connections are used; the zero value is KeepAlive.
	Mode Mode
	// Concurrency is the number of workers, each with one request in
	// flight (and, with KeepAlive, one connection). Zero means 1.
	Concurrency int
	// Duration ends the run: no request starts after it (requests in
	// flight finish). Zero means no time limit.
	Duration time.Duration
	// Requests ends the run after this many requests. Zero means no limit.
	Requests int64
	// Rate paces the run: request n starts no earlier than n/Rate seconds
	// after the first (workers that are ahead wait). Zero means as fast as
	// the workers go. Concurrency must be large enough for the latency at
	// that rate, or the run falls behind it.
	Rate float64
	// DistinctBodies gives every request a body never sent before in this
	// run (so a receiver that de-duplicates forwards each one). When false
	// every request carries the same body.
	DistinctBodies bool
	// DuplicateRatio, between 0 and 1, is the share of requests that repeat
	// the worker's previous new body (a retry, from the receiver's point of
	// view); the others are new. It applies only with DistinctBodies.
	DuplicateRatio float64
	// Pairs is the number of deleted friendships per body. Zero means 1.
	Pairs int
	// Command is the CallbackCommand sent; empty means
	// Sns.CallbackFriendDelete, with bodies built from Pairs.
	Command string
	// Body, when set, is the body of every request: a JSON object (such as
	// the catalog's example of Command). With DistinctBodies each new body
	// is made unique by a first member "ImsimSeq" naming the run and the
	// body's number, which a receiver forwards untouched.
	Body []byte
	// Decisions reads every reply as the answer to a callback whose reply
	// IM acts on: a 200 reply with ActionStatus OK counts as OK whatever
	// its decision (a deny is an answer), and Result.Decisions counts the
	// replies by outcome (see [ReadDecision]).
	Decisions bool
	// ClientIPs is the number of distinct ClientIP values, used in turn
	// (see [ClientIPFor]); zero or one means always 10.0.0.1. At most
	// 16 777 214.
	ClientIPs int64
	// RunID makes this run's account ids (and so its bodies and event ids)
	// differ from other runs'. Empty means random.
	RunID string
}

func (o LoadOptions) check() error {
	if err := o.Target.check(); err != nil {
		return err
	}
	bad := func(why string) error { return fmt.Errorf("checking load options: %w: %s", ErrInvalidOptions, why) }
	switch {
	case o.AppID == "":
		return bad("AppID is required")
	case o.Duration <= 0 && o.Requests <= 0:
		return bad("Duration or Requests must be positive")
	case o.Duration < 0 || o.Requests < 0 || o.Concurrency < 0 || o.Pairs < 0 || o.ClientIPs < 0 || o.Rate < 0 || o.Rate != o.Rate:
		return bad("negative limit")
	case o.DuplicateRatio < 0 || o.DuplicateRatio > 1 || o.DuplicateRatio != o.DuplicateRatio:
		return bad("DuplicateRatio must be between 0 and 1")
	case o.ClientIPs > maxClientIPs:
		return bad("ClientIPs above 16777214")
	case o.Mode < KeepAlive || o.Mode > Resume:
		return bad("unknown Mode")
	case len(o.RunID) > 12:
		return bad("RunID longer than 12 bytes (account ids are at most 32 bytes)")
	case o.Body != nil && (len(o.Body) < 2 || o.Body[0] != '{' || o.Body[len(o.Body)-1] != '}'):
		return bad("Body must be a JSON object")
	}
	return nil
}

// Latency summarises request latencies: from the start of the request (the
// connect, for NewConn and Resume) to the last byte of the reply. Values
// are exact to within 1.6 %; Max is exact.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}

// Result is the outcome of a [Load] run.
type Result struct {
	Mode        Mode
	Concurrency int
	Elapsed     time.Duration    // from the first request to the last reply
	Requests    int64            // requests finished, answered or failed
	OK          int64            // replies IM counts as handled (200, ActionStatus OK)
	Fresh       int64            // OK replies to a body sent for the first time in the run
	Errors      map[string]int64 // failures by kind; see [Load]
	Decisions   map[string]int64 // with LoadOptions.Decisions: OK replies by outcome (allow, deny, rewrite, drop, partial)
	Handshakes  int64            // connections opened with a full TLS handshake
	Resumed     int64            // connections that resumed a TLS session
	Latency     Latency          // over all finished requests, failed ones included
}

// Throughput is OK replies per second of Elapsed.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Failed is the number of requests that did not get an OK reply.
func (r Result) Failed() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Load drives a receiver with o.Concurrency workers until o.Duration passes,
// o.Requests were sent, or ctx ends, and reports what happened. An error
// means the options are invalid or ctx ended before the run started;
// failed requests are counted in Result.Errors by kind:
//
//	dial                 the TCP connection failed
//	tls                  the TLS handshake failed, or the peer sent an alert
//	timeout              a request exceeded Target.Timeout
//	io                   the connection broke mid-request
//	bad_reply            the answer was not HTTP
//	http_STATUS[:INFO]   a non-OK reply, with IM's ErrorInfo when present (e.g. http_429:rate_limited)
func Load(ctx context.Context, o LoadOptions) (Result, error) {
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("starting load: %w", err)
	}
	workers := max(o.Concurrency, 1)
	if o.RunID == "" {
		var b [4]byte
		_, _ = crand.Read(b[:])
		o.RunID = hex.EncodeToString(b[:])
	}
	l := &load{o: o, d: newDialer(o.Target, o.Mode, 2*workers), path: o.Target.path(), host: o.Target.Addr}
	if !o.DistinctBodies {
		l.sameBody = l.body(0)
		if o.Body != nil {
			l.sameBody = o.Body
		}
	}
	start := time.Now()
	l.start = start
	if o.Duration > 0 {
		l.end = start.Add(o.Duration)
	}
	ws := make([]*worker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		ws[i] = &worker{l: l, errs: map[string]int64{}, decisions: map[string]int64{}, rng: rand.New(rand.NewPCG(uint64(i), 0x696d73696d))}
		w := ws[i]
		wg.Go(func() { w.run(ctx) })
	}
	wg.Wait()
	res := Result{Mode: o.Mode, Concurrency: workers, Elapsed: time.Since(start), Errors: map[string]int64{}}
	if o.Decisions {
		res.Decisions = map[string]int64{}
	}
	var h histogram
	for _, w := range ws {
		h.merge(&w.hist)
		res.Requests += w.requests
		res.OK += w.ok
		res.Fresh += w.fresh
		res.Handshakes += w.handshakes
		res.Resumed += w.resumed
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		for k, v := range w.decisions {
			res.Decisions[k] += v
		}
	}
	res.Latency = Latency{P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99),
		Max: time.Duration(h.max), Mean: h.mean()}
	return res, nil
}

// load is the state shared by the workers of one run.
type load struct {
	o        LoadOptions
	d        *dialer
	path     string
	host     string
	start    time.Time
	end      time.Time // zero: no time limit
	seq      atomic.Int64
	fresh    atomic.Int64
	sameBody []byte
}

// take reserves the next request number; false when the run is over.
func (l *load) take(ctx context.Context) (int64, bool) {
	if ctx.Err() != nil || (!l.end.IsZero() && !time.Now().Before(l.end)) {
		return 0, false
	}
	n := l.seq.Add(1) - 1
	if l.o.Requests > 0 && n >= l.o.Requests {
		return 0, false
	}
	if l.o.Rate > 0 {
		due := l.start.Add(time.Duration(float64(n) / l.o.Rate * float64(time.Second)))
		if !l.end.IsZero() && !due.Before(l.end) {
			return 0, false
		}
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, false
			case <-t.C:
			}
		}
	}
	return n, true
}

// body returns the n-th new body of the run: Pairs pairs whose From_Account
// names the run and n, or Body with a first member naming them.
func (l *load) body(n int64) []byte {
	if l.o.Body != nil {
		seq := l.o.RunID + "-" + strconv.FormatInt(n, 10)
		b := make([]byte, 0, len(l.o.Body)+len(seq)+16)
		b = append(b, `{"ImsimSeq":"`...)
		b = append(b, seq...)
		b = append(b, '"')
		if rest := l.o.Body[1:]; len(bytes.TrimSpace(rest)) > 1 { // not "{}"
			b = append(b, ',')
		}
		return append(b, l.o.Body[1:]...)
	}
	from := l.o.RunID + "-" + strconv.FormatInt(n, 10)
	pairs := make([]Pair, max(l.o.Pairs, 1))
	for i := range pairs {
		pairs[i] = Pair{From: from, To: "peer" + strconv.Itoa(i)}
	}
	return FriendDeleteBody(pairs...)
}

// worker runs requests one after another. Its fields are its own until
// Load merges them after the worker ended.
type worker struct {
	l    *load
	rng  *rand.Rand
	c    *conn
	buf  []byte
	last []byte // the worker's previous new body, for duplicates

	mu  sync.Mutex // guards raw, for the stop below
	raw net.Conn   // connection being set up or used

	hist                                     histogram
	requests, ok, fresh, handshakes, resumed int64
	errs                                     map[string]int64
	decisions                                map[string]int64 // with LoadOptions.Decisions
	signAt                                   int64            // RequestTime of the cached signature
	signed                                   []byte           // cached "&Sign=...&RequestTime=..."
	cb                                       Callback         // the request's parameters; never carries the token
}

func (w *worker) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.raw != nil {
			_ = w.raw.SetDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	defer w.closeConn()
	l := w.l
	w.cb = Callback{AppID: l.o.AppID, Command: l.o.Command, OptPlatform: l.o.OptPlatform}
	for {
		n, ok := l.take(ctx)
		if !ok {
			return
		}
		body, fresh := w.nextBody(n)
		w.cb.ClientIP = ClientIPFor(n, l.o.ClientIPs)
		start := time.Now()
		r, err := w.do(ctx, start, body)
		if err != nil && ctx.Err() != nil {
			return // cut short by the caller: not a failure of the server
		}
		w.hist.add(time.Since(start))
		w.requests++
		switch {
		case err != nil:
			kind := "io"
			if oe, ok := err.(*opError); ok {
				kind = oe.kind
			}
			w.errs[kind]++
		case l.o.Decisions && r.Status == http.StatusOK && r.ActionStatus == "OK":
			w.ok++
			if fresh {
				w.fresh++
			}
			w.decisions[ReadDecision(r.Body).Outcome]++
		case r.OK():
			w.ok++
			if fresh {
				w.fresh++
			}
		default:
			kind := "http_" + strconv.Itoa(r.Status)
			if r.ErrorInfo != "" {
				kind += ":" + r.ErrorInfo
			}
			w.errs[kind]++
		}
	}
}

// nextBody picks the body of request n and whether it is new in the run.
func (w *worker) nextBody(n int64) ([]byte, bool) {
	l := w.l
	if !l.o.DistinctBodies {
		return l.sameBody, n == 0
	}
	if w.last != nil && l.o.DuplicateRatio > 0 && w.rng.Float64() < l.o.DuplicateRatio {
		return w.last, false
	}
	w.last = l.body(l.fresh.Add(1) - 1)
	return w.last, true
}

// do sends one request, connecting first when needed.
func (w *worker) do(ctx context.Context, start time.Time, body []byte) (Reply, error) {
	l := w.l
	deadline := start.Add(l.d.timeout)
	perRequest := l.o.Mode != KeepAlive
	if w.c == nil {
		c, err := l.d.dial(ctx, deadline, w.track)
		if err != nil {
			w.track(nil)
			return Reply{}, err
		}
		if c.resumed {
			w.resumed++
		} else {
			w.handshakes++
		}
		w.c = c
	}
	if len(l.o.Token) > 0 {
		// One signature per second of RequestTime, as IM does.
		if s := start.Unix(); s != w.signAt || w.signed == nil {
			w.signAt, w.signed = s, appendSign(nil, l.o.Token, s)
		}
	}
	w.buf = appendRequest(w.buf[:0], l.host, l.path, &w.cb, w.signed, body, perRequest)
	r, keep, err := w.c.roundTrip(w.buf, deadline, l.o.Decisions)
	if err != nil || !keep || perRequest {
		w.closeConn()
	}
	return r, err
}

func (w *worker) track(c net.Conn) {
	w.mu.Lock()
	w.raw = c
	w.mu.Unlock()
}

func (w *worker) closeConn() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
	w.track(nil)
}
