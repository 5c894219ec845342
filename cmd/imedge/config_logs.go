package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imedge/imedge/audit"
)

// logConfig is the operational log (stderr), the audit log and the
// optional access log.
type logConfig struct {
	Level         string        // --log-level
	Format        string        // --log-format
	AuditLog      string        // --audit-log; "" means stderr
	AuditInterval time.Duration // --audit-sample-interval
	AuditBurst    int           // --audit-burst
	AccessLog     string        // --access-log; "" writes none
}

func (l *logConfig) register(fs *flagSet) {
	fs.group(groupAdmin, func() {
		fs.Var(pathFlag{&l.AuditLog}, "audit-log", "audit log file, one JSON line per refused callback (default: stderr)")
		fs.DurationVar(&l.AuditInterval, "audit-sample-interval", audit.DefaultInterval, "audit sampling window (0: no sampling)")
		fs.IntVar(&l.AuditBurst, "audit-burst", audit.DefaultBurst, "audit records per reason and ClientIP per window before a summary")
		fs.StringVar(&l.Level, "log-level", "info", "debug, info, warn or error")
		fs.StringVar(&l.Format, "log-format", "json", "json or text")
		fs.Var(pathFlag{&l.AccessLog}, "access-log", "write one JSON line per callback (outcome, command, request id, latency, ...) to this file; reopened on SIGUSR1 like the audit log (default: none)")
	})
}

func (l logConfig) validate(Config) []error {
	var p problems
	if _, err := parseLevel(l.Level); err != nil {
		p.add("--log-level: %w", err)
	}
	if l.Format != "json" && l.Format != "text" {
		p.add("--log-format %q: want json or text", l.Format)
	}
	if l.AuditInterval < 0 || l.AuditBurst < 1 {
		p.add("--audit-sample-interval must not be negative and --audit-burst must be positive")
	}
	if l.AuditLog != "" {
		if err := appendable(l.AuditLog); err != nil {
			p.add("--audit-log: %w", err)
		}
	}
	if l.AccessLog != "" {
		if err := appendable(l.AccessLog); err != nil {
			p.add("--access-log: %w", err)
		}
		if l.AccessLog == l.AuditLog {
			p.add("--access-log and --audit-log must be different files")
		}
	}
	return p
}

// appendable checks, creating nothing, that path can be opened for
// appending: it exists and is writable, or its directory exists and is.
func appendable(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory of %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := accessWrite(dir); err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger returns the operational logger writing to w at a level that
// level holds (so that SIGHUP can change it). Durations are written in one
// encoding everywhere, Go's ("1.5s"), whichever package logged them.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsStrings}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

// durationsAsStrings writes a time.Duration value as Go's duration string,
// not slog's JSON default of nanoseconds.
func durationsAsStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
