package forward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// HeaderBatchSize carries the number of events in a batched delivery (see
// [BatchDeliverer]).
const HeaderBatchSize = "X-Imedge-Batch-Size"

// MaxBatch is the largest batch a Dispatcher forms.
const MaxBatch = 1000

// BatchDeliverer posts several events in one request; *Client implements
// it. attempts[i] is the attempt number of evs[i], from 1. A nil error
// means every event was delivered; any error means none was, and it is
// classified like [Deliverer]'s (a *DeliveryError says whether and when to
// retry).
type BatchDeliverer interface {
	DeliverBatch(ctx context.Context, evs []Event, attempts []int) error
}

// DeliverBatch posts evs as one JSON array (see the package documentation,
// "Batches"). It returns nil on a 2xx answer and a *DeliveryError
// otherwise; the outcome applies to every event of the batch.
func (c *Client) DeliverBatch(ctx context.Context, evs []Event, attempts []int) error {
	if len(evs) == 0 || len(evs) != len(attempts) {
		return &DeliveryError{Err: fmt.Errorf("building batch: %w: %d events, %d attempts", ErrInvalidOptions, len(evs), len(attempts)), url: c.safeURL}
	}
	buf := c.bufs.Get().(*[]byte)
	body := appendBatch((*buf)[:0], evs, attempts)
	*buf = body
	var open atomic.Int32 // request body readers the transport has not closed
	defer func() {
		// The transport may still read the body after an early answer;
		// the buffer is reused only once every reader was closed.
		if open.Load() == 0 && cap(body) <= maxPooledBatch {
			c.bufs.Put(buf)
		}
	}()
	h := make(http.Header, 8)
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"imedge"}
	h[HeaderBatchSize] = []string{strconv.Itoa(len(evs))}
	if c.secret != nil {
		ts := c.now().Unix()
		id := BatchID(evs)
		h[canonicalWebhookID] = []string{id}
		h[canonicalWebhookTimestamp] = []string{strconv.FormatInt(ts, 10)}
		h[canonicalWebhookSignature] = []string{Sign(c.secret, id, ts, body)}
	}
	return c.post(ctx, h, body, &open)
}

// BatchID is the Standard Webhooks message id of a batch: "batch_" and the
// hex SHA-256 of its event ids, each followed by a newline.
func BatchID(evs []Event) string {
	h := sha256.New()
	for _, ev := range evs {
		_, _ = io.WriteString(h, ev.ID)
		_, _ = h.Write([]byte{'\n'})
	}
	var sum [sha256.Size]byte
	return "batch_" + hex.EncodeToString(h.Sum(sum[:0]))
}

// trackedBody is a request body that counts itself in open until closed.
type trackedBody struct {
	*bytes.Reader
	open   *atomic.Int32
	closed atomic.Bool
}

func (b *trackedBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
	return nil
}

// maxPooledBatch bounds the batch buffers a Client keeps for reuse.
const maxPooledBatch = 1 << 20

// appendBatch appends the JSON array of a batch to b. A body that is valid
// JSON is embedded as is, byte for byte ("body"); any other body (imedge's
// receiver never stores one) is carried base64-encoded ("body_base64").
func appendBatch(b []byte, evs []Event, attempts []int) []byte {
	b = append(b, '[')
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, ev.ID)
		b = append(b, `,"sdkappid":`...)
		b = appendJSONString(b, ev.AppID)
		b = append(b, `,"command":`...)
		b = appendJSONString(b, ev.Command)
		b = append(b, `,"client_ip":`...)
		b = appendJSONString(b, ev.ClientIP)
		if ev.OptPlatform != "" {
			b = append(b, `,"opt_platform":`...)
			b = appendJSONString(b, ev.OptPlatform)
		}
		if ev.Identity != "" {
			b = append(b, `,"client_identity":`...)
			b = appendJSONString(b, ev.Identity)
		}
		if ev.CertSHA256 != "" {
			b = append(b, `,"client_cert_sha256":`...)
			b = appendJSONString(b, ev.CertSHA256)
		}
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, ev.RequestID)
		if !ev.ReceivedAt.IsZero() {
			b = append(b, `,"received_at":"`...)
			b = ev.ReceivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, '"')
		}
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(attempts[i]), 10)
		if ev.BodyJSON || json.Valid(ev.Body) {
			b = append(b, `,"body":`...)
			b = append(b, ev.Body...)
		} else {
			b = append(b, `,"body_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, ev.Body)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	// Ids, addresses and names need no escaping: copy the plain prefix at
	// once.
	plain := 0
	for plain < len(s) && s[plain] >= 0x20 && s[plain] < utf8.RuneSelf && s[plain] != '"' && s[plain] != '\\' {
		plain++
	}
	b = append(b, s[:plain]...)
	for i := plain; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
