package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imedge/imedge/forward"
)

const outboxUsage = `Usage:
  imedge outbox stats   [--spool-dir DIR] [--json]
  imedge outbox list    [--spool-dir DIR] [--dead] [--limit N] [--json]
  imedge outbox show    [--spool-dir DIR] [--json] ID|SEQ
  imedge outbox replay  [--spool-dir DIR] [--dead] [ID|SEQ...]
  imedge outbox purge   [--spool-dir DIR] --dead

The outbox is locked by a running imedge: stop the server first.
--spool-dir defaults to $STATE_DIRECTORY/outbox, else /var/lib/imedge/outbox.
`

func runOutbox(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, outboxUsage)
		return errUsage
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(stdout, outboxUsage)
		return nil
	}
	fs := flag.NewFlagSet("imedge outbox "+sub, flag.ContinueOnError)
	dir := fs.String("spool-dir", "", "outbox directory")
	asJSON := fs.Bool("json", false, "print JSON")
	dead := fs.Bool("dead", false, "the dead-letter list")
	limit := fs.Int("limit", 100, "most entries to list")
	if help, err := parseFlags(fs, args[1:], stdout, outboxUsage); help || err != nil {
		return err
	}
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("outbox %s: flags go before event ids (%q)", sub, a)
		}
	}
	if *dir == "" {
		var st stateConfig
		st.resolve(false, getenv)
		*dir = st.spoolDir()
	}
	switch sub {
	case "stats", "list", "show", "replay", "purge":
	default:
		return usageErrorf("imedge outbox: unknown subcommand %q%s", sub,
			suggestWord(sub, []string{"stats", "list", "show", "replay", "purge"}))
	}
	readOnly := sub == "stats" || sub == "list" || sub == "show"
	box, err := forward.OpenOutbox(forward.OutboxOptions{Dir: *dir, LockTimeout: time.Second, ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("outbox %s: %w", sub, err)
	}
	defer box.Close()
	ctx := context.Background()
	out := func(v any, text func()) error {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		text()
		return nil
	}
	switch sub {
	case "stats":
		st, err := box.Stats()
		if err != nil {
			return err
		}
		return out(st, func() {
			fmt.Fprintf(stdout, "pending:        %d events, %d bytes\n", st.Pending, st.PendingBytes)
			if st.Unapplied > 0 {
				fmt.Fprintf(stdout, "                %d of them only in the journal (left by a crash; stored at the next start)\n", st.Unapplied)
			}
			if !st.OldestPending.IsZero() {
				fmt.Fprintf(stdout, "oldest pending: %s (%s ago)\n", st.OldestPending.UTC().Format(time.RFC3339), time.Since(st.OldestPending).Round(time.Second))
			}
			fmt.Fprintf(stdout, "dead letters:   %d\n", st.Dead)
		})
	case "list":
		state := forward.StatePending
		if *dead {
			state = forward.StateDead
		}
		page, err := box.List(ctx, forward.Query{State: state, Limit: *limit})
		if err != nil {
			return err
		}
		entries := page.Entries
		return out(entries, func() {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tEVENT ID\tACCEPTED\tCLIENT IP\tATTEMPTS\tLAST ERROR")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", e.Seq, e.Event.ID, e.AcceptedAt.UTC().Format(time.RFC3339), e.Event.ClientIP, e.Attempts, e.LastError)
			}
			tw.Flush()
		})
	case "show":
		if fs.NArg() != 1 {
			return fmt.Errorf("outbox show: give one event id")
		}
		e, err := box.Show(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		return out(e, func() {
			ev := e.Event
			fmt.Fprintf(stdout, "seq:          %d\nevent id:     %s\nstate:        %s\naccepted:     %s\nsdkappid:     %s\ncommand:      %s\nclient ip:    %s\nplatform:     %s\nidentity:     %s\nrequest id:   %s\nattempts:     %d\nlast error:   %s\nbody (%d bytes):\n%s\n",
				e.Seq, ev.ID, e.State, e.AcceptedAt.UTC().Format(time.RFC3339Nano),
				ev.AppID, ev.Command, ev.ClientIP, ev.OptPlatform, ev.Identity, ev.RequestID, e.Attempts, e.LastError, e.BodySize, ev.Body)
		})
	case "replay":
		replay := box.RetryNow
		if *dead {
			replay = box.ReplayDead
		}
		n, err := replay(ctx, forward.Filter{Refs: fs.Args()})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d event(s) queued for delivery at the next start\n", n)
		return nil
	case "purge":
		if !*dead {
			return fmt.Errorf("outbox purge: only --dead can be purged (pending events are never thrown away)")
		}
		n, err := box.PurgeDead(ctx, forward.Filter{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead letter(s) purged\n", n)
		return nil
	}
	return nil
}
