package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// errUsage is returned after usage text was printed for a bad command line.
var errUsage = errors.New("bad usage (see above)")

// usageError is a bad command line that one line explains; main exits
// with status 2 for it, as for errUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitCode is the process exit status for err returned by run: 2 for a bad
// command line, 1 for anything else.
func exitCode(err error) int {
	var ue *usageError
	if errors.Is(err, errUsage) || errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `imedge: the hardened edge receiver for Tencent Cloud IM webhooks

Usage:
  imedge serve [flags]          receive callbacks and deliver them to the internal URL
  imedge serve --dev            run with a throwaway PKI and a built-in sink (try it first)
  imedge check-config [flags]   validate a configuration (--config FILE and/or flags) and print it
  imedge commands [flags]       list IM's callback commands and what a configuration does with each
  imedge certs SUBCOMMAND       create a CA, issue and inspect certificates
  imedge outbox SUBCOMMAND      inspect, replay, retry and purge the outbox (running or stopped)
  imedge send [flags]           send one callback as IM would and print the reply (the "verify" button)
  imedge load [flags]           simulate IM's callback client under load and report throughput and latency
  imedge version [--json]       print the version, commit and Go version

Run "imedge COMMAND -h" for the flags of a command.
`

// run is the real main: it parses args and runs one command until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "check-config":
		return runCheckConfig(ctx, args[1:], getenv, stdout, stderr)
	case "commands":
		return runCommands(ctx, args[1:], getenv, stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "outbox":
		return runOutbox(ctx, args[1:], getenv, stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], getenv, stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], getenv, stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageErrorf("unknown command %q%s; run \"imedge help\" for the list", args[0],
		suggestWord(args[0], []string{"serve", "check-config", "commands", "certs", "outbox", "send", "load", "version", "help"}))
}

// suggestWord returns ` (did you mean W?)` for the word of words closest to
// w, or "" when none is close.
func suggestWord(w string, words []string) string {
	best, bestD := "", 1<<30
	for _, c := range words {
		if d := editDistance(w, c); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD > max(2, len(w)/3) {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// parseFlags parses a subcommand's args with fs. -h or --help prints
// synopsis and the flags to stdout and returns help; an unknown flag is one
// line naming the closest known flag (exit status 2); nothing is printed to
// stderr here.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis string) (help bool, err error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err = (&flagSet{FlagSet: fs}).parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, synopsis)
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return true, nil
	}
	return false, err
}
