package redisstate

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults applied to zero [Options] fields.
const (
	// DefaultTimeout bounds one Redis operation. IM waits 2 s for an
	// answer; a slow Redis must not eat that budget, so a round trip that
	// takes longer counts as Redis being unavailable.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultHealthInterval is how often an unavailable (or idle) Redis is
	// pinged.
	DefaultHealthInterval = time.Second
)

// Policy decides what happens to a callback while Redis is unreachable.
type Policy int

const (
	// FailOpen answers from the local, per-instance state instead.
	FailOpen Policy = iota
	// FailClosed refuses the callback with 503 redis_unavailable.
	FailClosed
)

// String returns "fail-open" or "fail-closed".
func (p Policy) String() string {
	if p == FailClosed {
		return "fail-closed"
	}
	return "fail-open"
}

// ParsePolicy parses "fail-open" or "fail-closed".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "fail-open":
		return FailOpen, nil
	case "fail-closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("parsing policy %q: %w: want fail-open or fail-closed", s, ErrBadOptions)
}

// Options configures a [Client]. URL is required; zero durations take the
// defaults above.
type Options struct {
	// URL is redis://[user@]host:port[/db] or rediss:// for TLS. It must
	// not contain a password.
	URL string
	// Password authenticates (with the URL's user name, if any, as an ACL
	// user). Empty means none.
	Password string
	// CAFile is a PEM bundle that verifies a rediss:// server instead of the
	// system roots.
	CAFile string
	// Timeout bounds each Redis operation (and dialling). Zero means
	// [DefaultTimeout].
	Timeout time.Duration
	// Policy applies while Redis is unreachable.
	Policy Policy
	// HealthInterval is the period of the health-check ping. Zero means
	// [DefaultHealthInterval].
	HealthInterval time.Duration
	// Instance names this process in the in-flight markers it writes
	// (diagnostics only). Empty means a random name.
	Instance string
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
}

// Stats is a snapshot of a [Client]'s state and counters.
type Stats struct {
	// Up reports whether Redis answered the last operation or ping.
	Up bool
	// Fallbacks counts answers given by the local state because Redis was
	// unavailable (fail-open).
	Fallbacks uint64
	// Refused counts operations refused because Redis was unavailable
	// (fail-closed).
	Refused uint64
	// Errors counts failed Redis operations (each marks Redis down).
	Errors uint64
}

// Client is the connection to Redis shared by a [Dedupe] and a [Limiter],
// with the health state that decides between shared and fallback mode.
//
// A Client is created with [New] and must be closed with [Client.Close],
// which stops its health-check goroutine. It is safe for concurrent use.
type Client struct {
	rdb      *redis.Client
	timeout  time.Duration
	policy   Policy
	interval time.Duration
	instance string
	log      *slog.Logger

	up        atomic.Bool
	fallbacks atomic.Uint64
	refused   atomic.Uint64
	errors    atomic.Uint64

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New connects to Redis as o describes and starts the health loop. An
// unreachable Redis is not an error: the Client starts down and the policy
// applies until the first successful ping. It fails on bad options,
// wrapping [ErrBadOptions] or [ErrPasswordInURL].
func New(o Options) (*Client, error) {
	ropt, err := redisOptions(o)
	if err != nil {
		return nil, err
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.Timeout < 0 || o.HealthInterval < 0 {
		return nil, fmt.Errorf("checking durations: %w: negative", ErrBadOptions)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Instance == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.Instance = hex.EncodeToString(b[:])
	}
	ropt.DialTimeout = o.Timeout
	ropt.ReadTimeout = o.Timeout
	ropt.WriteTimeout = o.Timeout
	ropt.PoolTimeout = o.Timeout
	ropt.ContextTimeoutEnabled = true
	ropt.MaxRetries = -1   // no retries inside the IM answer budget
	ropt.DialerRetries = 1 // nor dial retries: the health loop retries every interval
	ropt.DisableIdentity = true
	ropt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	ctx, stop := context.WithCancel(context.Background())
	c := &Client{
		rdb: redis.NewClient(ropt), timeout: o.Timeout, policy: o.Policy, interval: o.HealthInterval,
		instance: o.Instance, log: o.Logger, stop: stop,
	}
	c.up.Store(c.ping(ctx) == nil)
	if !c.up.Load() {
		c.log.Warn("redis unavailable at start", "policy", c.policy.String(), "addr", ropt.Addr)
	}
	c.wg.Go(func() { c.health(ctx) })
	return c, nil
}

// CheckURL checks a Redis URL without connecting: scheme redis or rediss,
// no password (wrapping [ErrPasswordInURL]), otherwise parsable by
// go-redis (wrapping [ErrBadOptions]). Errors never echo the URL.
func CheckURL(raw string) error {
	_, err := parseURL(raw)
	return err
}

// parseURL is CheckURL returning the go-redis options.
func parseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the redis url: %w", ErrBadOptions)
	}
	if _, ok := u.User.Password(); ok {
		return nil, fmt.Errorf("checking the redis url: %w", ErrPasswordInURL)
	}
	if u.Query().Has("password") {
		return nil, fmt.Errorf("checking the redis url query: %w", ErrPasswordInURL)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("checking the redis url scheme %q: %w: want redis or rediss", u.Scheme, ErrBadOptions)
	}
	ropt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the redis url: %w", ErrBadOptions)
	}
	return ropt, nil
}

