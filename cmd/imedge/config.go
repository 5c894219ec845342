package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/imedge/imedge/certs"
)

// Config is everything `imedge serve` needs, in groups that each own their
// flags, defaults and checks (config_*.go): adding a setting means adding
// it to one group. Build it with parseServeConfig; Validate reports every
// problem at once and is the only check: `imedge check-config` and
// `imedge serve` both run it, and nothing after it refuses a setting.
type Config struct {
	Server   serverConfig   // listen address, path, HTTP timeouts
	TLS      tlsConfig      // server certificate, client certificates
	ACME     acmeConfig     // server certificate from an ACME CA
	IM       imConfig       // the IM app: SDKAppID, token, callback bounds
	Delivery deliveryConfig // the internal URL and how events reach it
	Decide   decideConfig   // before-callbacks: decision services, fallbacks, budget
	State    stateConfig    // state directory, outbox and dedupe bounds
	Limits   limitConfig    // per-ClientIP rate limit
	Logs     logConfig      // operational log and audit log
	Edge     edgeConfig     // connection-level defences of the listener
	Egress   egressConfig   // IM's callback egress list as a source allow-list
	Cluster  clusterConfig  // several instances: Redis, PROXY protocol
	Admin    adminConfig    // admin listener

	Dev    bool   // --dev: throwaway PKI and a built-in sink
	DevDir string // --dev-dir
	File   string // --config, absolute; "" when none
}

// Help sections of `imedge serve --help`, in order.
const (
	groupRequired = "Required"
	groupTLS      = "TLS and clients"
	groupRouting  = "Routing and delivery"
	groupLimits   = "Limits"
	groupCluster  = "Several instances"
	groupAdmin    = "Admin, logs and state"
	groupTuning   = "Tuning"
	groupDev      = "Development"
)

const serveSynopsis = `Usage: imedge serve [--config FILE] [flags]

Receives Tencent Cloud IM callbacks on --listen, checks them, and delivers
every accepted event to --forward-url through a durable outbox.
Durations take Go syntax (500ms, 10s, 5m); sizes take bytes or KiB/MiB/GiB;
repeatable flags also take comma-separated lists. A --config YAML file's
keys are these flag names; flags on the command line win.
`

const serveExamples = `  # Try it: a throwaway PKI, a built-in sink, and a curl command to paste.
  imedge serve --dev

  # Mutual TLS with IM's client certificate:
  imedge serve --listen :443 --cert server.pem --key server-key.pem \
    --client-ca TencentQQAuthCA.crt --sdkappid 1400000000 \
    --forward-url http://127.0.0.1:8080/im-events --audit-log /var/log/imedge/audit.log

  # Token only (IMEDGE_TOKEN holds the console's token), behind IM's egress list:
  imedge serve --config /etc/imedge/imedge.yaml --client-auth none
`

// newServeFlags returns serve's flag set bound to a Config holding the
// defaults, which the packages owning each setting define.
func newServeFlags() (*flagSet, *Config) {
	c := &Config{}
	fs := newFlagSet("imedge serve")
	c.IM.register(fs) // first: its Required section leads --help
	fs.group(groupAdmin, func() {
		fs.String(configFlag, "", "YAML config file whose keys are these flag names; flags override it")
	})
	c.Delivery.register(fs)
	c.Decide.register(fs)
	c.TLS.register(fs)
	c.Server.register(fs)
	c.ACME.register(fs)
	c.Edge.register(fs)
	c.Egress.register(fs)
	c.Limits.register(fs)
	c.State.register(fs)
	c.Cluster.register(fs)
	c.Logs.register(fs)
	c.Admin.register(fs)
	fs.group(groupDev, func() {
		fs.BoolVar(&c.Dev, "dev", false, "development mode: throwaway PKI, built-in sink, printed curl command")
		fs.StringVar(&c.DevDir, "dev-dir", ".imedge-dev", "where --dev keeps its PKI and state")
	})
	fs.require("sdkappid", "forward-url", "cert", "key", "client-ca")
	return fs, c
}

// defaultConfig is the Config of a command line that sets nothing.
func defaultConfig() Config {
	_, c := newServeFlags()
	return *c
}

