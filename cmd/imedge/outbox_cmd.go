package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/forward"
)

const outboxUsage = `Usage:
  imedge outbox stats             [--json]
  imedge outbox list              [--state pending|dead|delivered] [--command P] [--destination D]
                                  [--since T] [--until T] [--limit N] [--after SEQ] [--json]
  imedge outbox show              REF [--json]
  imedge outbox replay-dead       REF... | --all | FILTERS   dead letters back to delivery
  imedge outbox replay-delivered  REF... | --all | FILTERS   retained delivered events sent again
  imedge outbox retry             REF... | --all | FILTERS   pending events attempted now
  imedge outbox purge-dead        REF... | --all | FILTERS   dead letters deleted

REF is an event id or a sequence number (as list prints them). FILTERS: --command (a command,
Family.* or *), --destination (a route's pattern, or default), --since and --until (RFC 3339, a
date, or a duration ago such as 2h). An action needs refs, filters or --all.

A running imedge is reached through its admin listener, --admin (default 127.0.0.1:9443): on
loopback with the local credential imedge writes at each start (--credential-file, default
STATE-DIR/admin.credential, readable by the imedge user and root), or with mutual TLS
(--admin-cacert, --admin-cert, --admin-key). When nothing answers there, the outbox directory
(--spool-dir, default STATE-DIR/outbox) is opened directly, unless an imedge holds it; changes
made that way are delivered when imedge starts. Each command says on stderr which one it used.
STATE-DIR is --state-dir, default $STATE_DIRECTORY, else /var/lib/imedge.
`

const outboxExamples = `
Examples:
  imedge outbox stats
  imedge outbox list --state dead --command 'Group.*' --since 2h
  imedge outbox show 42
  imedge outbox replay-dead --destination 'Group.*'
  imedge outbox replay-delivered --since 2026-11-26T06:00:00Z --until 2026-11-26T07:00:00Z
  imedge outbox stats --state-dir /var/lib/imedge/b --admin 127.0.0.1:9444
`

// outboxCmd is one imedge outbox command line.
type outboxCmd struct {
	sub                                string
	adminAddr, caFile, certFile, key   string
	credFile, stateDir, spoolDir       string
	timeout                            time.Duration
	asJSON                             bool
	state                              string // list
	after                              uint64 // list
	limit                              int    // list
	command, destination, since, until string // list and actions
	all                                bool   // actions
	refs                               []string
	sel                                admin.Selection // refs and filters, resolved
}

// outboxSubcommands are the subcommands: reads, then the actions.
func outboxSubcommands() []string {
	subs := []string{"stats", "list", "show"}
	for _, a := range admin.Actions() {
		subs = append(subs, string(a))
	}
	return subs
}

func runOutbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, outboxUsage)
		return errUsage
	}
	c := &outboxCmd{sub: args[0]}
	switch c.sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, outboxUsage+outboxExamples)
		return nil
	case "replay":
		return usageErrorf("imedge outbox: replay is now replay-dead (dead letters), replay-delivered (retained delivered events) or retry (pending events)")
	case "purge":
		return usageErrorf("imedge outbox: purge is now purge-dead")
	}
	if !slices.Contains(outboxSubcommands(), c.sub) {
		return usageErrorf("imedge outbox: unknown subcommand %q%s", c.sub, suggestWord(c.sub, outboxSubcommands()))
	}
	fs := c.flags()
	help, err := parseInterspersed(fs, args[1:], stdout, outboxUsage, &c.refs)
	if help || err != nil {
		return err
	}
	if err := c.resolve(getenv); err != nil {
		return err
	}
	op, done, err := c.operator(ctx, stderr)
	if err != nil {
		return err
	}
	defer done()
	switch c.sub {
	case "stats":
		return c.stats(ctx, op, stdout)
	case "list":
		return c.list(ctx, op, stdout, stderr)
	case "show":
		return c.show(ctx, op, stdout)
	}
	return c.act(ctx, op, admin.Action(c.sub), stdout, stderr)
}

