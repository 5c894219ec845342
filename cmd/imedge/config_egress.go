package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/egress"
)

// egressConfig admits, besides --allow-source, only IM's callback egress
// addresses, fetched from IM's REST API and kept current (package egress).
// It is the source check that makes a token-only deployment as safe as a
// mutual-TLS one.
type egressConfig struct {
	On        bool          // --im-egress
	Admin     string        // --im-admin: the app's admin account
	KeyFile   string        // --im-secret-key-file
	Key       []byte        // from KeyFile or IMEDGE_IM_SECRET_KEY, never a flag value
	Region    string        // --im-region
	NetTypes  string        // --im-egress-nettype: 5, 6 or both
	Interval  time.Duration // --im-egress-interval
	StartWait time.Duration // --im-egress-start-wait
	APIURL    string        // --im-api-url: replaces the region's REST host
	APICAFile string        // --im-api-ca
	keySource string        // where Key came from, for logs
}

func (e *egressConfig) register(fs *flagSet) {
	fs.group(groupTLS, func() {
		fs.BoolVar(&e.On, "im-egress", false, "admit only IM's callback egress addresses (fetched with GetIPList and kept current) besides --allow-source; needs --im-admin, --im-region and the app's secret key")
		fs.StringVar(&e.Admin, "im-admin", "", "IM app admin account that calls GetIPList (not secret)")
		fs.Var(pathFlag{&e.KeyFile}, "im-secret-key-file", "file holding the IM app's secret key, which signs the admin UserSig (or set IMEDGE_IM_SECRET_KEY)")
		fs.StringVar(&e.Region, "im-region", "", "the IM app's region, which picks the REST host: "+strings.Join(egress.Regions(), ", "))
		fs.StringVar(&e.NetTypes, "im-egress-nettype", "both", "egress lists to take: 5 (Chinese mainland and Hong Kong), 6 (outside China) or both")
		fs.DurationVar(&e.Interval, "im-egress-interval", egress.DefaultInterval, "time between GetIPList fetches")
		fs.DurationVar(&e.StartWait, "im-egress-start-wait", egress.DefaultStartWait, "how long to wait for the first list before listening without it (then only --allow-source peers are admitted until it arrives)")
		fs.StringVar(&e.APIURL, "im-api-url", "", "replace the region's REST host, https://host[:port] (a forward proxy, or a test server)")
		fs.Var(pathFlag{&e.APICAFile}, "im-api-ca", "PEM bundle that verifies the REST host (default: system roots)")
	})
}

// readSecrets reads the secret key from --im-secret-key-file or
// IMEDGE_IM_SECRET_KEY.
func (e *egressConfig) readSecrets(getenv func(string) string) error {
	k, src, err := readSecret(e.KeyFile, "IMEDGE_IM_SECRET_KEY", getenv)
	if err != nil {
		return fmt.Errorf("--im-secret-key-file: %w", err)
	}
	e.Key, e.keySource = k, src
	return nil
}

func (e egressConfig) validate(c Config) []error {
	var p problems
	if !e.On {
		if e.Admin != "" || e.Region != "" || e.APIURL != "" || e.KeyFile != "" {
			p.add("--im-admin, --im-region, --im-api-url and --im-secret-key-file need --im-egress")
		}
		return p
	}
	if e.Admin == "" {
		p.add("--im-egress needs --im-admin, the app admin account that calls GetIPList")
	}
	if len(e.Key) == 0 {
		p.add("--im-egress needs the app's secret key: --im-secret-key-file or IMEDGE_IM_SECRET_KEY")
	}
	if e.Region == "" && e.APIURL == "" {
		p.add("--im-egress needs --im-region (one of %s) or --im-api-url", strings.Join(egress.Regions(), ", "))
	}
	if _, err := parseNetTypes(e.NetTypes); err != nil {
		p.add("--im-egress-nettype: %w", err)
	}
	if e.StartWait < 0 {
		p.add("--im-egress-start-wait must not be negative")
	}
	p.readable("im-api-ca", e.APICAFile, false)
	if len(p) == 0 {
		if _, err := e.options(c, nil); err != nil {
			p = append(p, err)
		}
	}
	return p
}

// options builds the egress Source's options. It loads --im-api-ca and
// checks the rest through egress.New without calling IM.
func (e egressConfig) options(c Config, base *egress.Options) (egress.Options, error) {
	app, err := strconv.ParseUint(c.IM.SdkAppid, 10, 64)
	if err != nil {
		return egress.Options{}, fmt.Errorf("--im-egress: --sdkappid %q: %w", c.IM.SdkAppid, err)
	}
	nts, err := parseNetTypes(e.NetTypes)
	if err != nil {
		return egress.Options{}, fmt.Errorf("--im-egress-nettype: %w", err)
	}
	var pool *x509.CertPool
	if e.APICAFile != "" {
		if pool, _, err = certs.LoadPool(e.APICAFile); err != nil {
			return egress.Options{}, fmt.Errorf("--im-api-ca: %w", err)
		}
	}
	o := egress.Options{
		AppID: app, Identifier: e.Admin, SecretKey: e.Key, Region: e.Region, BaseURL: e.APIURL,
		NetTypes: nts, RootCAs: pool, Interval: e.Interval,
	}
	if base != nil {
		o.Logger = base.Logger
	}
	if _, err := egress.New(o); err != nil {
		return egress.Options{}, fmt.Errorf("--im-egress: %w", err)
	}
	return o, nil
}

// parseNetTypes reads --im-egress-nettype.
func parseNetTypes(s string) ([]egress.NetType, error) {
	switch s {
	case "both", "":
		return []egress.NetType{egress.NetTypeChina, egress.NetTypeOutside}, nil
	case "5":
		return []egress.NetType{egress.NetTypeChina}, nil
	case "6":
		return []egress.NetType{egress.NetTypeOutside}, nil
	}
	return nil, fmt.Errorf("%q: want 5, 6 or both", s)
}

// openEgress starts IM's egress list when --im-egress is on and waits, at
// most --im-egress-start-wait, for the first list before the listener
// opens. Without it imedge still listens, admitting only --allow-source
// peers (none when that is empty) until the list arrives: an outage of
// IM's REST API must not become a crash loop, and nothing outside the
// allow-list gets in meanwhile.
func (s *Server) openEgress(ctx context.Context, _ io.Writer) error {
	e := s.cfg.Egress
	if !e.On {
		return nil
	}
	o, err := e.options(s.cfg, &egress.Options{Logger: s.log})
	if err != nil {
		return err
	}
	src, err := egress.New(o)
	if err != nil {
		return fmt.Errorf("--im-egress: %w", err)
	}
	s.egress = src
	wctx, cancel := context.WithTimeout(ctx, e.StartWait)
	defer cancel()
	if err := src.Refresh(wctx); err != nil {
		s.log.Warn("listening without IM's egress list: only --allow-source peers are admitted until it arrives",
			"err", err, "allow_source", fmt.Sprint(s.cfg.Edge.AllowSource))
	}
	return nil
}
