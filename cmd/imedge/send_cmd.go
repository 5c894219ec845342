package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/imsim"
)

// simFlags are the flags `imedge send` and `imedge load` share: where the
// receiver is and who the simulated IM client is.
type simFlags struct {
	addr, serverName, path string
	cert, key, caCert      string
	appID, tokenFile       string
	platform               string
	timeout                time.Duration
}

func (s *simFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.addr, "addr", "127.0.0.1:8443", "receiver address, host:port")
	fs.StringVar(&s.serverName, "server-name", "", "TLS server name to send and verify (default: the host of --addr)")
	fs.StringVar(&s.path, "path", "/", "callback URL path")
	fs.StringVar(&s.cert, "cert", "", "client certificate to present, PEM (IM's certificate; omit for token-only receivers)")
	fs.StringVar(&s.key, "key", "", "private key of --cert, PEM")
	fs.StringVar(&s.caCert, "cacert", "", "CA bundle that issued the server certificate, PEM (default: system roots)")
	fs.StringVar(&s.appID, "sdkappid", "", "SdkAppid to send (required)")
	fs.StringVar(&s.tokenFile, "token-file", "", "file holding the IM callback token, to sign callbacks (or set IMEDGE_TOKEN)")
	fs.StringVar(&s.platform, "opt-platform", "iOS", `OptPlatform to send ("" leaves it out)`)
	fs.DurationVar(&s.timeout, "timeout", 10*time.Second, "timeout of one request, connecting included")
}

// target loads the TLS files and the token named by the flags.
func (s *simFlags) target(getenv func(string) string) (imsim.Target, []byte, error) {
	var errs []error
	if s.appID == "" {
		errs = append(errs, errors.New("--sdkappid is required"))
	}
	if (s.cert == "") != (s.key == "") {
		errs = append(errs, errors.New("--cert and --key go together"))
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.caCert != "" {
		pool, _, err := certs.LoadPool(s.caCert)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cacert: %w", err))
		}
		conf.RootCAs = pool
	}
	if s.cert != "" && s.key != "" {
		pair, err := certs.LoadKeyPair(s.cert, s.key)
		if err != nil {
			errs = append(errs, fmt.Errorf("--cert/--key: %w", err))
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	token, _, err := readSecret(s.tokenFile, "IMEDGE_TOKEN", getenv)
	if err != nil {
		errs = append(errs, fmt.Errorf("--token-file: %w", err))
	}
	if len(errs) > 0 {
		return imsim.Target{}, nil, errors.Join(errs...)
	}
	return imsim.Target{Addr: s.addr, Path: s.path, ServerName: s.serverName, TLS: conf, Timeout: s.timeout}, token, nil
}

const sendUsage = `Usage: imedge send --addr HOST:PORT --sdkappid ID [--cert F --key F] [--cacert F]
                   [--token-file F] [--client-ip IP] [--body F | --from A --to B]

Sends one Sns.CallbackFriendDelete callback as Tencent IM would (client
certificate, query parameters, Sign when a token is set) and prints the
status, the reply and the request id. Exits non-zero unless the reply is OK:
the "verify" button of the IM console, from your side.

`

func runSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge send", flag.ContinueOnError)
	var sf simFlags
	sf.register(fs)
	clientIP := fs.String("client-ip", "127.0.0.1", "ClientIP to send")
	bodyFile := fs.String("body", "", "file holding the JSON body to send (default: a FriendDelete body built from --from and --to)")
	from := fs.String("from", "imedge-verify", "From_Account of the built body")
	to := fs.String("to", "imedge-verify-peer", "To_Account of the built body")
	if help, err := parseFlags(fs, args, stdout, sendUsage); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("send: unexpected argument %q", fs.Arg(0))
	}
	target, token, err := sf.target(getenv)
	var body []byte
	if *bodyFile != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if set["from"] || set["to"] {
			err = errors.Join(err, errors.New("--body and --from/--to exclude each other"))
		}
		var rerr error
		if body, rerr = certs.ReadFile("reading body", *bodyFile); rerr != nil {
			err = errors.Join(err, fmt.Errorf("--body: %w", rerr))
		}
	} else {
		body = imsim.FriendDeleteBody(imsim.Pair{From: *from, To: *to})
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	r, err := imsim.Send(ctx, target, imsim.Callback{
		AppID: sf.appID, ClientIP: *clientIP, OptPlatform: sf.platform, Token: token, Body: body,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "status %d\nreply %s\nrequest-id %s\n", r.Status, strings.TrimSpace(string(r.Body)), r.RequestID)
	if !r.OK() {
		why := r.ErrorInfo
		if why == "" {
			why = "reply is not IM's OK JSON"
		}
		return fmt.Errorf("callback not accepted: HTTP %d, %s", r.Status, why)
	}
	return nil
}