// flags registers the flags sub takes, and only those: a flag that would
// mean nothing for it is refused as unknown.
func (c *outboxCmd) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("imedge outbox "+c.sub, flag.ContinueOnError)
	fs.StringVar(&c.adminAddr, "admin", defaultAdminListen, "admin listener of the running imedge (host:port)")
	fs.StringVar(&c.caFile, "admin-cacert", "", "CA bundle of the admin listener's certificate (mutual TLS)")
	fs.StringVar(&c.certFile, "admin-cert", "", "client certificate for an admin listener with mutual TLS")
	fs.StringVar(&c.key, "admin-key", "", "private key for --admin-cert")
	fs.StringVar(&c.credFile, "credential-file", "", "local credential of a loopback admin listener (default STATE-DIR/"+credentialFileName+")")
	fs.StringVar(&c.stateDir, "state-dir", "", "the instance's state directory (default $STATE_DIRECTORY, else "+defaultStateDir+")")
	fs.StringVar(&c.spoolDir, "spool-dir", "", "outbox directory, opened directly when no imedge answers (default STATE-DIR/outbox)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on each admin request")
	fs.BoolVar(&c.asJSON, "json", false, "print JSON (the admin API's shapes)")
	filters := func() {
		fs.StringVar(&c.command, "command", "", "only this command, a family (Group.*) or *")
		fs.StringVar(&c.destination, "destination", "", "only this destination (a route's pattern, or default)")
		fs.StringVar(&c.since, "since", "", "only events accepted at or after T (RFC 3339, YYYY-MM-DD, or a duration ago: 2h)")
		fs.StringVar(&c.until, "until", "", "only events accepted before T")
	}
	switch c.sub {
	case "list":
		fs.StringVar(&c.state, "state", "pending", "pending, dead or delivered (retained for replay)")
		filters()
		fs.IntVar(&c.limit, "limit", forward.DefaultListLimit, fmt.Sprintf("most events to list (1 to %d)", admin.MaxListLimit))
		fs.Uint64Var(&c.after, "after", 0, "list events after this sequence number (the previous page's next)")
	case "stats", "show":
	default:
		filters()
		fs.BoolVar(&c.all, "all", false, "every event of the state the action works on")
	}
	return fs
}

// parseInterspersed parses args with fs, flags and positional arguments in
// any order; the positional ones are appended to pos.
func parseInterspersed(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis string, pos *[]string) (bool, error) {
	for {
		help, err := parseFlags(fs, args, stdout, synopsis)
		if help || err != nil {
			return help, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return false, nil
		}
		*pos = append(*pos, rest[0])
		args = rest[1:]
	}
}

// resolve checks the command line and fills the defaults.
func (c *outboxCmd) resolve(getenv func(string) string) error {
	name := "imedge outbox " + c.sub
	switch c.sub {
	case "stats", "list":
		if len(c.refs) > 0 {
			return usageErrorf("%s: unexpected argument %q", name, c.refs[0])
		}
	case "show":
		if len(c.refs) != 1 {
			return usageErrorf("%s: give one event id or sequence number", name)
		}
	}
	if (c.certFile == "") != (c.key == "") {
		return usageErrorf("%s: --admin-cert and --admin-key go together", name)
	}
	if c.certFile != "" && c.caFile == "" {
		return usageErrorf("%s: --admin-cert needs --admin-cacert (the CA of the admin listener's certificate)", name)
	}
	sel, err := c.selection(time.Now())
	if err != nil {
		return err
	}
	c.sel = sel
	if !slices.Contains([]string{"stats", "list", "show"}, c.sub) {
		filtered := sel.Command != "" || sel.Destination != "" || !sel.Since.IsZero() || !sel.Until.IsZero()
		switch {
		case sel.All && (filtered || len(sel.Refs) > 0):
			return usageErrorf("%s: --all selects every event: give it without refs or filters", name)
		case !sel.All && !filtered && len(sel.Refs) == 0:
			return usageErrorf("%s: give refs, a filter (--command, --destination, --since, --until) or --all", name)
		}
	}
	var st stateConfig
	if c.stateDir != "" {
		st.Dir = c.stateDir
	}
	st.resolve(c.stateDir != "", getenv)
	st.SpoolDir = c.spoolDir
	c.stateDir, c.spoolDir = st.Dir, st.spoolDir()
	if c.credFile == "" {
		c.credFile = credentialPath(c.stateDir)
	}
	return nil
}

