package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/imedge/imedge/certs"
)

// ClientOptions configures [NewClient].
type ClientOptions struct {
	// Addr is the admin listener, host:port; a leading http:// or
	// https:// and a trailing / are ignored. Required.
	Addr string
	// CAFile is the PEM bundle of the CAs of the listener's certificate;
	// set, the client speaks https.
	CAFile string
	// CertFile and KeyFile are the client certificate chain and key (PEM)
	// for a listener with mutual TLS; they need CAFile. With them, the
	// certificate is the client's identity and no credential is sent.
	CertFile, KeyFile string
	// CredentialFile holds the local credential, sent as a bearer token
	// over plain HTTP, and only to a loopback address. It is read at each
	// authenticated call, so the new credential of a restarted imedge is
	// picked up.
	CredentialFile string
	// Timeout bounds each request; zero means 10 s.
	Timeout time.Duration
}

// Client calls a running imedge's admin listener: the health and status
// endpoints, and the outbox operations (it implements [Operator]). Create
// it with [NewClient]; safe for concurrent use; call Close when done.
type Client struct {
	base     string // scheme://host:port
	hc       *http.Client
	credFile string
	mtls     bool
	loopback bool
}

// maxAnswer bounds an answer read by Client: a shown event carries a body
// of up to imedge's --max-body.
const maxAnswer = 32 << 20

// NewClient loads o's TLS material and returns a Client. It makes no
// request.
func NewClient(o ClientOptions) (*Client, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(o.Addr, "http://"), "https://"), "/")
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return nil, fmt.Errorf("%w: admin address %q: want host:port", ErrInvalidOptions, o.Addr)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate and its key go together", ErrInvalidOptions)
	}
	if o.CertFile != "" && o.CAFile == "" {
		return nil, fmt.Errorf("%w: a client certificate needs the CA bundle of the listener's certificate (https)", ErrInvalidOptions)
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: timeout}
	c := &Client{base: "http://" + host, credFile: o.CredentialFile, loopback: loopbackHost(h)}
	if o.CAFile != "" {
		pool, _, err := certs.LoadPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loading the admin listener's CA bundle: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if o.CertFile != "" {
			pair, err := certs.LoadKeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("loading the admin client certificate: %w", err)
			}
			tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
			c.mtls = true
		}
		c.base = "https://" + host
	}
	c.hc = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

// URL is the listener's base URL, scheme://host:port.
func (c *Client) URL() string { return c.base }

// Close releases the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Ping asks GET /healthz, which needs no authentication. It returns an
// error wrapping ErrUnreachable when nothing answers at the address.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Get(ctx, "/healthz")
	return err
}

// Get fetches path without authentication (/healthz, /readyz, /status,
// /metrics) and returns the body of a 200 answer; any other answer is an
// *APIError.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("asking %s%s: %w", c.base, path, err)
	}
	return c.send(req, nil)
}

// OutboxStats implements [Operator] (GET /outbox/stats).
func (c *Client) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	err := c.call(ctx, http.MethodGet, "/outbox/stats", nil, &st)
	return st, err
}

// ListEvents implements [Operator] (GET /outbox/events).
func (c *Client) ListEvents(ctx context.Context, q ListQuery) (EventPage, error) {
	var p EventPage
	path := "/outbox/events"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	err := c.call(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// ShowEvent implements [Operator] (GET /outbox/events/{ref}).
func (c *Client) ShowEvent(ctx context.Context, ref string) (Event, error) {
	var ev Event
	if ref == "" {
		return ev, fmt.Errorf("%w: empty ref", ErrBadRequest)
	}
	err := c.call(ctx, http.MethodGet, "/outbox/events/"+url.PathEscape(ref), nil, &ev)
	return ev, err
}

// Act implements [Operator] (POST /outbox/{action}). An answer of 404 or
// 409 returns the result (what was done, what was not found or skipped)
// with the *APIError.
func (c *Client) Act(ctx context.Context, a Action, s Selection) (ActionResult, error) {
	res := ActionResult{Action: a}
	if !a.valid() {
		return res, fmt.Errorf("%w: unknown action %q", ErrBadRequest, clipText(string(a)))
	}
	b, err := json.Marshal(s)
	if err != nil {
		return res, fmt.Errorf("encoding the selection: %w", err)
	}
	err = c.call(ctx, http.MethodPost, "/outbox/"+string(a), b, &res)
	return res, err
}

// call makes an authenticated request and decodes its answer into out.
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("asking %s%s: %w", c.base, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.mtls {
		cred, err := c.credential()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	b, err := c.send(req, out)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// send makes req and returns the body of a 2xx answer. Any other answer
// is an *APIError; its body is decoded into onError too, when it is set
// (an action's partial result).
func (c *Client) send(req *http.Request, onError any) ([]byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
		}
		return nil, fmt.Errorf("asking %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", req.URL.Path, err)
	}
	if len(b) > maxAnswer {
		return nil, fmt.Errorf("the answer of %s is over %d bytes", req.URL.Path, maxAnswer)
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	ae := &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	var er errorReply
	if json.Unmarshal(b, &er) == nil && er.Error != "" {
		ae.Message = er.Error
		if onError != nil {
			_ = json.Unmarshal(b, onError)
		}
	}
	if len(ae.Message) > 512 {
		ae.Message = ae.Message[:512] + "…"
	}
	return nil, ae
}

// maxCredential bounds the credential file read.
const maxCredential = 4 << 10

// credential reads the local credential, refusing to send it anywhere but
// to a loopback address.
func (c *Client) credential() (string, error) {
	if !c.loopback {
		return "", fmt.Errorf("%w: the local credential is only sent to a loopback admin listener, not %s; use mutual TLS", ErrNoCredential, c.base)
	}
	if c.credFile == "" {
		return "", fmt.Errorf("%w: no credential file given", ErrNoCredential)
	}
	f, err := os.Open(c.credFile)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoCredential, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredential))
	if err != nil {
		return "", fmt.Errorf("%w: reading %s: %w", ErrNoCredential, c.credFile, err)
	}
	cred := strings.TrimSpace(string(b))
	if cred == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrNoCredential, c.credFile)
	}
	return cred, nil
}

// loopbackHost reports whether host names this machine only: "localhost"
// or a loopback IP literal.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
