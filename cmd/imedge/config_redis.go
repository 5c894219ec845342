package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/imedge/imedge/admin"
	"github.com/imedge/imedge/audit"
	"github.com/imedge/imedge/edge"
	"github.com/imedge/imedge/receiver"
	"github.com/imedge/imedge/redisstate"
)

// clusterConfig configures running several instances behind a layer-4
// balancer: shared dedupe and limits on Redis (--redis-*) and PROXY
// protocol v2 from the balancer (--proxy-protocol). See docs/deploy.md.
// The zero value (no Redis, no PROXY protocol) is the single-instance
// default.
type clusterConfig struct {
	RedisURL      string         // --redis-url; "" keeps dedupe and limits in process
	PasswordFile  string         // --redis-password-file (else IMEDGE_REDIS_PASSWORD)
	CAFile        string         // --redis-ca
	Policy        string         // --redis-policy
	Timeout       time.Duration  // --redis-timeout
	ProxyProtocol []netip.Prefix // --proxy-protocol CIDRs of trusted balancers

	password []byte // read by readSecrets, never a flag value
}

// Cluster defaults, documented in docs/reference.md's flag table.
const (
	defaultRedisPolicy  = "fail-open"
	defaultRedisTimeout = redisstate.DefaultTimeout
)

func (c *clusterConfig) register(fs *flagSet) {
	fs.group(groupCluster, func() {
		fs.StringVar(&c.RedisURL, "redis-url", "", "share dedupe keys and rate limits with other instances on Redis: redis://[user@]host:port[/db] or rediss:// (TLS); no password in the URL (default: in-process)")
		fs.Var(pathFlag{&c.PasswordFile}, "redis-password-file", "file holding the Redis password (else the IMEDGE_REDIS_PASSWORD environment variable)")
		fs.Var(pathFlag{&c.CAFile}, "redis-ca", "PEM bundle of CAs that verify a rediss:// server (default: system roots)")
		fs.StringVar(&c.Policy, "redis-policy", defaultRedisPolicy, "while Redis is unreachable: fail-open (use this instance's local dedupe and limits) or fail-closed (answer 503 redis_unavailable)")
		fs.DurationVar(&c.Timeout, "redis-timeout", defaultRedisTimeout, "deadline of one Redis operation; slower counts as unreachable")
		fs.Var(prefixFlag{&c.ProxyProtocol}, "proxy-protocol", "trusted balancer CIDR (repeatable) whose connections must start with a PROXY protocol v2 header; PROXY headers from other peers are refused")
	})
}

// readSecrets reads the Redis password from --redis-password-file or
// IMEDGE_REDIS_PASSWORD.
func (c *clusterConfig) readSecrets(getenv func(string) string) error {
	p, _, err := readSecret(c.PasswordFile, "IMEDGE_REDIS_PASSWORD", getenv)
	if err != nil {
		return fmt.Errorf("--redis-password-file: %w", err)
	}
	c.password = p
	return nil
}

func (c clusterConfig) validate(Config) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.RedisURL != "" {
		// Check the URL without connecting: New only parses until Start.
		if _, err := c.redisOptions(); err != nil {
			if errors.Is(err, redisstate.ErrPasswordInURL) {
				bad("--redis-url must not contain a password: use --redis-password-file or IMEDGE_REDIS_PASSWORD")
			} else {
				bad("--redis-url: %w", err)
			}
		}
		if c.CAFile != "" {
			if _, err := os.Stat(c.CAFile); err != nil {
				bad("--redis-ca: %w", err)
			}
		}
	} else if c.CAFile != "" || c.PasswordFile != "" {
		bad("--redis-ca and --redis-password-file need --redis-url")
	}
	if _, err := redisstate.ParsePolicy(c.Policy); c.Policy != "" && err != nil {
		bad("--redis-policy %q: want fail-open or fail-closed", c.Policy)
	}
	if c.Timeout < 0 || c.Timeout > 2*time.Second {
		bad("--redis-timeout must be 1ns..2s (IM waits 2 s for an answer)")
	}
	if len(c.ProxyProtocol) > 0 {
		if _, err := edge.NewProxyStage(edge.ProxyOptions{Trusted: c.ProxyProtocol}); err != nil {
			bad("--proxy-protocol: %w", err)
		}
	}
	return errs
}

