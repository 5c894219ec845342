package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
)

// adminConfig configures the admin listener (health, readiness, metrics,
// status, optional pprof). An empty Listen turns it off.
type adminConfig struct {
	Listen       string // --admin-listen; "" disables the listener
	CertFile     string // --admin-cert: server certificate for mutual TLS
	KeyFile      string // --admin-key
	ClientCAFile string // --admin-client-ca: CAs whose client certificates may connect
	Pprof        bool   // --admin-pprof: mount net/http/pprof
}

// defaultAdminListen is the documented default of --admin-listen.
const defaultAdminListen = "127.0.0.1:9443"

func (a *adminConfig) register(fs *flagSet) {
	fs.group(groupAdmin, func() {
		fs.StringVar(&a.Listen, "admin-listen", defaultAdminListen, `admin listener for /healthz, /readyz, /metrics and /status (host:port; "" disables). Plain HTTP on a loopback address, mutual TLS (--admin-cert, --admin-key, --admin-client-ca) required elsewhere`)
		fs.Var(pathFlag{&a.CertFile}, "admin-cert", "admin listener certificate chain, PEM (turns on mutual TLS, also on loopback)")
		fs.Var(pathFlag{&a.KeyFile}, "admin-key", "private key for --admin-cert, PEM")
		fs.Var(pathFlag{&a.ClientCAFile}, "admin-client-ca", "PEM bundle of CAs whose client certificates may use the admin listener")
		fs.BoolVar(&a.Pprof, "admin-pprof", false, "serve net/http/pprof under /debug/pprof/ on the admin listener")
	})
}

// enabled reports whether the admin listener is configured.
func (a adminConfig) enabled() bool { return a.Listen != "" }

// mTLS reports whether the admin listener uses mutual TLS.
func (a adminConfig) mTLS() bool { return a.CertFile != "" || a.KeyFile != "" || a.ClientCAFile != "" }

func (a adminConfig) validate(Config) []error {
	if !a.enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		bad("--admin-listen %q: want host:port (or \"\" to disable)", a.Listen)
		return errs
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		bad("--admin-listen %q: want a port number", a.Listen)
	}
	if a.mTLS() {
		if a.CertFile == "" || a.KeyFile == "" || a.ClientCAFile == "" {
			bad("--admin-cert, --admin-key and --admin-client-ca go together (mutual TLS needs all three)")
		}
		for _, f := range []struct{ flag, path string }{
			{"admin-cert", a.CertFile}, {"admin-key", a.KeyFile}, {"admin-client-ca", a.ClientCAFile},
		} {
			if f.path == "" {
				continue
			}
			fh, err := os.Open(f.path)
			if err != nil {
				bad("--%s: %w", f.flag, err)
				continue
			}
			fh.Close()
		}
	} else if !isLoopbackHost(host) {
		bad("--admin-listen %q is not a loopback address: the admin listener then requires mutual TLS "+
			"(--admin-cert, --admin-key and --admin-client-ca); bind it to 127.0.0.1 or ::1, or set --admin-listen \"\" to turn it off", a.Listen)
	}
	return errs
}

// isLoopbackHost reports whether host (from host:port) can only be reached
// from this machine: a loopback IP literal or "localhost". An empty host
// (all interfaces) and other names are not.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
