package forward

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imedge/imedge/certs"
)

// Headers set on every delivery. Header names are case-insensitive; these
// are the canonical spellings Go sends over HTTP/1.1 (HTTP/2 sends them in
// lower case).
const (
	// HeaderEventID carries the event id (hex SHA-256 of SdkAppid, command
	// and body); the same value as webhook-id.
	HeaderEventID = "X-Imedge-Event-Id"
	// HeaderSdkAppID carries the SdkAppid query parameter.
	HeaderSdkAppID = "X-Imedge-Sdkappid"
	// HeaderCommand carries the CallbackCommand.
	HeaderCommand = "X-Imedge-Command"
	// HeaderClientIP carries the ClientIP query parameter.
	HeaderClientIP = "X-Imedge-Client-Ip"
	// HeaderOptPlatform carries OptPlatform as sent; omitted when empty.
	HeaderOptPlatform = "X-Imedge-Opt-Platform"
	// HeaderClientIdentity carries the verified client-certificate identity;
	// omitted when empty (token-only deployments).
	HeaderClientIdentity = "X-Imedge-Client-Identity"
	// HeaderClientCertSHA256 carries the hex SHA-256 of the client
	// certificate; omitted when empty.
	HeaderClientCertSHA256 = "X-Imedge-Client-Cert-Sha256"
	// HeaderRequestID carries imedge's request id for the callback.
	HeaderRequestID = "X-Imedge-Request-Id"
	// HeaderReceivedAt carries when imedge received the callback, RFC 3339
	// with nanoseconds, UTC.
	HeaderReceivedAt = "X-Imedge-Received-At"
	// HeaderAttempt carries the delivery attempt number, starting at 1.
	HeaderAttempt = "X-Imedge-Attempt"

	// HeaderWebhookID is the Standard Webhooks message id: the event id.
	// Sent only when a signing secret is configured, like the two below.
	HeaderWebhookID = "webhook-id"
	// HeaderWebhookTimestamp is the Standard Webhooks timestamp: Unix
	// seconds of this attempt.
	HeaderWebhookTimestamp = "webhook-timestamp"
	// HeaderWebhookSignature is the Standard Webhooks signature:
	// "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body)).
	HeaderWebhookSignature = "webhook-signature"
)

// secretPrefix marks a base64-encoded Standard Webhooks secret.
const secretPrefix = "whsec_"

// maxDrain bounds how much of a response body is read (and discarded) so
// the connection can be reused.
const maxDrain = 64 << 10

// ClientOptions configures [NewClient]. URL is required; every other zero
// value selects the documented default.
type ClientOptions struct {
	// URL is the internal endpoint, http or https. Environment proxy
	// settings are ignored.
	URL string
	// CAFile is a PEM bundle of CAs for an https URL. When set, these CAs
	// replace the system roots (the internal service has a private CA);
	// empty means the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and key presented
	// to an internal URL that requires mutual TLS. Both or neither.
	CertFile, KeyFile string
	// Timeout bounds one attempt: dial, TLS handshake, request and response
	// headers. Zero means DefaultTimeout.
	Timeout time.Duration
	// SigningSecret enables Standard Webhooks signatures. "whsec_" followed
	// by base64 is decoded; any other value is used as raw bytes. Empty
	// means unsigned deliveries. It is never logged.
	SigningSecret []byte
	// MaxConns is the number of idle keep-alive connections kept to the
	// internal URL; set it to the Dispatcher's Concurrency. Zero means
	// DefaultConcurrency.
	MaxConns int
	// Now is the clock for webhook-timestamp and Retry-After dates; nil
	// means time.Now.
	Now func() time.Time
}

// Client posts events to the internal URL over a pooled keep-alive
// transport (HTTP/2 when an https URL offers it). It is safe for concurrent
// use; call Close to release idle connections.
type Client struct {
	url     string
	safeURL string // scheme://host/path, for error text
	hc      *http.Client
	tr      *http.Transport
	tmpl    *http.Request // the request every delivery copies; never modified
	bufs    sync.Pool     // *[]byte batch bodies, reused once a request is over
	secret  []byte
	timeout time.Duration
	now     func() time.Time
}

// Deliverer posts one event; *Client implements it. attempt starts at 1.
// A nil error means the internal URL answered 2xx. Implementations return
// *DeliveryError to say whether and when to retry; any other error is
// retried with backoff.
type Deliverer interface {
	Deliver(ctx context.Context, ev Event, attempt int) error
}

// DeliveryError describes a failed delivery attempt.
type DeliveryError struct {
	StatusCode int           // HTTP status; zero when there was no response
	Status     string        // HTTP status text, e.g. "400 Bad Request"
	RetryAfter time.Duration // from a Retry-After header on 429 or 503; zero if absent
	// Permanent is set by a Deliverer that knows retrying cannot help; the
	// Dispatcher then dead-letters the event at once. Client never sets it:
	// which statuses are permanent is the Dispatcher's PermanentStatus.
	Permanent bool
	Err       error // transport error when there was no response
	url       string
}

// Error returns the status or the transport error. It never includes the
// response body.
func (e *DeliveryError) Error() string {
	if e.StatusCode != 0 {
		s := "HTTP " + e.Status
		if e.RetryAfter > 0 {
			s += " (retry after " + e.RetryAfter.String() + ")"
		}
		return s
	}
	return "posting to " + e.url + ": " + e.Err.Error()
}

// Unwrap returns the transport error, if any.
func (e *DeliveryError) Unwrap() error { return e.Err }