// redisOptions builds the redisstate options (checked by redisstate.New's
// own parser through a dry run in validate).
func (c clusterConfig) redisOptions() (redisstate.Options, error) {
	policy := redisstate.FailOpen
	if c.Policy != "" {
		p, err := redisstate.ParsePolicy(c.Policy)
		if err != nil {
			return redisstate.Options{}, err
		}
		policy = p
	}
	o := redisstate.Options{URL: c.RedisURL, Password: string(c.password), CAFile: c.CAFile, Timeout: c.Timeout, Policy: policy}
	return o, redisstate.CheckURL(c.RedisURL)
}

// stages returns the edge stages for --proxy-protocol: the PROXY v2 reader,
// first in the chain, or none when --proxy-protocol is not set. An error
// stops imedge: serving without the PROXY requirement the operator asked
// for would attribute every connection to the balancer.
func (c clusterConfig) stages(aud *audit.Logger, logger *slog.Logger) ([]edge.Stage, error) {
	if len(c.ProxyProtocol) == 0 {
		return nil, nil
	}
	st, err := edge.NewProxyStage(edge.ProxyOptions{Trusted: c.ProxyProtocol, Audit: aud, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("--proxy-protocol: %w", err)
	}
	logger.Info("PROXY protocol v2 required from trusted balancers", "trusted", fmt.Sprint(c.ProxyProtocol))
	return []edge.Stage{st.Stage()}, nil
}

// sharedState is the Redis-backed Seen and Limiter, or the local ones when
// --redis-url is not set (client nil).
type sharedState struct {
	client  *redisstate.Client
	seen    receiver.Seen
	limiter receiver.Limiter
}

// openShared connects to Redis when --redis-url is set and wraps the local
// dedupe set and limiter (the fail-open fallback) in their shared
// counterparts. The caller closes the client.
func (c clusterConfig) openShared(cfg Config, local receiver.Seen, localLimiter receiver.Limiter, logger *slog.Logger) (sharedState, error) {
	if c.RedisURL == "" {
		return sharedState{seen: local, limiter: localLimiter}, nil
	}
	o, err := c.redisOptions()
	if err != nil {
		return sharedState{}, fmt.Errorf("--redis-url: %w", err)
	}
	if host, err := os.Hostname(); err == nil {
		o.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	o.Logger = logger
	redisstate.RouteLibraryLog(logger) // go-redis's own lines, as JSON records
	client, err := redisstate.New(o)
	if err != nil {
		return sharedState{}, fmt.Errorf("connecting to redis: %w", err)
	}
	seen, err := client.NewDedupe(redisstate.DedupeOptions{Window: cfg.State.DedupeWindow, Local: local})
	if err != nil {
		client.Close()
		return sharedState{}, err
	}
	st := sharedState{client: client, seen: seen}
	if l := cfg.Limits; l.Rate > 0 {
		l, err := client.NewLimiter(redisstate.LimiterOptions{
			Rate: l.Rate, Burst: l.Burst, IPv6Prefix: l.IPv6Prefix, Exempt: l.Exempt, Local: localLimiter,
		})
		if err != nil {
			client.Close()
			return sharedState{}, err
		}
		st.limiter = l
	}
	logger.Info("shared state on redis", "url", redactURL(c.RedisURL), "policy", client.Policy().String(),
		"timeout", c.Timeout.String(), "up", client.Stats().Up, "password", len(c.password) > 0)
	return st, nil
}

// redisStats adapts the client for the admin metrics; nil when off.
func (s sharedState) redisStats() func() admin.RedisStats {
	if s.client == nil {
		return nil
	}
	return func() admin.RedisStats {
		r := s.client.Stats()
		return admin.RedisStats{Up: r.Up, Fallbacks: r.Fallbacks, Refused: r.Refused, Errors: r.Errors}
	}
}

// close closes the Redis client, if any.
func (s sharedState) close() {
	if s.client != nil {
		_ = s.client.Close()
	}
}
