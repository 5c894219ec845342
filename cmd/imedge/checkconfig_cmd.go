package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/tlsconf"
)

// runCheckConfig validates a configuration the way serve would load it,
// without listening, and prints the effective configuration.
func runCheckConfig(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, fs, help, err := parseServeConfig(args, getenv, stderr)
	if help {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Dev {
		return errors.New("check-config: --dev makes its own configuration; nothing to check")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var errs []error
	ca, err := tlsconf.ParseClientAuth(cfg.ClientAuth)
	if err != nil {
		errs = append(errs, err)
	} else {
		opts := tlsconf.Options{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, ClientCAFile: cfg.ClientCAFile,
			ClientCRLFiles: cfg.ClientCRLFiles, CRLFailClosed: cfg.CRLFailClosed, ClientAuth: ca,
			AllowedClients: cfg.AllowClients, AllowedClientsFile: cfg.AllowClientsFile, ServerName: cfg.ServerName, Curves: cfg.Curves}
		cfg.ACME.apply(&opts)
		if src, err := tlsconf.New(ctx, opts); err != nil {
			errs = append(errs, err)
		} else {
			src.Close()
		}
	}
	if c, err := forward.NewClient(forward.ClientOptions{URL: cfg.ForwardURL, CAFile: cfg.ForwardCA,
		CertFile: cfg.ForwardCert, KeyFile: cfg.ForwardKey, Timeout: cfg.ForwardTimeout,
		SigningSecret: cfg.ForwardSecret, MaxConns: cfg.ForwardConcurrency}); err != nil {
		errs = append(errs, err)
	} else {
		c.Close()
	}
	if err := checkWritableDir(cfg.spoolDir()); err != nil {
		errs = append(errs, fmt.Errorf("--spool-dir: %w", err))
	}
	if cfg.AuditLog != "" {
		if err := checkWritableDir(filepath.Dir(cfg.AuditLog)); err != nil {
			errs = append(errs, fmt.Errorf("--audit-log: %w", err))
		}
	}
	if len(errs) > 0 {
		return &configError{errs}
	}
	fmt.Fprintf(stdout, "# imedge check-config: configuration OK\n%s", effectiveConfig(fs, cfg))
	return nil
}

// checkWritableDir creates dir if needed and proves a file can be written in it.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".imedge-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
