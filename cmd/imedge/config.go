package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/tlsconf"
)

// Config is everything `imedge serve` needs. Build it with parseServeConfig
// or directly in tests; Validate reports every problem at once.
type Config struct {
	Listen           string
	Path             string
	CertFile         string
	KeyFile          string
	ClientCAFile     string
	ClientCRLFiles   []string
	CRLFailClosed    bool
	ClientAuth       string // "require" or "none"
	AllowClients     []string
	AllowClientsFile string
	ServerName       string
	Curves           []tls.CurveID // nil: Go's default key exchanges
	ReloadInterval   time.Duration
	SdkAppid         string
	Token            []byte // from --token-file or IMEDGE_TOKEN, never a flag value
	TokenSource      string // where Token came from, for logs (never the value)
	SignWindow       time.Duration
	MaxBody          int64
	MaxAccountBytes  int

	ForwardURL         string
	ForwardCA          string
	ForwardCert        string
	ForwardKey         string
	ForwardTimeout     time.Duration
	ForwardSecret      []byte // from --forward-secret-file or IMEDGE_FORWARD_SECRET
	ForwardConcurrency int
	ForwardBatch       int // events per delivery request (JSON array); 0 or 1: one event per request
	ForwardBatchWait   time.Duration
	RetryBase          time.Duration
	RetryMax           time.Duration
	MaxAttempts        int
	MaxAge             time.Duration

	StateDir        string
	SpoolDir        string
	OutboxMaxEvents int
	OutboxMaxBytes  int64
	DedupeWindow    time.Duration
	DedupeSize      int
	Rate            float64
	Burst           int
	RateIPv6Prefix  int
	RateMaxKeys     int
	RateLimitExempt []netip.Prefix
	AuditLog        string
	AuditInterval   time.Duration
	AuditBurst      int
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	ReadHeaderTO    time.Duration
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	MaxHeaderBytes  int
	// GCPercent is the garbage collector's target (as GOGC); 0 leaves the
	// runtime's (GOGC from the environment, else 100), -1 turns it off.
	GCPercent int
	// MemoryLimit is the runtime's soft memory limit in bytes (as
	// GOMEMLIMIT); 0 leaves the runtime's.
	MemoryLimit int64
	// MaxProcs is how many threads run Go code at once (as GOMAXPROCS);
	// 0 leaves the runtime's.
	MaxProcs int
	// JournalSync is how the outbox journal is flushed (auto, io_uring or
	// fdatasync; see forward.JournalSync).
	JournalSync string

	Dev    bool
	DevDir string

	// Feature groups, each with its own flags, defaults and checks in its
	// own file (config_*.go).
	Admin adminConfig
	Edge  edgeConfig
	ACME  acmeConfig
	// Cluster: shared state on Redis and PROXY protocol (config_redis.go).
	Cluster clusterConfig
}

// defaultConfig holds the built-in defaults documented in the README.
func defaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:8443",
		Path:               "/",
		ClientAuth:         "require",
		ReloadInterval:     2 * time.Second,
		SignWindow:         60 * time.Second,
		MaxBody:            1 << 20,
		MaxAccountBytes:    32,
		ForwardTimeout:     10 * time.Second,
		ForwardConcurrency: 16,
		ForwardBatchWait:   5 * time.Millisecond,
		RetryBase:          500 * time.Millisecond,
		RetryMax:           5 * time.Minute,
		MaxAge:             72 * time.Hour,
		StateDir:           "imedge-state",
		OutboxMaxEvents:    100_000,
		OutboxMaxBytes:     1 << 30,
		DedupeWindow:       10 * time.Minute,
		DedupeSize:         1 << 20,
		Rate:               20,
		Burst:              40,
		RateIPv6Prefix:     64,
		RateMaxKeys:        100_000,
		AuditInterval:      10 * time.Second,
		AuditBurst:         10,
		LogLevel:           "info",
		LogFormat:          "json",
		ShutdownTimeout:    15 * time.Second,
		ReadHeaderTO:       5 * time.Second,
		ReadTimeout:        10 * time.Second,
		WriteTimeout:       10 * time.Second,
		IdleTimeout:        120 * time.Second,
		MaxHeaderBytes:     16 << 10,
		DevDir:             ".imedge-dev",
	}
}

// listFlag collects a repeatable string flag; a value may also hold a
// comma-separated list.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

