package main

import "flag"

// edgeConfig configures the hardening of the public listener (connection
// limits, source allow-list, handshake timeout, HTTP/2 limits, sandbox).
type edgeConfig struct{}

func (e *edgeConfig) register(fs *flag.FlagSet) {}

func (e edgeConfig) validate(c Config) []error { return nil }
