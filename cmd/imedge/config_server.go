package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imedge/imedge/receiver"
)

// serverConfig is the public listener's address and path and the timeouts
// of its HTTP server. These have no owning package: net/http's zero values
// mean "no limit", so imedge sets every one.
type serverConfig struct {
	Listen          string        // --listen
	Path            string        // --path
	ShutdownTimeout time.Duration // --shutdown-timeout
	ReadHeaderTO    time.Duration // --read-header-timeout
	ReadTimeout     time.Duration // --read-timeout
	WriteTimeout    time.Duration // --write-timeout
	IdleTimeout     time.Duration // --idle-timeout
	MaxHeaderBytes  int           // --max-header-bytes
	PIDFile         string        // --pid-file; "" writes none
}

// DefaultListen is where imedge listens unless told otherwise: loopback, so
// that a first start exposes nothing.
const defaultListen = "127.0.0.1:8443"

func (s *serverConfig) register(fs *flagSet) {
	fs.group(groupTLS, func() {
		fs.StringVar(&s.Listen, "listen", defaultListen, "HTTPS listen address (host:port)")
		fs.StringVar(&s.Path, "path", receiver.DefaultPath, "URL path IM posts to; other paths get 404")
	})
	fs.group(groupAdmin, func() {
		fs.Var(pathFlag{&s.PIDFile}, "pid-file", "write the process id here once listening (atomically), remove it at exit; use a directory of its own, e.g. /run/imedge/imedge.pid")
	})
	fs.group(groupTuning, func() {
		fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long SIGTERM waits for requests in flight")
		fs.DurationVar(&s.ReadHeaderTO, "read-header-timeout", 5*time.Second, "deadline for request headers (the TLS handshake has its own, --handshake-timeout)")
		fs.DurationVar(&s.ReadTimeout, "read-timeout", 10*time.Second, "deadline for the whole request")
		fs.DurationVar(&s.WriteTimeout, "write-timeout", 10*time.Second, "deadline for the response")
		fs.DurationVar(&s.IdleTimeout, "idle-timeout", 120*time.Second, "keep-alive idle timeout")
		fs.IntVar(&s.MaxHeaderBytes, "max-header-bytes", 16<<10, "largest request header block, bytes")
	})
}

func (s serverConfig) validate(Config) []error {
	var p problems
	checkHostPort(&p, "listen", s.Listen)
	if !strings.HasPrefix(s.Path, "/") {
		p.add("--path %q: must start with /", s.Path)
	}
	p.positive("shutdown-timeout", s.ShutdownTimeout)
	p.positive("read-header-timeout", s.ReadHeaderTO)
	p.positive("read-timeout", s.ReadTimeout)
	p.positive("write-timeout", s.WriteTimeout)
	p.positive("idle-timeout", s.IdleTimeout)
	if s.MaxHeaderBytes < 1024 || s.MaxHeaderBytes > 1<<20 {
		p.add("--max-header-bytes must be 1KiB..1MiB")
	}
	if s.PIDFile != "" {
		if err := appendable(s.PIDFile); err != nil {
			p.add("--pid-file: %w", err)
		}
	}
	return p
}

// checkHostPort checks a host:port listen address, the port a number from
// 0 (the kernel's choice) to 65535.
func checkHostPort(p *problems, flagName, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("--%s %q: want host:port", flagName, addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		p.add("--%s %q: the port must be a number from 0 to 65535", flagName, addr)
	}
}

// writePIDFile writes the process id to path atomically (a temporary file
// renamed over it), so a reader never sees a partial number.
func writePIDFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing --pid-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing --pid-file: %w", err)
	}
	return nil
}
