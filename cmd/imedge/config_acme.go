package main

import (
	"flag"

	"github.com/imedge/imedge/tlsconf"
)

// acmeConfig configures ACME certificate management for the server
// certificate.
type acmeConfig struct{}

func (a *acmeConfig) register(fs *flag.FlagSet) {}

func (a acmeConfig) validate(c Config) []error { return nil }

// apply copies the ACME settings into the TLS options.
func (a acmeConfig) apply(o *tlsconf.Options) {}
