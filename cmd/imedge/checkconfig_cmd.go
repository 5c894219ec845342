package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

const checkConfigSynopsis = `Usage: imedge check-config [--config FILE] [serve flags]

Validates a configuration exactly as "imedge serve" does before it starts
(the same code: files are read and certificates loaded, directories checked
for writing), changes nothing on disk, and prints the effective
configuration as a config file with absolute paths. Secrets are never
printed. Exits 1 with one line listing every problem.
`

// runCheckConfig validates a configuration the way serve would, without
// listening or writing, and prints the effective configuration.
func runCheckConfig(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	cfg, fs, err := parseServeConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fs.printHelp(stdout, checkConfigSynopsis, "")
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Dev {
		return usageErrorf("imedge check-config: --dev makes its own configuration; nothing to check")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# imedge check-config: configuration OK\n%s", effectiveConfig(fs.FlagSet, cfg))
	return nil
}