// operator connects to the running imedge, or, when no admin listener
// answers, opens the outbox directory (read-only for reads); it says on
// stderr which.
func (c *outboxCmd) operator(ctx context.Context, stderr io.Writer) (admin.Operator, func(), error) {
	name := "outbox " + c.sub
	cl, err := admin.NewClient(admin.ClientOptions{Addr: c.adminAddr, CAFile: c.caFile, CertFile: c.certFile, KeyFile: c.key,
		CredentialFile: c.credFile, Timeout: c.timeout})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	err = cl.Ping(ctx)
	if err == nil {
		fmt.Fprintf(stderr, "imedge outbox: using the running imedge at %s\n", cl.URL())
		return credentialHint{cl, c.credFile}, cl.Close, nil
	}
	cl.Close()
	if !errors.Is(err, admin.ErrUnreachable) {
		return nil, nil, fmt.Errorf("%s: admin listener %s: %w", name, c.adminAddr, err)
	}
	readOnly := c.sub == "stats" || c.sub == "list" || c.sub == "show"
	if _, serr := os.Stat(filepath.Join(c.spoolDir, forward.FileName)); serr != nil && !readOnly {
		return nil, nil, fmt.Errorf("%s: no imedge answers at %s and there is no outbox in %s: %w", name, c.adminAddr, c.spoolDir, serr)
	}
	box, oerr := forward.OpenOutbox(forward.OutboxOptions{Dir: c.spoolDir, LockTimeout: time.Second, ReadOnly: readOnly})
	if errors.Is(oerr, forward.ErrLocked) {
		return nil, nil, fmt.Errorf("%s: %s is held by a running imedge, but no admin listener answers at %s (%v): "+
			"give that imedge's --admin address", name, c.spoolDir, c.adminAddr, err)
	}
	if oerr != nil {
		return nil, nil, fmt.Errorf("%s: no imedge answers at %s; opening %s: %w", name, c.adminAddr, c.spoolDir, oerr)
	}
	fmt.Fprintf(stderr, "imedge outbox: no imedge answers at %s; using the outbox directory %s (imedge stopped)\n", c.adminAddr, c.spoolDir)
	return admin.Local{Outbox: box}, func() { box.Close() }, nil
}

// credentialHint adds to a credential that cannot be read who may read
// it.
type credentialHint struct {
	*admin.Client
	file string
}

func (h credentialHint) hint(err error) error {
	if errors.Is(err, admin.ErrNoCredential) {
		return fmt.Errorf("%w (the local credential, %s, is readable by the imedge user and root; "+
			"or use mutual TLS: --admin-cacert, --admin-cert, --admin-key)", err, h.file)
	}
	return err
}

func (h credentialHint) OutboxStats(ctx context.Context) (admin.OutboxStats, error) {
	st, err := h.Client.OutboxStats(ctx)
	return st, h.hint(err)
}

func (h credentialHint) ListEvents(ctx context.Context, q admin.ListQuery) (admin.EventPage, error) {
	p, err := h.Client.ListEvents(ctx, q)
	return p, h.hint(err)
}

func (h credentialHint) ShowEvent(ctx context.Context, ref string) (admin.Event, error) {
	ev, err := h.Client.ShowEvent(ctx, ref)
	return ev, h.hint(err)
}

