package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// getIPListPath is the REST path of GetIPList.
const getIPListPath = "/v4/ConfigSvc/GetIPList"

// maxSkippedSample bounds Answer.SkippedSample.
const maxSkippedSample = 5

// maxErrorInfo bounds the ErrorInfo text kept from an answer.
const maxErrorInfo = 200

// Answer is one successful GetIPList answer. The zero value is an empty
// answer.
type Answer struct {
	NetType       NetType        // the list asked for
	Prefixes      []netip.Prefix // valid entries, canonical, in answer order
	Skipped       int            // entries left out: not an address or CIDR, or too broad
	SkippedSample []string       // up to 5 of them, each cut to 64 bytes
}

// Client calls IM's GetIPList. Create it with NewClient; the zero value is
// not usable. Safe for concurrent use; CloseIdleConnections releases its
// pooled connections. A Source has its own; use a Client alone for a
// one-off fetch (a check command, say).
type Client struct {
	base, host string
	appID      uint64
	identifier string
	key        []byte
	lifetime   time.Duration
	timeout    time.Duration
	now        func() time.Time
	http       *http.Client
	transport  *http.Transport
}

// NewClient returns a Client for the app and REST host in o (its schedule
// fields are ignored). Errors wrap ErrBadOption or ErrUnknownRegion.
func NewClient(o Options) (*Client, error) {
	base, err := o.normalise()
	if err != nil {
		return nil, err
	}
	return newClient(o, base), nil
}

func newClient(o Options, base string) *Client {
	tr := &http.Transport{
		// An operator whose hosts reach the internet through a proxy sets
		// HTTPS_PROXY as for any Go program; loopback is never proxied.
		Proxy:                  http.ProxyFromEnvironment,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout:    o.FetchTimeout,
		ResponseHeaderTimeout:  o.FetchTimeout,
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        30 * time.Second, // fetches are minutes apart; keep nothing open between them
		ForceAttemptHTTP2:      true,
	}
	u, _ := url.Parse(base) // validated by normalise
	return &Client{
		base: base, host: u.Host,
		appID: o.AppID, identifier: o.Identifier, key: o.SecretKey,
		lifetime: o.UserSigLifetime, timeout: o.FetchTimeout, now: o.Now,
		transport: tr,
		http: &http.Client{
			Transport: tr,
			// A redirect would resend the admin UserSig to another URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Host returns the REST host the Client calls.
func (c *Client) Host() string { return c.host }

// CloseIdleConnections closes the Client's pooled connections.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// ipListReply is GetIPList's JSON answer. IPList entries are kept raw so
// that one entry of the wrong type is skipped, not the whole answer.
type ipListReply struct {
	ActionStatus string            `json:"ActionStatus"`
	ErrorCode    int               `json:"ErrorCode"`
	ErrorInfo    string            `json:"ErrorInfo"`
	IPList       []json.RawMessage `json:"IPList"`
}

// Fetch calls GetIPList once for nettype n, with a fresh UserSig, within
// the fetch timeout. An answer with a non-zero ErrorCode is an *APIError;
// other failures wrap ErrBadResponse, ErrResponseTooLarge,
// ErrTooManyEntries or the transport's error. No error text contains the
// request URL, which carries the UserSig.
func (c *Client) Fetch(ctx context.Context, n NetType) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	sig := UserSig(c.key, c.appID, c.identifier, c.now(), c.lifetime)
	q := url.Values{
		"sdkappid":    {strconv.FormatUint(c.appID, 10)},
		"identifier":  {c.identifier},
		"usersig":     {sig},
		"random":      {strconv.FormatUint(uint64(rand.Uint32()), 10)},
		"contenttype": {"json"},
		"nettype":     {n.String()},
	}
	where := fmt.Sprintf("calling GetIPList at %s (nettype %d)", c.host, n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+getIPListPath+"?"+q.Encode(), strings.NewReader("{}"))
	if err != nil {
		return Answer{}, fmt.Errorf("%s: %w", where, withoutURL(err, sig))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("%s: %w", where, withoutURL(err, sig))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return Answer{}, fmt.Errorf("%s: reading the answer: %w", where, withoutURL(err, sig))
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("%s: %w: HTTP status %d", where, ErrBadResponse, resp.StatusCode)
	}
	if len(body) > MaxResponseBytes {
		return Answer{}, fmt.Errorf("%s: %w: more than %d bytes", where, ErrResponseTooLarge, MaxResponseBytes)
	}
	return parseReply(n, body, where, sig)
}

// parseReply reads one GetIPList answer to a request that carried sig.
func parseReply(n NetType, body []byte, where, sig string) (Answer, error) {
	var r ipListReply
	if err := json.Unmarshal(body, &r); err != nil {
		return Answer{}, fmt.Errorf("%s: %w: %w", where, ErrBadResponse, err)
	}
	if r.ErrorCode != 0 {
		// Should IM's text quote the request, the UserSig is cut out of it.
		info := strings.ReplaceAll(r.ErrorInfo, sig, "<usersig>")
		info = strings.ReplaceAll(info, url.QueryEscape(sig), "<usersig>")
		return Answer{}, fmt.Errorf("%s: %w", where, &APIError{Code: r.ErrorCode, Info: printable(info, maxErrorInfo)})
	}
	if r.ActionStatus != "OK" {
		return Answer{}, fmt.Errorf("%s: %w: ActionStatus %q", where, ErrBadResponse, printable(r.ActionStatus, 32))
	}
	if len(r.IPList) > MaxEntries {
		return Answer{}, fmt.Errorf("%s: %w: %d, at most %d", where, ErrTooManyEntries, len(r.IPList), MaxEntries)
	}
	a := Answer{NetType: n, Prefixes: make([]netip.Prefix, 0, len(r.IPList))}
	for _, raw := range r.IPList {
		var s string
		err := json.Unmarshal(raw, &s)
		var p netip.Prefix
		if err == nil {
			p, err = ParseEntry(s)
		}
		if err != nil {
			a.Skipped++
			if len(a.SkippedSample) < maxSkippedSample {
				a.SkippedSample = append(a.SkippedSample, printable(string(bytes.TrimSpace(raw)), maxEntryLen))
			}
			continue
		}
		a.Prefixes = append(a.Prefixes, p)
	}
	return a, nil
}

// withoutURL strips the *url.Error net/http wraps around transport errors:
// its text quotes the request URL, and so the UserSig. Should the remaining
// text still contain the UserSig, it is replaced altogether.
func withoutURL(err error, sig string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if msg := err.Error(); strings.Contains(msg, sig) || strings.Contains(msg, url.QueryEscape(sig)) {
		return errors.New("request failed (the error text quoted the request URL and was withheld)")
	}
	return err
}

// printable returns s with control and invalid characters replaced by
// '?', cut to at most n bytes: IM's texts go into logs and /status.
func printable(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			r = '?'
		}
		if b.Len()+len(string(r)) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
