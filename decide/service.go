package decide

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// Service answers the callbacks whose reply IM acts on: it implements
// receiver.Decider. Create it with [New]; it is safe for concurrent use and
// holds no goroutines. Call Close to release its idle connections.
type Service struct {
	o       Options
	secret  []byte
	cmds    map[string]*command // every Before and Reply command; read-only after New
	order   []*command          // the same, in catalog order
	targets []*target
	cache   *cache
	okBody  []byte // the plain allow reply; read-only
}

// command is how one Before or Reply command is answered.
type command struct {
	cmd      *catalog.Command
	target   *target // nil: observe mode
	store    bool    // in observe mode, also stored (Options.Observe)
	plainOK  bool    // the plain allow reply is relayed as it is (no per-target or RspData fields)
	deny     bool
	code     int    // deny code; 0 means the command's default
	fallback string // "allow", "deny" or "deny:CODE", for audit details and Stats
	count    commandCounters
}

// fallbackBody is the command's fallback for the request body.
func (c *command) fallbackBody(body []byte) []byte { return c.cmd.Fallback(body, c.deny, c.code) }

// New checks o, loads the TLS files and returns a Service. Every Before
// and Reply command of the catalog gets a decision service (the first
// Target whose pattern matches) or observe mode, and a fallback (the first
// FallbackRule whose pattern matches, else allow). It fails, wrapping
// [ErrInvalidOptions] or [ErrTimeoutTooLong], for a bad pattern or URL, a
// Target or FallbackRule that matches no Before or Reply command, or a deny
// code a command it chooses the fallback of does not accept (see
// catalog.Command.CheckDenyCode; the error wraps catalog.ErrBadCode).
func New(o Options) (*Service, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{o: o, cmds: make(map[string]*command), cache: newCache(o.CacheEntries, o.CacheBytes, o.CacheTTL),
		okBody: []byte(okBodyText)}
	if len(o.SigningSecret) > 0 {
		if s.secret, err = forward.ParseSecret(o.SigningSecret); err != nil {
			return nil, fmt.Errorf("configuring the decision path: %w", err)
		}
	}
	tlsConf, err := certs.ClientTLS("decision services'", o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	for _, t := range o.Targets {
		if err := catalog.CheckPattern(t.Pattern); err != nil {
			return nil, fmt.Errorf("checking decision target: %w", err)
		}
		tg, err := newTarget(t, &o, tlsConf)
		if err != nil {
			return nil, err
		}
		s.targets = append(s.targets, tg)
	}
	for _, r := range o.Fallbacks {
		if err := catalog.CheckPattern(r.Pattern); err != nil {
			return nil, fmt.Errorf("checking fallback: %w", err)
		}
		if r.Deny && r.Code < 0 || !r.Deny && r.Code != 0 {
			return nil, fmt.Errorf("checking fallback %s=%s: %w: a code goes with deny only, and is positive", r.Pattern, r, ErrInvalidOptions)
		}
	}
	usedT := make([]bool, len(s.targets))
	usedF := make([]bool, len(o.Fallbacks))
	for _, c := range o.Catalog.Commands() {
		if !c.Kind.Decides() {
			continue
		}
		cmd, _ := o.Catalog.Lookup(c.Name)
		st := &command{cmd: cmd, fallback: "allow", plainOK: cmd.Reply.Targets == nil && !cmd.Reply.RspData}
		for i, t := range s.targets {
			if catalog.Match(t.pattern, cmd.Name) {
				st.target, usedT[i] = t, true
				break
			}
		}
		for i, r := range o.Fallbacks {
			if !catalog.Match(r.Pattern, cmd.Name) {
				continue
			}
			usedF[i] = true
			if r.Deny {
				st.deny, st.code, st.fallback = true, r.Code, r.String()
				code := r.Code
				if code == 0 {
					code = cmd.DefaultDenyCode()
				}
				if err := cmd.CheckDenyCode(code); err != nil {
					return nil, fmt.Errorf("checking fallback %s=%s: %w", r.Pattern, r, err)
				}
			}
			break
		}
		s.cmds[cmd.Name] = st
		s.order = append(s.order, st)
	}
	for i, used := range usedT {
		if !used {
			return nil, fmt.Errorf("checking decision target %s: %w: it matches no before-callback (see imedge commands), or an earlier target takes them all", o.Targets[i], ErrInvalidOptions)
		}
	}
	for i, used := range usedF {
		if !used {
			r := o.Fallbacks[i]
			return nil, fmt.Errorf("checking fallback %s=%s: %w: it matches no before-callback, or an earlier fallback takes them all", r.Pattern, r, ErrInvalidOptions)
		}
	}
	// One start line per (fallback, stored) pair, naming its commands: the
	// operator sees at a glance what nothing decides.
	type observeKey struct {
		fallback string
		stored   bool
	}
	var keys []observeKey
	observed := map[observeKey][]string{}
	for _, c := range s.order {
		if c.target == nil {
			c.store = o.Observe != nil && o.Observe(c.cmd.Name)
			k := observeKey{c.fallback, c.store}
			if _, ok := observed[k]; !ok {
				keys = append(keys, k)
			}
			observed[k] = append(observed[k], c.cmd.Name)
		}
	}
	for _, k := range keys {
		o.Logger.Info("before-callbacks in observe mode: answered with their fallback, no decision service",
			slog.Any("commands", observed[k]), slog.String("fallback", k.fallback), slog.Bool("stored", k.stored))
	}
	return s, nil
}

// Close releases the idle connections to the decision services. Calls in
// flight finish; the Service stays usable.
func (s *Service) Close() {
	for _, t := range s.targets {
		t.closeIdle()
	}
}

// okBodyText answers a command the Service does not know; the receiver
// never asks for one.
const okBodyText = `{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}`

// Decide implements receiver.Decider: it answers ev with its decision
// service's checked reply, a remembered decision for an identical callback,
// or the command's fallback (with the audit reason) when the service times
// out, fails, answers a non-2xx status or a reply the command's schema
// refuses, or its circuit is open. In observe mode it answers the fallback
// at once and, when Options.Observe names the command, asks for the event
// to be stored. It returns within the Timeout.
func (s *Service) Decide(ctx context.Context, ev receiver.Event) receiver.Decision {
	start := s.o.Now()
	c := s.cmds[ev.Command]
	if c == nil {
		return receiver.Decision{Body: []byte(okBodyText), Reason: audit.Internal, Detail: "command without a reply schema", Fallback: "allow"}
	}
	defer func() { c.count.latency.observe(s.o.Now().Sub(start)) }()
	if c.target == nil {
		c.count.observe.Add(1)
		return receiver.Decision{Body: c.fallbackBody(ev.Body), Fallback: c.fallback, Observe: c.store}
	}
	res, src := s.cache.do(ctx, keyOf(&ev), s.o.Now, func() result { return s.ask(ctx, c, &ev) })
	if res.reason != "" {
		c.count.fallback(res.reason)
		return receiver.Decision{Body: c.fallbackBody(ev.Body), Reason: res.reason, Detail: res.detail, Fallback: c.fallback}
	}
	c.count.decided[res.outcome].Add(1)
	switch src {
	case cached:
		c.count.cached.Add(1)
	case joined:
		c.count.joined.Add(1)
	}
	return receiver.Decision{Body: res.body}
}

// Fallback implements receiver.Decider: the command's fallback for a
// callback the receiver refused for reason, counted under that reason.
func (s *Service) Fallback(command string, body []byte, reason audit.Reason) receiver.Decision {
	c := s.cmds[command]
	if c == nil {
		return receiver.Decision{Body: []byte(okBodyText), Fallback: "allow"}
	}
	c.count.fallback(reason)
	return receiver.Decision{Body: c.fallbackBody(body), Fallback: c.fallback}
}

// ask calls the command's decision service once, within the Timeout, and
// checks its reply. The call does not end with ctx (the callback's
// request): identical callbacks may be waiting for its answer; ctx only
// carries the request's values to the log.
func (s *Service) ask(ctx context.Context, c *command, ev *receiver.Event) result {
	t := c.target
	tk, ok := t.br.allow(s.o.Now())
	if !ok {
		t.rejected.Add(1)
		return result{reason: audit.DecideTimeout, detail: "circuit open: the decision service failed repeatedly"}
	}
	t.calls.Add(1)
	deadline := time.Now().Add(s.o.Timeout)
	status, reply, err := t.post(deadline, ev, s.secret, s.o.Now())
	var res result
	switch {
	case errors.Is(err, errTooLarge):
		res = result{reason: audit.DecideBadReply, detail: "reply larger than " + strconv.Itoa(MaxReplyBytes>>10) + " KiB"}
	case err != nil && timedOut(deadline, err):
		res = result{reason: audit.DecideTimeout, detail: "no answer within the decision timeout"}
	case err != nil:
		res = result{reason: audit.DecideError, detail: "decision service unreachable"}
	case status < 200 || status > 299:
		res = result{reason: audit.DecideError, detail: "decision service answered HTTP " + strconv.Itoa(status)}
	}
	answered := res.reason == "" || res.reason == audit.DecideBadReply
	s.logCircuit(t, t.br.report(tk, answered, s.o.Now()))
	if !answered {
		t.failures.Add(1)
		s.o.Logger.LogAttrs(ctx, slog.LevelDebug, "decision call failed", slog.String("target", t.pattern),
			slog.String("command", c.cmd.Name), slog.String("request_id", ev.RequestID),
			slog.String("reason", string(res.reason)), slog.Any("err", err))
		return res
	}
	if res.reason != "" {
		return res
	}
	if c.plainOK && string(bytes.TrimSpace(reply)) == okBodyText {
		// The reply most services send most often: CheckReply would
		// relay it unchanged (TestPlainAllow).
		return result{body: s.okBody, outcome: catalog.Allow}
	}
	relay, outcome, err := c.cmd.CheckReply(ev.Body, reply)
	if err != nil {
		return result{reason: audit.DecideBadReply, detail: badReplyDetail(err)}
	}
	return result{body: relay, outcome: outcome}
}

// logCircuit logs a circuit's change of state: Warn when it opens, Debug
// when a trial call fails (once per cool-down while the service is down),
// Info when it closes.
func (s *Service) logCircuit(t *target, tr transition) {
	switch tr {
	case opened:
		s.o.Logger.Warn("decision service failing: circuit open, callbacks answered with their fallback",
			slog.String("target", t.pattern), slog.String("url", t.safeURL),
			slog.Int("failures", s.o.BreakerFailures), slog.Duration("trial_every", s.o.BreakerCoolDown))
	case reopened:
		s.o.Logger.Debug("decision service still failing: trial call failed, circuit open", slog.String("target", t.pattern))
	case closed:
		s.o.Logger.Info("decision service answers again: circuit closed", slog.String("target", t.pattern), slog.String("url", t.safeURL))
	}
}

// badReplyDetail is the audit detail of a reply the schema refused: the
// catalog's reason, which names fields and codes but quotes no value.
func badReplyDetail(err error) string {
	const max = 200
	msg := err.Error()
	if len(msg) > max {
		msg = msg[:max]
	}
	return "reply refused: " + msg
}

// Stats returns a snapshot of the counters. Safe for concurrent use.
func (s *Service) Stats() Stats {
	st := Stats{Cache: s.cache.stats()}
	for _, c := range s.order {
		cs := CommandStats{
			Command: c.cmd.Name, Fallback: c.fallback, Decisions: make(map[string]uint64),
			Cached: c.count.cached.Load(), Joined: c.count.joined.Load(), Observed: c.count.observe.Load(),
			Latency: c.count.latency.snapshot(), Fallbacks: make(map[audit.Reason]uint64),
		}
		if c.target != nil {
			cs.Target = c.target.pattern
		}
		for _, o := range outcomes {
			cs.Decisions[o.String()] = c.count.decided[o].Load()
		}
		c.count.mu.Lock()
		for r, n := range c.count.fallbacks {
			cs.Fallbacks[r] = n
		}
		c.count.mu.Unlock()
		st.Commands = append(st.Commands, cs)
	}
	for _, t := range s.targets {
		st.Targets = append(st.Targets, t.stats())
	}
	return st
}
