package decide

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/certs"
	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// target is one decision service: its URL, its own keep-alive pool and its
// circuit breaker. Safe for concurrent use.
type target struct {
	pattern string
	u       *url.URL
	safeURL string
	tr      *http.Transport
	hc      *http.Client
	br      breaker

	calls, failures, rejected atomic.Uint64
}

func newTarget(t Target, o *Options, tlsConf *tls.Config) (*target, error) {
	u, err := parseURL(t.URL)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf.Clone(),
		TLSHandshakeTimeout: o.Timeout,
		MaxIdleConns:        o.MaxConns,
		MaxIdleConnsPerHost: o.MaxConns,
		MaxConnsPerHost:     o.MaxConns,
		IdleConnTimeout:     DefaultIdleTimeout,
		DisableCompression:  true, // the reply is bounded as sent
		ForceAttemptHTTP2:   true,
	}
	return &target{
		pattern: t.Pattern,
		u:       u,
		safeURL: redactURL(t.URL),
		tr:      tr,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a non-2xx answer
		}},
		br: breaker{threshold: o.BreakerFailures, coolDown: o.BreakerCoolDown},
	}, nil
}

// clientTLS loads the TLS files of the decision path: the same trust
// anchors and client certificate as deliveries.
func clientTLS(o *Options) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pool, _, err := certs.LoadPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loading the decision services' CA bundle: %w", err)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" {
		pair, err := certs.LoadKeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate for decision services: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// The Standard Webhooks headers of package forward, spelled as
// http.CanonicalHeaderKey would store them (the header map is built
// directly).
const (
	webhookID        = "Webhook-Id"        // forward.HeaderWebhookID
	webhookTimestamp = "Webhook-Timestamp" // forward.HeaderWebhookTimestamp
	webhookSignature = "Webhook-Signature" // forward.HeaderWebhookSignature
)

// errTooLarge reports a reply over MaxReplyBytes.
var errTooLarge = errors.New("reply larger than the bound")

// post sends ev to the service and returns its status and reply body. The
// request carries the headers and signature of a delivery (package
// forward), and IM's query string without its signature.
func (t *target) post(ctx context.Context, ev *receiver.Event, secret []byte, now time.Time) (int, []byte, error) {
	u := *t.u
	switch {
	case ev.Query == "":
	case u.RawQuery == "":
		u.RawQuery = ev.Query
	default:
		u.RawQuery += "&" + ev.Query
	}
	h := make(http.Header, 16)
	vals := make([]string, 0, 16)
	set := func(k, v string) { // canonical keys, one backing array
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Content-Type", "application/json")
	set("User-Agent", "imedge")
	set(forward.HeaderEventID, ev.ID)
	set(forward.HeaderSdkAppID, ev.AppID)
	set(forward.HeaderCommand, ev.Command)
	set(forward.HeaderClientIP, ev.ClientIP)
	if ev.OptPlatform != "" {
		set(forward.HeaderOptPlatform, ev.OptPlatform)
	}
	if ev.Identity != "" {
		set(forward.HeaderClientIdentity, ev.Identity)
	}
	if ev.CertSHA256 != "" {
		set(forward.HeaderClientCertSHA256, ev.CertSHA256)
	}
	set(forward.HeaderRequestID, ev.RequestID)
	if !ev.ReceivedAt.IsZero() {
		set(forward.HeaderReceivedAt, ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	set(forward.HeaderAttempt, "1") // a decision is asked once
	if secret != nil {
		ts := now.Unix()
		set(webhookID, ev.ID)
		set(webhookTimestamp, strconv.FormatInt(ts, 10))
		set(webhookSignature, forward.Sign(secret, ev.ID, ts, ev.Body))
	}
	req := (&http.Request{
		Method:        http.MethodPost,
		URL:           &u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(ev.Body)),
		GetBody:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(ev.Body)), nil },
		ContentLength: int64(len(ev.Body)),
		Host:          u.Host,
	}).WithContext(ctx)
	resp, err := t.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, query included
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxReplyBytes+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(body) > MaxReplyBytes {
		return resp.StatusCode, nil, errTooLarge
	}
	return resp.StatusCode, body, nil
}

// timedOut reports whether err ended a call because its budget ran out.
func timedOut(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stats returns the service's snapshot.
func (t *target) stats() TargetStats {
	b := t.br.stats()
	return TargetStats{
		Pattern: t.pattern, URL: t.safeURL, State: b.state.String(), ConsecutiveFailures: b.fails,
		OpenedAt: b.openedAt, Opens: b.opens,
		Calls: t.calls.Load(), Failures: t.failures.Load(), Rejected: t.rejected.Load(),
	}
}
