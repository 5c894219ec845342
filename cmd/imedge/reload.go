package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"sync"
)

// runtimeSetting reports whether SIGHUP applies the setting to a running
// imedge (the URLs of --route and --forward-url, not which routes exist);
// a change to any other needs a restart, which SIGHUP logs naming the
// setting. The TLS files (certificates, keys, CA bundle, CRLs, the
// allow-list file) are re-read on every SIGHUP as well.
func runtimeSetting(name string) bool {
	switch name {
	case "log-level", "rate", "burst", "rate-limit-exempt", "allow-client", "allow-source", "route", "forward-url":
		return true
	}
	return false
}

// configReload re-reads the command line's configuration (the --config
// file, flags, environment) on SIGHUP. It is off in --dev, whose
// configuration is made at start.
type configReload struct {
	reparse func() (Config, *flagSet, error)

	mu        sync.Mutex
	effective map[string]string // setting -> value in force, for /status
}

// enableReload lets SIGHUP re-read the configuration through reparse; fs
// is the flag set the running configuration was parsed with.
func (s *Server) enableReload(fs *flagSet, reparse func() (Config, *flagSet, error)) {
	s.reload = &configReload{reparse: reparse, effective: settingValues(fs)}
}

// settingValues returns every setting of fs (flags other than config, dev
// and dev-dir) with its value. Secrets are read from the files or
// environment variables the *-file settings name, but a URL may still carry
// credentials in its userinfo or query: effectiveSettings redacts them.
func settingValues(fs *flagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag && f.Name != "dev" && f.Name != "dev-dir" {
			out[f.Name] = f.Value.String()
		}
	})
	return out
}

// effectiveSettings returns the settings in force, for /status; nil when the
// configuration cannot be reloaded.
func (s *Server) effectiveSettings() map[string]string {
	if s.reload == nil {
		return nil
	}
	s.reload.mu.Lock()
	defer s.reload.mu.Unlock()
	out := make(map[string]string, len(s.reload.effective))
	for name, v := range s.reload.effective {
		out[name] = urlsInValue.ReplaceAllStringFunc(v, redactURL)
	}
	return out
}

// urlsInValue finds the URLs in a setting's value (--forward-url, the URLs
// of --route and --decide, --redis-url, ...), for redaction.
var urlsInValue = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s,\]]*`)

// reloadConfig re-reads the configuration, validates all of it, applies the
// changed runtime settings and logs the changed settings that need a
// restart. A configuration that does not validate changes nothing.
func (s *Server) reloadConfig(ctx context.Context) {
	r := s.reload
	if r == nil {
		return
	}
	next, fs, err := r.reparse()
	if err == nil {
		err = next.Validate()
	}
	if err != nil {
		s.log.Warn("configuration reload refused; the running configuration stays", "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := settingValues(fs)
	var changed, restart []string
	for name, v := range now {
		if r.effective[name] != v {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	var applied []string
	for _, name := range changed {
		if runtimeSetting(name) && s.canApply(name, next) {
			applied = append(applied, name)
		} else {
			restart = append(restart, name)
		}
	}
	if err := s.applySettings(ctx, applied, next); err != nil {
		s.log.Warn("configuration reload refused; the running configuration stays", "err", err)
		return
	}
	for _, name := range applied {
		r.effective[name] = now[name]
	}
	s.log.Info("configuration reloaded", "applied", applied, "unchanged", len(now)-len(changed))
	if len(restart) > 0 {
		s.log.Warn("configuration changed; restart needed for these settings", "restart_needed", restart)
	}
}

// canApply reports whether a runtime setting's change can be applied to
// this server: a limit can change, but turning the limiter on or off needs
// a restart.
func (s *Server) canApply(name string, next Config) bool {
	switch name {
	case "rate", "burst", "rate-limit-exempt":
		return s.limit != nil && next.Limits.Rate > 0
	case "route":
		return s.sameDestinations(next.Delivery)
	}
	return true
}

// applySettings applies the named runtime settings of next, those that can
// still fail (new delivery clients, the TLS allow-list) first.
func (s *Server) applySettings(ctx context.Context, names []string, next Config) error {
	commitRoutes, abortRoutes := func() {}, func() {}
	if slices.Contains(names, "route") || slices.Contains(names, "forward-url") {
		c, a, err := s.prepareRouteURLs(next.Delivery)
		if err != nil {
			return err
		}
		commitRoutes, abortRoutes = c, a
	}
	if slices.Contains(names, "allow-client") {
		if err := s.tls.ReloadAllowedClients(ctx, next.TLS.AllowClients); err != nil {
			abortRoutes()
			return err
		}
	}
	commitRoutes() // nothing fails from here on
	if slices.Contains(names, "log-level") {
		if l, err := parseLevel(next.Logs.Level); err == nil {
			s.level.Set(l)
		}
	}
	if slices.ContainsFunc(names, func(n string) bool { return n == "rate" || n == "burst" || n == "rate-limit-exempt" }) {
		if err := s.setLimits(next.Limits); err != nil {
			return err
		}
	}
	if slices.Contains(names, "allow-source") && s.edge != nil {
		s.edge.SetAllowSources(next.Edge.AllowSource)
	}
	return nil
}

// setLimits changes the per-ClientIP limits, local and shared.
func (s *Server) setLimits(l limitConfig) error {
	type setter interface {
		SetLimits(float64, int, []netip.Prefix) error
	}
	var errs []error
	for _, lim := range []any{s.limit, s.state.limiter} {
		if st, ok := lim.(setter); ok {
			errs = append(errs, st.SetLimits(l.Rate, l.Burst, l.Exempt))
		}
	}
	return errors.Join(errs...)
}

// logReloadOff says once why SIGHUP does not re-read the configuration.
func (s *Server) logReloadOff() {
	if s.reload == nil {
		s.log.Info("SIGHUP reloads the TLS files only", slog.String("why", "--dev makes its configuration at start"))
	}
}
