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

const usage = `imedge: the mutual-TLS edge receiver for Tencent Cloud IM webhooks

Usage:
  imedge serve [flags]          receive callbacks and deliver them to the internal URL
  imedge serve --dev            run with a throwaway PKI and a built-in sink (try it first)
  imedge check-config [flags]   validate a configuration (--config FILE and/or flags) and print it
  imedge certs SUBCOMMAND       create a CA, issue and inspect certificates
  imedge outbox SUBCOMMAND      inspect, replay and purge the durable outbox (server stopped)
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
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "outbox":
		return runOutbox(args[1:], stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], getenv, stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], getenv, stdout, stderr)
	case "sink": // hidden: the counting internal service of scripts/bench.sh
		return runSink(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// parseFlags parses args with fs, mapping -h to a nil error after printing
// usage and other errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, errUsage
	}
	return false, nil
}
