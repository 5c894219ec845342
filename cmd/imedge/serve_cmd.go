package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
)

// runServe is `imedge serve`: parse, validate, build the Server and run it
// until ctx ends.
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, fs, err := parseServeConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fs.printHelp(stdout, serveSynopsis, serveExamples)
		return nil
	}
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if l, err := parseLevel(cfg.Logs.Level); err == nil {
		level.Set(l)
	}
	logger := newLogger(stderr, cfg.Logs.Format, level)

	var dev *devEnv
	if cfg.Dev {
		if dev, err = setUpDev(ctx, &cfg, stdout, logger); err != nil {
			return err
		}
		defer dev.Close()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	srv, err := NewServer(ctx, cfg, logger, level, stderr)
	if err != nil {
		return err
	}
	if !cfg.Dev {
		srv.enableReload(fs, func() (Config, *flagSet, error) { return parseServeConfig(args, getenv) })
	}
	return srv.Run(ctx, func(addr string) {
		if dev != nil {
			dev.PrintWelcome(addr)
		}
	})
}