type serveFlags struct {
	cfg        Config
	tokenFile  string
	secretFile string
	exempt     []string
	maxBody    string
	outboxMax  string
	curves     string
	memLimit   string
}

func newServeFlagSet(out io.Writer) (*flag.FlagSet, *serveFlags) {
	sf := &serveFlags{cfg: defaultConfig()}
	c := &sf.cfg
	fs := flag.NewFlagSet("imedge serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.String(configFlag, "", "YAML config file whose keys are these flag names; flags override it")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTPS listen address (host:port)")
	fs.StringVar(&c.Path, "path", c.Path, "URL path IM posts to")
	fs.StringVar(&c.CertFile, "cert", "", "server certificate chain, PEM")
	fs.StringVar(&c.KeyFile, "key", "", "server private key, PEM")
	fs.StringVar(&c.ClientCAFile, "client-ca", "", "PEM bundle of CAs that issue client certificates (IM: TencentQQAuthCA.crt)")
	fs.Var(listFlag{&c.ClientCRLFiles}, "client-crl", "client CRL file, PEM or DER (repeatable)")
	fs.BoolVar(&c.CRLFailClosed, "crl-fail-closed", false, "refuse clients whose issuer's CRL is past NextUpdate")
	fs.StringVar(&c.ClientAuth, "client-auth", c.ClientAuth, `client certificates: "require" or "none" (none needs a token)`)
	fs.Var(listFlag{&c.AllowClients}, "allow-client", "allowed client identity: cn:NAME, dns:NAME, uri:URI or spki:SHA256HEX (repeatable)")
	fs.StringVar(&c.AllowClientsFile, "allow-client-file", "", "file of allowed client identities, one --allow-client entry per line; re-read on reload and when it changes")
	fs.StringVar(&c.ServerName, "server-name", "", "certificate name to serve to clients that send no SNI")
	fs.StringVar(&sf.curves, "tls-curves", "", `key exchanges allowed, comma-separated, e.g. "X25519,P-256" (default: Go's, post-quantum X25519MLKEM768 first)`)
	fs.DurationVar(&c.ReloadInterval, "reload-interval", c.ReloadInterval, "how often certificate files are checked for changes (0 disables; SIGHUP always reloads)")
	fs.StringVar(&c.SdkAppid, "sdkappid", "", "the IM SDKAppID callbacks must carry")
	fs.StringVar(&sf.tokenFile, "token-file", "", "file holding the IM callback token (or set IMEDGE_TOKEN)")
	fs.DurationVar(&c.SignWindow, "sign-window", c.SignWindow, "largest allowed |now - RequestTime| for a signed callback")
	fs.StringVar(&sf.maxBody, "max-body", "1MiB", "largest callback body (bytes, or with KiB/MiB)")
	fs.IntVar(&c.MaxAccountBytes, "max-account-bytes", c.MaxAccountBytes, "largest From_Account/To_Account in bytes")
	fs.StringVar(&c.ForwardURL, "forward-url", "", "internal URL that receives accepted events (http or https)")
	fs.StringVar(&c.ForwardCA, "forward-ca", "", "CA bundle trusted for an https forward URL (replaces the system roots)")
	fs.StringVar(&c.ForwardCert, "forward-cert", "", "client certificate to present to the forward URL")
	fs.StringVar(&c.ForwardKey, "forward-key", "", "private key for --forward-cert")
	fs.DurationVar(&c.ForwardTimeout, "forward-timeout", c.ForwardTimeout, "timeout of one delivery attempt")
	fs.StringVar(&sf.secretFile, "forward-secret-file", "", "file holding the Standard Webhooks signing secret (or set IMEDGE_FORWARD_SECRET)")
	fs.IntVar(&c.ForwardConcurrency, "forward-concurrency", c.ForwardConcurrency, "delivery workers (and most connections to the forward URL)")
	fs.IntVar(&c.ForwardBatch, "forward-batch", 0, "deliver up to N events per request as a JSON array (0: one event per request, the default)")
	fs.DurationVar(&c.ForwardBatchWait, "forward-batch-wait", c.ForwardBatchWait, "with --forward-batch: how long a batch that is not full waits for more events (0: send at once)")
	fs.DurationVar(&c.RetryBase, "retry-base", c.RetryBase, "first retry backoff (doubles, full jitter)")
	fs.DurationVar(&c.RetryMax, "retry-max", c.RetryMax, "largest retry backoff")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 0, "delivery attempts before dead-lettering (0: no limit, see --max-age)")
	fs.DurationVar(&c.MaxAge, "max-age", c.MaxAge, "an event not delivered after this long is dead-lettered")
	fs.StringVar(&c.StateDir, "state-dir", c.StateDir, "state directory (default $STATE_DIRECTORY when set by systemd)")
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "outbox directory (default STATE-DIR/outbox)")
	fs.IntVar(&c.OutboxMaxEvents, "outbox-max-events", c.OutboxMaxEvents, "pending events before callbacks are refused with 503")
	fs.StringVar(&sf.outboxMax, "outbox-max-bytes", "1GiB", "pending bytes before callbacks are refused with 503")
	fs.DurationVar(&c.DedupeWindow, "dedupe-window", c.DedupeWindow, "identical callbacks within this window are one event")
	fs.IntVar(&c.DedupeSize, "dedupe-size", c.DedupeSize, "largest number of remembered event ids")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "callbacks per second allowed per ClientIP (0 disables)")
	fs.IntVar(&c.Burst, "burst", c.Burst, "burst allowed per ClientIP")
	fs.IntVar(&c.RateIPv6Prefix, "rate-ipv6-prefix", c.RateIPv6Prefix, "IPv6 ClientIPs share a limit per prefix of this length")
	fs.IntVar(&c.RateMaxKeys, "rate-max-keys", c.RateMaxKeys, "largest number of ClientIP limiters kept")
	fs.Var(listFlag{&sf.exempt}, "rate-limit-exempt", "ClientIP CIDR exempt from the rate limit (repeatable)")
	fs.StringVar(&c.AuditLog, "audit-log", "", "audit log file (default: stderr)")
	fs.DurationVar(&c.AuditInterval, "audit-sample-interval", c.AuditInterval, "audit sampling window (0: no sampling)")
	fs.IntVar(&c.AuditBurst, "audit-burst", c.AuditBurst, "audit records per reason and ClientIP per window before a summary")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long SIGTERM waits for requests in flight")
	fs.DurationVar(&c.ReadHeaderTO, "read-header-timeout", c.ReadHeaderTO, "deadline for request headers (the TLS handshake has its own, --handshake-timeout)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "deadline for the whole request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "deadline for the response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "keep-alive idle timeout")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request header block")
	fs.IntVar(&c.GCPercent, "gc-percent", 0, "garbage collector target, as GOGC (0: GOGC from the environment, else 100; -1: off, only with --memory-limit)")
	fs.IntVar(&c.MaxProcs, "max-procs", 0, "threads running Go code at once, as GOMAXPROCS (0: GOMAXPROCS from the environment, else the CPUs available)")
	fs.StringVar(&c.JournalSync, "journal-sync", string(forward.JournalSyncAuto), "how the outbox journal is flushed before OK: auto (io_uring where the kernel offers it, else fdatasync), io_uring or fdatasync")
	fs.StringVar(&sf.memLimit, "memory-limit", "", "soft memory limit (bytes, or with KiB/MiB/GiB), as GOMEMLIMIT (default: GOMEMLIMIT from the environment, else none)")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: throwaway PKI, built-in sink, printed curl command")
	fs.StringVar(&c.DevDir, "dev-dir", c.DevDir, "where --dev keeps its PKI and state")
	c.Admin.register(fs)
	c.Edge.register(fs)
	c.ACME.register(fs)
	c.Cluster.register(fs)
	return fs, sf
}