// removedSetting says what replaced a serve flag (and config key) that no
// longer exists. Giving one fails at start with that line, rather than
// silently meaning something else.
func removedSetting(name string) (string, bool) {
	switch name {
	case "gc-percent":
		return "removed, set GOGC in the environment (e.g. Environment=GOGC=400 in the systemd unit)", true
	case "memory-limit":
		return "removed, set GOMEMLIMIT in the environment (e.g. Environment=GOMEMLIMIT=256MiB)", true
	case "max-procs":
		return "removed, set GOMAXPROCS in the environment", true
	case "journal-sync":
		return "removed: the outbox journal always flushes through io_uring where the kernel offers it, else fdatasync", true
	case "http1":
		return "removed, imedge always serves HTTP/1.1 with net/http (its own server saved too little CPU to keep a second parser open to the internet)", true
	}
	return "", false
}

// checkRemoved refuses a removed flag in args, naming its replacement.
func checkRemoved(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if msg, ok := removedSetting(name); ok {
			return usageErrorf("--%s: %s", name, msg)
		}
	}
	return nil
}

// parseServeFlags builds serve's flag set, applies the --config file and
// then the command line, which wins. It returns flag.ErrHelp for -h.
func parseServeFlags(args []string) (*flagSet, *Config, error) {
	if err := checkRemoved(args); err != nil {
		return nil, nil, err
	}
	fs, c := newServeFlags()
	if path := configArg(args); path != "" {
		if err := applyConfigFile(fs.FlagSet, path); err != nil {
			return nil, nil, err
		}
		if abs, err := filepath.Abs(path); err == nil {
			c.File = abs
		}
	}
	if err := fs.parse(args); err != nil {
		return fs, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, usageErrorf("imedge serve: unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return fs, c, nil
}

// parseServeConfig turns serve's arguments and environment into a Config:
// flags, the --config file, $STATE_DIRECTORY and the secrets read from
// their files or environment variables. It does not validate (see
// Config.Validate) and writes nothing.
func parseServeConfig(args []string, getenv func(string) string) (Config, *flagSet, error) {
	fs, cp, err := parseServeFlags(args)
	if err != nil {
		return Config{}, fs, err
	}
	c := *cp
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.State.resolve(set["state-dir"], getenv)
	c.ACME.setStateDir(c.State.Dir)
	var errs []error
	if c.IM.Token, c.IM.TokenSource, err = readSecret(c.IM.TokenFile, "IMEDGE_TOKEN", getenv); err != nil {
		errs = append(errs, fmt.Errorf("--token-file: %w", err))
	}
	if c.Delivery.Secret, _, err = readSecret(c.Delivery.SecretFile, "IMEDGE_FORWARD_SECRET", getenv); err != nil {
		errs = append(errs, fmt.Errorf("--forward-secret-file: %w", err))
	}
	if err := c.Cluster.readSecrets(getenv); err != nil {
		errs = append(errs, err)
	}
	if err := c.Egress.readSecrets(getenv); err != nil {
		errs = append(errs, err)
	}
	return c, fs, errors.Join(errs...)
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

// Validate reports every problem in c at once. It reads the files c names
// (certificates, keys, CA bundles and CRLs are loaded and checked, so a
// key that does not match its certificate is a config error) and checks
// that the directories imedge writes to are writable, creating nothing.
func (c Config) Validate() error {
	var errs []error
	for _, g := range []interface{ validate(Config) []error }{
		c.Server, c.TLS, c.ACME, c.IM, c.Delivery, c.Decide, c.State, c.Limits, c.Logs, c.Edge, c.Egress, c.Cluster, c.Admin,
	} {
		errs = append(errs, g.validate(c)...)
	}
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

// problems collects configuration errors for one group.
type problems []error

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Errorf(format, a...)) }

// readable checks that path names a file imedge can open; an empty path is
// an error only when required.
func (p *problems) readable(flagName, path string, required bool) {
	if path == "" {
		if required {
			p.add("--%s is required", flagName)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		p.add("--%s: %w", flagName, err)
		return
	}
	f.Close()
}

// positive checks that a duration flag is above zero.
func (p *problems) positive(flagName string, v interface{ Nanoseconds() int64 }) {
	if v.Nanoseconds() <= 0 {
		p.add("--%s must be positive", flagName)
	}
}

// writableDir checks, without creating anything, that imedge could write in
// dir: it exists and is writable, or its nearest existing parent is (serve
// creates the missing part).
func writableDir(dir string) error {
	d := filepath.Clean(dir)
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			return accessWrite(d)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("no existing parent of %s", dir)
		}
		d = parent
	}
}
