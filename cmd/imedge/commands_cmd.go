package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/decide"
	"github.com/imedge/imedge/forward"
)

const commandsSynopsis = `Usage: imedge commands [--json] [--config FILE] [serve flags]

Prints every IM callback command imedge knows (docs/commands.md), and what
the given configuration does with it: its kind (after: IM ignores the
reply; before/reply: the reply is the app's decision), whether it is served
(--commands), and where it goes: an after-callback's destination (a --route
pattern, or default: --forward-url); a before-callback's --decide service,
or its fallback in observe mode (stored for a --route that names it).
The configuration is read, not validated: run check-config for that.
`

// commandRow is one line of `imedge commands`.
type commandRow struct {
	Command string `json:"command"`
	Family  string `json:"family"`
	Kind    string `json:"kind"`
	Served  bool   `json:"served"`
	Route   string `json:"route"` // where its events or questions go
}

// runCommands prints the catalog and what cfg does with each command.
func runCommands(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	asJSON := false
	rest := make([]string, 0, len(args))
	for _, a := range args {
		if a == "--json" || a == "-json" {
			asJSON = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, fs, err := parseServeConfig(rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fs.optional(groupRequired, "Required by serve (optional here)")
		fs.printHelp(stdout, commandsSynopsis, "")
		return nil
	}
	if err != nil {
		return err
	}
	rows, err := commandRows(catalog.New(), cfg)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMAND\tKIND\tSERVED\tROUTE")
	for _, r := range rows {
		served := "yes"
		if !r.Served {
			served = "no (--commands)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Command, r.Kind, served, r.Route)
	}
	return tw.Flush()
}

// commandRows describes each catalog command under cfg.
func commandRows(cat *catalog.Catalog, cfg Config) ([]commandRow, error) {
	o, errs := cfg.Decide.options(cfg)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var rows []commandRow
	for _, cmd := range cat.Commands() {
		r := commandRow{Command: cmd.Name, Family: cmd.Family, Kind: cmd.Kind.String(),
			Served: len(cfg.IM.Commands) == 0 || matchAnyPattern(cfg.IM.Commands, cmd.Name)}
		dest := cfg.Delivery.destinationOf(cmd.Name)
		switch {
		case !r.Served:
			r.Route = "-"
		case !cmd.Kind.Decides():
			r.Route = destinationLabel(cfg.Delivery, dest)
		default:
			r.Route = decisionLabel(o, cfg.Delivery, cmd.Name, dest)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// destinationLabel names a destination and its URL (without secrets).
func destinationLabel(d deliveryConfig, dest string) string {
	u := d.urlOf(dest)
	if u == "" {
		return dest + " (--forward-url)"
	}
	return dest + " " + redactURL(u)
}

// decisionLabel says how a before-callback is answered: by a --decide
// service, or with its fallback in observe mode, stored for a --route
// that names it.
func decisionLabel(o decide.Options, d deliveryConfig, command, dest string) string {
	for _, t := range o.Targets {
		if catalog.Match(t.Pattern, command) {
			return "decide " + t.Pattern + " " + redactURL(t.URL)
		}
	}
	fallback := "allow"
	for _, f := range o.Fallbacks {
		if catalog.Match(f.Pattern, command) {
			fallback = f.String()
			break
		}
	}
	label := "observe: fallback " + fallback
	if dest != forward.DefaultDestination {
		label += ", stored for " + destinationLabel(d, dest)
	}
	return label
}

// matchAnyPattern reports whether name matches one of patterns.
func matchAnyPattern(patterns []string, name string) bool {
	for _, p := range patterns {
		if catalog.Match(p, name) {
			return true
		}
	}
	return false
}