// parseServeFlags builds serve's flag set, applies the --config file and
// then the command line, which wins.
func parseServeFlags(args []string, out io.Writer) (*flag.FlagSet, *serveFlags, bool, error) {
	if err := removedFlag(args); err != nil {
		return nil, nil, false, err
	}
	fs, sf := newServeFlagSet(out)
	if path := configArg(args); path != "" {
		if err := applyConfigFile(fs, path); err != nil {
			return nil, nil, false, err
		}
	}
	help, err := parseFlags(fs, args)
	return fs, sf, help, err
}

// parseServeConfig turns serve's arguments and environment into a Config.
// It reads the secret files; it does not validate (see Config.Validate).
func parseServeConfig(args []string, getenv func(string) string, out io.Writer) (Config, *flag.FlagSet, bool, error) {
	fs, sf, help, err := parseServeFlags(args, out)
	if help || err != nil {
		return Config{}, nil, help, err
	}
	if fs.NArg() > 0 {
		return Config{}, nil, false, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	c := sf.cfg
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["state-dir"] && getenv("STATE_DIRECTORY") != "" {
		c.StateDir = strings.Split(getenv("STATE_DIRECTORY"), ":")[0]
	}
	c.ACME.setStateDir(c.StateDir)
	var errs []error
	if c.MaxBody, err = parseBytes(sf.maxBody); err != nil {
		errs = append(errs, fmt.Errorf("--max-body: %w", err))
	}
	if c.OutboxMaxBytes, err = parseBytes(sf.outboxMax); err != nil {
		errs = append(errs, fmt.Errorf("--outbox-max-bytes: %w", err))
	}
	if sf.memLimit != "" {
		if c.MemoryLimit, err = parseBytes(sf.memLimit); err != nil {
			errs = append(errs, fmt.Errorf("--memory-limit: %w", err))
		}
	}
	if c.Curves, err = tlsconf.ParseCurves(sf.curves); err != nil {
		errs = append(errs, fmt.Errorf("--tls-curves: %w", err))
	}
	for _, s := range sf.exempt {
		p, err := parsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--rate-limit-exempt %q: %w", s, err))
			continue
		}
		c.RateLimitExempt = append(c.RateLimitExempt, p)
	}
	if c.Token, c.TokenSource, err = readSecret(sf.tokenFile, "IMEDGE_TOKEN", getenv); err != nil {
		errs = append(errs, fmt.Errorf("--token-file: %w", err))
	}
	if c.ForwardSecret, _, err = readSecret(sf.secretFile, "IMEDGE_FORWARD_SECRET", getenv); err != nil {
		errs = append(errs, fmt.Errorf("--forward-secret-file: %w", err))
	}
	if err := c.Cluster.readSecrets(getenv); err != nil {
		errs = append(errs, err)
	}
	return c, fs, false, errors.Join(errs...)
}