// redisOptions parses and checks the URL, and sets up TLS.
func redisOptions(o Options) (*redis.Options, error) {
	ropt, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	ropt.Password = o.Password
	if o.CAFile != "" {
		if ropt.TLSConfig == nil {
			return nil, fmt.Errorf("checking the redis ca: %w: a CA file needs a rediss:// url", ErrBadOptions)
		}
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the redis ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("parsing the redis ca %s: %w: no certificate found", o.CAFile, ErrBadOptions)
		}
		ropt.TLSConfig.RootCAs = pool
	}
	if ropt.TLSConfig != nil {
		ropt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return ropt, nil
}

// Close stops the health loop and closes the connections. It is safe to
// call more than once.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.stop()
		c.wg.Wait()
		err = c.rdb.Close()
	})
	return err
}

// Stats returns a snapshot of the Client's state and counters.
func (c *Client) Stats() Stats {
	return Stats{Up: c.up.Load(), Fallbacks: c.fallbacks.Load(), Refused: c.refused.Load(), Errors: c.errors.Load()}
}

// Policy returns the configured policy.
func (c *Client) Policy() Policy { return c.policy }

func (c *Client) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.rdb.Ping(ctx).Err()
}

// health pings Redis every interval until ctx ends: the only way back from
// down to up.
func (c *Client) health(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.ping(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if !c.up.Swap(true) {
				c.log.Info("redis reachable again: shared dedupe and limits resumed")
			}
			continue
		}
		c.markDown("ping", err)
	}
}

// markDown records a failed operation and switches to the policy.
func (c *Client) markDown(op string, err error) {
	c.errors.Add(1)
	if c.up.Swap(false) {
		msg := "redis unavailable: answering from local per-instance state"
		if c.policy == FailClosed {
			msg = "redis unavailable: refusing callbacks with 503 redis_unavailable"
		}
		c.log.Warn(msg, "policy", c.policy.String(), "op", op, "err", err)
	}
}

// failed classifies err from an operation run under parent: nil if err is
// nil or redis.Nil; parent's own error if parent ended (the caller gave
// up, Redis is not to blame; also when its deadline has just passed but
// its timer has not fired yet); otherwise Redis is marked down and err
// returned wrapped in an unavailableError.
func (c *Client) failed(parent context.Context, op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return nil
	}
	if perr := parent.Err(); perr != nil {
		return perr
	}
	if dl, ok := parent.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded // the caller's deadline, not Redis, cut the operation short
	}
	c.markDown(op, err)
	return &unavailableError{err: err}
}

// unavailableError marks an error as "Redis did not answer" so the
// callers can apply the policy.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "redis unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

func isUnavailable(err error) bool {
	var u *unavailableError
	return errors.As(err, &u)
}
