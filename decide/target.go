package decide

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/forward"
	"github.com/imedge/imedge/receiver"
)

// target is one decision service: its URL, its own keep-alive pool and its
// circuit breaker. Safe for concurrent use.
type target struct {
	pattern string
	u       *url.URL
	safeURL string
	path    string    // request target before IM's query: path, "?" and the URL's own query and "&" if any
	wire    *wirePool // http:// services
	tr      *http.Transport
	hc      *http.Client // https:// services
	br      breaker

	calls, failures, rejected atomic.Uint64
}

func newTarget(t Target, o *Options, tlsConf *tls.Config) (*target, error) {
	u, err := parseURL(t.URL)
	if err != nil {
		return nil, err
	}
	tg := &target{
		pattern: t.Pattern,
		u:       u,
		safeURL: redactURL(t.URL),
		br:      breaker{threshold: o.BreakerFailures, coolDown: o.BreakerCoolDown},
	}
	tg.path = u.EscapedPath()
	if tg.path == "" {
		tg.path = "/"
	}
	tg.path += "?"
	if u.RawQuery != "" {
		tg.path += u.RawQuery + "&"
	}
	if u.Scheme == "http" {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		tg.wire = newWirePool(host, o.MaxConns, DefaultIdleTimeout)
		return tg, nil
	}
	dialer := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
	tg.tr = &http.Transport{
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
	tg.hc = &http.Client{Transport: tg.tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is a non-2xx answer
	}}
	return tg, nil
}

// closeIdle releases the idle connections.
func (t *target) closeIdle() {
	if t.wire != nil {
		t.wire.closeIdle()
		return
	}
	t.tr.CloseIdleConnections()
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

// field is one request header.
type field struct{ k, v string }

// fields returns the request headers: those of a delivery (package
// forward), with the Standard Webhooks signature when secret is set. A
// value that could not be sent as a header (a control character) is left
// out; the receiver does not let one through.
func fields(dst []field, ev *receiver.Event, secret []byte, now time.Time) []field {
	add := func(k, v string) {
		if v != "" && validValue(v) {
			dst = append(dst, field{k, v})
		}
	}
	add("Content-Type", "application/json")
	add("User-Agent", "imedge")
	add(forward.HeaderEventID, ev.ID)
	add(forward.HeaderSdkAppID, ev.AppID)
	add(forward.HeaderCommand, ev.Command)
	add(forward.HeaderClientIP, ev.ClientIP)
	add(forward.HeaderOptPlatform, ev.OptPlatform)
	add(forward.HeaderClientIdentity, ev.Identity)
	add(forward.HeaderClientCertSHA256, ev.CertSHA256)
	add(forward.HeaderRequestID, ev.RequestID)
	if !ev.ReceivedAt.IsZero() {
		add(forward.HeaderReceivedAt, ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	add(forward.HeaderAttempt, "1") // a decision is asked once
	if secret != nil {
		ts := now.Unix()
		add(webhookID, ev.ID)
		add(webhookTimestamp, strconv.FormatInt(ts, 10))
		add(webhookSignature, forward.Sign(secret, ev.ID, ts, ev.Body))
	}
	return dst
}

// validValue reports whether v can be sent as a header value as is.
func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// post sends ev to the service and returns its status and reply body,
// giving up at deadline. The request carries IM's query string without its
// signature after the URL's own query.
func (t *target) post(deadline time.Time, ev *receiver.Event, secret []byte, now time.Time) (int, []byte, error) {
	var buf [16]field
	hdr := fields(buf[:0], ev, secret, now)
	if t.wire != nil {
		return t.wire.roundTrip(deadline, func(b []byte) []byte {
			b = append(b, "POST "...)
			if ev.Query == "" {
				b = append(b, t.path[:len(t.path)-1]...) // no "?" or "&" with nothing after it
			} else {
				b = append(b, t.path...)
				b = append(b, ev.Query...)
			}
			b = append(b, " HTTP/1.1\r\nHost: "...)
			b = append(b, t.u.Host...)
			for _, f := range hdr {
				b = append(b, "\r\n"...)
				b = append(b, f.k...)
				b = append(b, ": "...)
				b = append(b, f.v...)
			}
			b = append(b, "\r\nContent-Length: "...)
			b = strconv.AppendInt(b, int64(len(ev.Body)), 10)
			b = append(b, "\r\n\r\n"...)
			return append(b, ev.Body...)
		}, MaxReplyBytes)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	u := *t.u
	switch {
	case ev.Query == "":
	case u.RawQuery == "":
		u.RawQuery = ev.Query
	default:
		u.RawQuery += "&" + ev.Query
	}
	h := make(http.Header, len(hdr))
	for _, f := range hdr {
		h[f.k] = []string{f.v}
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
	body, err := readBounded(resp.Body, MaxReplyBytes)
	return resp.StatusCode, body, err
}

// timedOut reports whether err ended a call because its deadline passed.
func timedOut(deadline time.Time, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(deadline) {
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