func (h credentialHint) Act(ctx context.Context, a admin.Action, s admin.Selection) (admin.ActionResult, error) {
	r, err := h.Client.Act(ctx, a, s)
	return r, h.hint(err)
}

// selection is the command line's refs and filters.
func (c *outboxCmd) selection(now time.Time) (admin.Selection, error) {
	s := admin.Selection{Refs: c.refs, Command: c.command, Destination: c.destination, All: c.all}
	for _, t := range []struct {
		flag, value string
		dst         *time.Time
	}{{"since", c.since, &s.Since}, {"until", c.until, &s.Until}} {
		if t.value == "" {
			continue
		}
		at, err := parseWhen(t.value, now)
		if err != nil {
			return s, usageErrorf("imedge outbox %s: --%s %q: %v", c.sub, t.flag, t.value, err)
		}
		*t.dst = at
	}
	return s, nil
}

// parseWhen reads an RFC 3339 time, a date (UTC midnight) or a duration
// ago.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("want an RFC 3339 time, YYYY-MM-DD or a duration ago such as 2h")
}

// print writes v as JSON with --json, else calls text.
func (c *outboxCmd) print(stdout io.Writer, v any, text func()) error {
	if c.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text()
	return nil
}

func (c *outboxCmd) stats(ctx context.Context, op admin.Operator, stdout io.Writer) error {
	st, err := op.OutboxStats(ctx)
	if err != nil {
		return fmt.Errorf("outbox stats: %w", err)
	}
	return c.print(stdout, st, func() {
		fmt.Fprintf(stdout, "pending:        %d events, %d bytes\n", st.Pending, st.PendingBytes)
		if st.Unapplied > 0 {
			fmt.Fprintf(stdout, "                %d of them only in the journal (left by a crash; stored at the next start)\n", st.Unapplied)
		}
		if !st.OldestPending.IsZero() {
			fmt.Fprintf(stdout, "oldest pending: %s (%s ago)\n", st.OldestPending.UTC().Format(time.RFC3339), time.Since(st.OldestPending).Round(time.Second))
		}
		fmt.Fprintf(stdout, "dead letters:   %d events, %d bytes\n", st.DeadLetters, st.DeadLetterBytes)
		fmt.Fprintf(stdout, "retained:       %d delivered events, %d bytes\n", st.Retained, st.RetainedBytes)
		fmt.Fprintf(stdout, "limits:         %d events, %d bytes (pending plus dead letters)\n", st.MaxEvents, st.MaxBytes)
		if st.StoreFailing {
			fmt.Fprintln(stdout, "store failing:  journaled events cannot be stored; callbacks are refused")
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nDESTINATION\tPENDING\tDEAD\tRETAINED\tOLDEST PENDING\tSHARE (EVENTS)")
		for _, d := range st.Destinations {
			oldest := "-"
			if !d.OldestPending.IsZero() {
				oldest = time.Since(d.OldestPending).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\n", d.Name, d.Pending, d.DeadLetters, d.Retained, oldest, d.MaxEvents)
		}
		tw.Flush()
	})
}

func (c *outboxCmd) list(ctx context.Context, op admin.Operator, stdout, stderr io.Writer) error {
	p, err := op.ListEvents(ctx, admin.ListQuery{State: forward.State(c.state), Selection: c.sel, After: c.after, Limit: c.limit})
	if err != nil {
		return fmt.Errorf("outbox list: %w", err)
	}
	err = c.print(stdout, p, func() {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tSTATE\tEVENT ID\tDESTINATION\tCOMMAND\tCLIENT IP\tACCEPTED\tATTEMPTS\tLAST ERROR")
		for _, e := range p.Events {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Seq, e.State, e.ID, e.Destination, e.Command, e.ClientIP,
				e.AcceptedAt.UTC().Format(time.RFC3339), e.Attempts, e.LastError)
		}
		tw.Flush()
	})
	if err == nil && p.Next != 0 && !c.asJSON {
		fmt.Fprintf(stderr, "imedge outbox: more events: --after %d\n", p.Next)
	}
	return err
}

func (c *outboxCmd) show(ctx context.Context, op admin.Operator, stdout io.Writer) error {
	ev, err := op.ShowEvent(ctx, c.refs[0])
	if err != nil {
		return fmt.Errorf("outbox show: %w", err)
	}
	return c.print(stdout, ev, func() {
		ts := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339Nano)
		}
		line := func(k string, v any) { fmt.Fprintf(stdout, "%-13s %v\n", k+":", v) }
		line("seq", ev.Seq)
		line("event id", ev.ID)
		line("state", ev.State)
		line("destination", ev.Destination)
		line("accepted", ts(ev.AcceptedAt))
		line("sdkappid", ev.SdkAppid)
		line("command", ev.Command)
		line("client ip", ev.ClientIP)
		line("platform", ev.OptPlatform)
		line("identity", ev.ClientIdentity)
		line("request id", ev.RequestID)
		line("attempts", ev.Attempts)
		switch ev.State {
		case forward.StatePending:
			line("next attempt", ts(ev.NextAttempt))
		case forward.StateDead:
			line("dead since", ts(ev.DeadAt))
		case forward.StateDelivered:
			line("delivered", ts(ev.DeliveredAt))
		}
		line("last error", ev.LastError)
		fmt.Fprintf(stdout, "history (last %d attempts, oldest first):\n", forward.HistoryLen)
		if len(ev.History) == 0 {
			fmt.Fprintln(stdout, "  none")
		}
		for _, a := range ev.History {
			outcome := "delivered"
			if a.Error != "" {
				outcome = a.Error
			}
			fmt.Fprintf(stdout, "  %s  %-10s  %s\n", a.At.UTC().Format(time.RFC3339Nano), a.Duration, outcome)
		}
		fmt.Fprintf(stdout, "body (%d bytes):\n", ev.BodySize)
		var body bytes.Buffer
		switch {
		case json.Compact(&body, ev.Body) == nil:
		case len(ev.BodyBase64) > 0:
			body.WriteString("(not JSON, base64) ")
			body.WriteString(base64.StdEncoding.EncodeToString(ev.BodyBase64))
		}
		fmt.Fprintln(stdout, body.String())
	})
}

