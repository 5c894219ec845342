package main

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/forward"
)

// stateConfig is where imedge keeps its state (the outbox) and the bounds
// of what it remembers (packages forward and dedupe).
type stateConfig struct {
	Dir          string        // --state-dir, resolved (see resolve)
	SpoolDir     string        // --spool-dir; "" means DIR/outbox
	MaxEvents    int           // --outbox-max-events
	MaxBytes     int64         // --outbox-max-bytes
	DedupeWindow time.Duration // --dedupe-window
	DedupeSize   int           // --dedupe-size

	dirSource string // where Dir came from: "state-dir" (the flag or the config file), "STATE_DIRECTORY", "default" or "dev"
}

// defaultStateDir is the state directory when neither --state-dir nor
// systemd's $STATE_DIRECTORY names one. It is absolute on purpose: state
// never follows the working directory, so a start from another directory
// cannot come up with an empty outbox.
const defaultStateDir = "/var/lib/imedge"

func (s *stateConfig) register(fs *flagSet) {
	s.MaxBytes = forward.DefaultMaxBytes
	fs.group(groupAdmin, func() {
		fs.StringVar(&s.Dir, "state-dir", "", "state directory, absolute (default $STATE_DIRECTORY when systemd sets it, else "+defaultStateDir+")")
		fs.StringVar(&s.SpoolDir, "spool-dir", "", "outbox directory, absolute (default STATE-DIR/outbox)")
	})
	fs.group(groupLimits, func() {
		fs.IntVar(&s.MaxEvents, "outbox-max-events", forward.DefaultMaxEvents, "stored events (pending and dead) before callbacks are refused with 503")
		fs.Var(sizeFlag{&s.MaxBytes}, "outbox-max-bytes", "stored bytes (pending and dead) before callbacks are refused with 503")
		fs.DurationVar(&s.DedupeWindow, "dedupe-window", dedupe.DefaultTTL, "identical callbacks within this window are one event")
		fs.IntVar(&s.DedupeSize, "dedupe-size", dedupe.DefaultSize, "largest number of remembered event ids")
	})
}

// resolve fills Dir when the flag was not given: $STATE_DIRECTORY (its first
// entry) when systemd sets it, else the fixed default.
func (s *stateConfig) resolve(flagSet bool, getenv func(string) string) {
	switch {
	case flagSet:
		s.dirSource = "state-dir"
	case getenv("STATE_DIRECTORY") != "":
		s.Dir, s.dirSource = strings.Split(getenv("STATE_DIRECTORY"), ":")[0], "STATE_DIRECTORY"
	default:
		s.Dir, s.dirSource = defaultStateDir, "default"
	}
}

// spoolDir is the outbox directory.
func (s stateConfig) spoolDir() string {
	if s.SpoolDir != "" {
		return s.SpoolDir
	}
	return filepath.Join(s.Dir, "outbox")
}

func (s stateConfig) validate(c Config) []error {
	var p problems
	// --dev keeps its state under --dev-dir, relative or not.
	if !c.Dev {
		if !filepath.IsAbs(s.Dir) {
			p.add("--state-dir %q must be an absolute path: state never follows the working directory", s.Dir)
		}
		if s.SpoolDir != "" && !filepath.IsAbs(s.SpoolDir) {
			p.add("--spool-dir %q must be an absolute path", s.SpoolDir)
		}
	}
	if len(p) == 0 {
		if err := writableDir(s.spoolDir()); err != nil {
			p.add("--spool-dir %s: %w", s.spoolDir(), err)
		}
	}
	if s.MaxEvents < 1 {
		p.add("--outbox-max-events must be positive")
	}
	p.positive("dedupe-window", s.DedupeWindow)
	if s.DedupeSize < 1 {
		p.add("--dedupe-size must be positive")
	}
	return p
}
