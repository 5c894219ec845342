package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/imedge/imedge/catalog"
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
                   [--token-file F] [--client-ip IP] [--command NAME]
                   [--body F | --from A --to B]

Sends one callback as Tencent IM would (client certificate, query
parameters, Sign when a token is set) and prints the status, the reply and
the request id: the "verify" button of the IM console, from your side. By
default a Sns.CallbackFriendDelete; --command sends any command of the
catalog (imedge commands) with its example body. For a before-callback it
also prints IM's view of the answer: allow, deny, rewrite, drop or partial.
Exits non-zero unless the reply is OK (for a before-callback: unless IM
would take it as an answer, whatever the decision).

`

func runSend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge send", flag.ContinueOnError)
	var sf simFlags
	sf.register(fs)
	clientIP := fs.String("client-ip", "127.0.0.1", "ClientIP to send")
	command := fs.String("command", imsim.CommandFriendDelete, "CallbackCommand to send; a command other than the default is sent with the catalog's example body unless --body is given")
	bodyFile := fs.String("body", "", "file holding the JSON body to send (default: a FriendDelete body built from --from and --to, or --command's example)")
	from := fs.String("from", "imedge-verify", "From_Account of the built body")
	to := fs.String("to", "imedge-verify-peer", "To_Account of the built body")
	if help, err := parseFlags(fs, args, stdout, sendUsage); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("send: unexpected argument %q", fs.Arg(0))
	}
	target, token, err := sf.target(getenv)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cmd, known := catalog.New().Lookup(*command)
	var body []byte
	switch {
	case *bodyFile != "":
		if set["from"] || set["to"] {
			err = errors.Join(err, errors.New("--body and --from/--to exclude each other"))
		}
		var rerr error
		if body, rerr = certs.ReadFile("reading body", *bodyFile); rerr != nil {
			err = errors.Join(err, fmt.Errorf("--body: %w", rerr))
		}
	case *command == imsim.CommandFriendDelete:
		body = imsim.FriendDeleteBody(imsim.Pair{From: *from, To: *to})
	case set["from"] || set["to"]:
		err = errors.Join(err, errors.New("--from/--to build a Sns.CallbackFriendDelete body; --command sends its example, or --body a file"))
	case !known:
		err = errors.Join(err, fmt.Errorf("--command %q: not in the catalog (imedge commands), give its body with --body", *command))
	default:
		body = cmd.Example()
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	r, err := imsim.Send(ctx, target, imsim.Callback{
		AppID: sf.appID, Command: *command, ClientIP: *clientIP, OptPlatform: sf.platform, Token: token, Body: body,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "status %d\nreply %s\nrequest-id %s\n", r.Status, strings.TrimSpace(string(r.Body)), r.RequestID)
	if known && cmd.Kind.Decides() {
		// IM acts on this reply: a deny is an answer, not a failure.
		fmt.Fprintf(stdout, "decision %s\n", imsim.ReadDecision(r.Body))
		if r.Status == http.StatusOK && r.ActionStatus == "OK" {
			return nil
		}
	}
	if !r.OK() {
		why := r.ErrorInfo
		if why == "" {
			why = "reply is not IM's OK JSON"
		}
		return fmt.Errorf("callback not accepted: HTTP %d, %s", r.Status, why)
	}
	return nil
}