// actionDone says what an action did, in the words an operator expects.
func actionDone(a admin.Action) string {
	return map[admin.Action]string{
		admin.ActionReplayDead:      "dead letter(s) queued for delivery",
		admin.ActionReplayDelivered: "delivered event(s) queued for delivery again",
		admin.ActionRetry:           "pending event(s) made due now",
		admin.ActionPurgeDead:       "dead letter(s) purged",
	}[a]
}

func (c *outboxCmd) act(ctx context.Context, op admin.Operator, a admin.Action, stdout, stderr io.Writer) error {
	res, err := op.Act(ctx, a, c.sel)
	if err != nil && res.Count == 0 {
		return fmt.Errorf("outbox %s: %w", a, err)
	}
	perr := c.print(stdout, res, func() {
		fmt.Fprintf(stdout, "%d %s", res.Count, actionDone(a))
		if _, local := op.(admin.Local); local && a != admin.ActionPurgeDead && res.Count > 0 {
			fmt.Fprint(stdout, " (delivered when imedge starts)")
		}
		fmt.Fprintln(stdout)
	})
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "imedge outbox: skipped: %s\n", s)
	}
	switch {
	case perr != nil:
		return perr
	case err != nil:
		return fmt.Errorf("outbox %s: %w", a, err)
	case len(res.NotFound) > 0:
		return fmt.Errorf("outbox %s: %d ref(s) match no %s event: %s", a, len(res.NotFound), a.State(), strings.Join(res.NotFound, ", "))
	case len(res.Skipped) > 0:
		return fmt.Errorf("outbox %s: %d matching event(s) skipped", a, len(res.Skipped))
	}
	return nil
}