// NewClient validates o, loads the TLS files and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, credentials included
		}
		return nil, fmt.Errorf("parsing forward URL: %w: %w", ErrInvalidOptions, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("checking forward URL: %w: scheme must be http or https", ErrInvalidOptions)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("checking forward URL: %w: host is missing", ErrInvalidOptions)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("checking forward client certificate: %w: CertFile and KeyFile go together", ErrInvalidOptions)
	}
	c := &Client{
		url:     u.String(),
		safeURL: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		timeout: DefaultTimeout,
		now:     time.Now,
	}
	if o.Timeout > 0 {
		c.timeout = o.Timeout
	}
	if o.Now != nil {
		c.now = o.Now
	}
	if len(o.SigningSecret) > 0 {
		if c.secret, err = parseSecret(o.SigningSecret); err != nil {
			return nil, err
		}
	}
	tlsConf, err := certs.ClientTLS("forward", o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return nil, err
	}
	conns := DefaultConcurrency
	if o.MaxConns > 0 {
		conns = o.MaxConns
	}
	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	c.tr = &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   c.timeout,
		ResponseHeaderTimeout: c.timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		ForceAttemptHTTP2:     true,
	}
	c.bufs.New = func() any { return new([]byte) }
	if c.tmpl, err = http.NewRequest(http.MethodPost, c.url, nil); err != nil {
		return nil, fmt.Errorf("checking forward URL: %w: %w", ErrInvalidOptions, err)
	}
	c.hc = &http.Client{
		Transport: c.tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c, nil
}

// parseSecret decodes a "whsec_" base64 secret or takes raw bytes.
func parseSecret(s []byte) ([]byte, error) {
	if rest, ok := bytes.CutPrefix(s, []byte(secretPrefix)); ok {
		out := make([]byte, base64.StdEncoding.DecodedLen(len(rest)))
		n, err := base64.StdEncoding.Decode(out, bytes.TrimSpace(rest))
		if err != nil || n == 0 {
			// The secret itself stays out of the message.
			return nil, fmt.Errorf("decoding forward signing secret: %w: whsec_ value is not valid base64", ErrInvalidOptions)
		}
		return out[:n], nil
	}
	return bytes.Clone(s), nil
}

// Sign returns the Standard Webhooks signature header value for one
// message: "v1," + base64(HMAC-SHA256(secret, id.timestamp.body)).
func Sign(secret []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Canonical spellings of the Standard Webhooks headers, as http.Header.Set
// would store them.
const (
	canonicalWebhookID        = "Webhook-Id"
	canonicalWebhookTimestamp = "Webhook-Timestamp"
	canonicalWebhookSignature = "Webhook-Signature"
)

// Deliver posts ev once. It returns nil on a 2xx answer and a
// *DeliveryError otherwise. The attempt is bounded by the client's Timeout
// and by ctx.
func (c *Client) Deliver(ctx context.Context, ev Event, attempt int) error {
	// The header map is built directly with canonical keys, its values
	// sharing one backing array: this runs once per event.
	h := make(http.Header, 16)
	vals := make([]string, 0, 16)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Content-Type", "application/json")
	set("User-Agent", "imedge")
	set(HeaderEventID, ev.ID)
	set(HeaderSdkAppID, ev.AppID)
	set(HeaderCommand, ev.Command)
	set(HeaderClientIP, ev.ClientIP)
	if ev.OptPlatform != "" {
		set(HeaderOptPlatform, ev.OptPlatform)
	}
	if ev.Identity != "" {
		set(HeaderClientIdentity, ev.Identity)
	}
	if ev.CertSHA256 != "" {
		set(HeaderClientCertSHA256, ev.CertSHA256)
	}
	set(HeaderRequestID, ev.RequestID)
	if !ev.ReceivedAt.IsZero() {
		set(HeaderReceivedAt, ev.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	set(HeaderAttempt, strconv.Itoa(attempt))
	if c.secret != nil {
		ts := c.now().Unix()
		set(canonicalWebhookID, ev.ID)
		set(canonicalWebhookTimestamp, strconv.FormatInt(ts, 10))
		set(canonicalWebhookSignature, Sign(c.secret, ev.ID, ts, ev.Body))
	}
	return c.post(ctx, h, ev.Body, nil)
}

// post sends one request with headers h and body, and classifies the
// answer. With open set, every reader of body handed to the transport counts
// itself in open until the transport closes it.
func (c *Client) post(ctx context.Context, h http.Header, body []byte, open *atomic.Int32) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	newBody := func() io.ReadCloser {
		if len(body) == 0 {
			return http.NoBody
		}
		if open == nil {
			return io.NopCloser(bytes.NewReader(body))
		}
		open.Add(1)
		return &trackedBody{Reader: bytes.NewReader(body), open: open}
	}
	req := c.tmpl.WithContext(ctx)
	req.Header = h
	req.ContentLength = int64(len(body))
	req.Body = newBody()
	req.GetBody = func() (io.ReadCloser, error) { return newBody(), nil }
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the full URL, query included
		}
		return &DeliveryError{Err: err, url: c.safeURL}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	de := &DeliveryError{StatusCode: resp.StatusCode, Status: statusText(resp), url: c.safeURL}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		de.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	return de
}

func statusText(resp *http.Response) string {
	if t := http.StatusText(resp.StatusCode); t != "" {
		return strconv.Itoa(resp.StatusCode) + " " + t
	}
	return strconv.Itoa(resp.StatusCode)
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else, or a
// time in the past, gives zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// Close releases idle connections. The Client stays usable.
func (c *Client) Close() {
	c.tr.CloseIdleConnections()
}
