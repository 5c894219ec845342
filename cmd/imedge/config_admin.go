package main

import "flag"

// adminConfig configures the admin listener (health, readiness, metrics,
// status). Owned by the admin/metrics work.
type adminConfig struct{}

func (a *adminConfig) register(fs *flag.FlagSet) {}

func (a adminConfig) validate() []error { return nil }