// readSecret takes a secret from file (trailing newline trimmed) or from the
// environment variable env. The file wins when both are given.
func readSecret(file, env string, getenv func(string) string) ([]byte, string, error) {
	if file != "" {
		b, err := certs.ReadFile("reading secret", file)
		if err != nil {
			return nil, "", err
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			return nil, "", fmt.Errorf("secret file %q is empty", file)
		}
		return b, "file " + file, nil
	}
	if v := getenv(env); v != "" {
		return []byte(v), "environment " + env, nil
	}
	return nil, "", nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseBytes reads "1048576", "512KiB", "1MiB" or "1GiB".
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive size like 1048576 or 1MiB")
	}
	return n * mult, nil
}

// spoolDir is the outbox directory.
func (c Config) spoolDir() string {
	if c.SpoolDir != "" {
		return c.SpoolDir
	}
	return filepath.Join(c.StateDir, "outbox")
}

// Validate reports every problem in c at once. It checks that files exist
// and are readable; their content is checked when they are loaded.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("--listen %q: want host:port", c.Listen)
	}
	if !strings.HasPrefix(c.Path, "/") {
		bad("--path %q: must start with /", c.Path)
	}
	if c.GCPercent < -1 {
		bad("--gc-percent %d: want -1 (off), 0 (the runtime's) or a positive percentage", c.GCPercent)
	}
	if c.MaxProcs < 0 {
		bad("--max-procs %d: want 0 (the runtime's) or a positive count", c.MaxProcs)
	}
	if _, err := forward.ParseJournalSync(c.JournalSync); err != nil {
		bad("--journal-sync: %v", err)
	}
	if c.GCPercent == -1 && c.MemoryLimit == 0 {
		bad("--gc-percent -1 turns the collector off: set --memory-limit too, or the heap grows without bound")
	}
	if c.SdkAppid == "" {
		bad("--sdkappid is required")
	} else if _, err := strconv.ParseUint(c.SdkAppid, 10, 64); err != nil {
		bad("--sdkappid %q: want the decimal SDKAppID", c.SdkAppid)
	}
	file := func(flagName, path string, required bool) {
		if path == "" {
			if required {
				bad("--%s is required", flagName)
			}
			return
		}
		f, err := os.Open(path)
		if err != nil {
			bad("--%s: %w", flagName, err)
			return
		}
		f.Close()
	}
	file("cert", c.CertFile, c.ACME.certFilesRequired())
	file("key", c.KeyFile, c.ACME.certFilesRequired())
	switch c.ClientAuth {
	case "require":
		file("client-ca", c.ClientCAFile, true)
	case "none":
		if len(c.Token) == 0 {
			bad("--client-auth=none is refused without a token (--token-file or IMEDGE_TOKEN): nothing would authenticate callers")
		}
		file("client-ca", c.ClientCAFile, false)
	default:
		bad("--client-auth %q: want require or none", c.ClientAuth)
	}
	file("allow-client-file", c.AllowClientsFile, false)
	for _, f := range c.ClientCRLFiles {
		file("client-crl", f, true)
	}
	if c.ForwardURL == "" {
		bad("--forward-url is required")
	} else if u, err := url.Parse(c.ForwardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--forward-url %q: want an absolute http:// or https:// URL", c.ForwardURL)
	}
	file("forward-ca", c.ForwardCA, false)
	if (c.ForwardCert == "") != (c.ForwardKey == "") {
		bad("--forward-cert and --forward-key go together")
	}
	file("forward-cert", c.ForwardCert, false)
	file("forward-key", c.ForwardKey, false)
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			bad("--%s must be positive", name)
		}
	}
	positive("sign-window", c.SignWindow)
	positive("forward-timeout", c.ForwardTimeout)
	positive("retry-base", c.RetryBase)
	positive("retry-max", c.RetryMax)
	positive("max-age", c.MaxAge)
	positive("dedupe-window", c.DedupeWindow)
	positive("shutdown-timeout", c.ShutdownTimeout)
	positive("read-header-timeout", c.ReadHeaderTO)
	positive("read-timeout", c.ReadTimeout)
	positive("write-timeout", c.WriteTimeout)
	positive("idle-timeout", c.IdleTimeout)
	if c.ReloadInterval < 0 {
		bad("--reload-interval must not be negative")
	}
	if c.RetryMax < c.RetryBase {
		bad("--retry-max must be at least --retry-base")
	}
	if c.MaxAccountBytes <= 0 || c.MaxAccountBytes > 1024 {
		bad("--max-account-bytes must be 1..1024")
	}
	if c.MaxBody <= 0 || c.MaxBody > 64<<20 {
		bad("--max-body must be 1 byte..64MiB")
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		bad("--max-header-bytes must be 1KiB..1MiB")
	}
	if c.ForwardBatchWait < 0 || c.ForwardBatchWait > time.Second {
		bad("--forward-batch-wait %s: want 0 to 1s", c.ForwardBatchWait)
	}
	if c.ForwardBatch < 0 || c.ForwardBatch > 1000 {
		bad("--forward-batch must be 0..1000")
	}
	if c.ForwardConcurrency < 1 || c.ForwardConcurrency > 1024 {
		bad("--forward-concurrency must be 1..1024")
	}
	if c.MaxAttempts < 0 {
		bad("--max-attempts must not be negative")
	}
	if c.OutboxMaxEvents < 1 {
		bad("--outbox-max-events must be positive")
	}
	if c.DedupeSize < 1 {
		bad("--dedupe-size must be positive")
	}
	if c.Rate < 0 {
		bad("--rate must not be negative")
	}
	if c.Rate > 0 && c.Burst < 1 {
		bad("--burst must be positive")
	}
	if c.RateIPv6Prefix < 1 || c.RateIPv6Prefix > 128 {
		bad("--rate-ipv6-prefix must be 1..128")
	}
	if c.RateMaxKeys < 1 {
		bad("--rate-max-keys must be positive")
	}
	if c.AuditInterval < 0 || c.AuditBurst < 1 {
		bad("--audit-sample-interval must not be negative and --audit-burst must be positive")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("--log-level: %w", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("--log-format %q: want json or text", c.LogFormat)
	}
	errs = append(errs, c.Admin.validate()...)
	errs = append(errs, c.Edge.validate(c)...)
	errs = append(errs, c.ACME.validate(c)...)
	errs = append(errs, c.Cluster.validate()...)
	if len(errs) == 0 {
		return nil
	}
	return &configError{errs}
}

// configError lists every problem of a Config on one line, so an operator
// sees them all in one run.
type configError struct{ errs []error }

func (e *configError) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return "invalid configuration: " + strings.Join(msgs, "; ")
}

func (e *configError) Unwrap() []error { return e.errs }
