package forward

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
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

// loaded is a claimed event read back for delivery.
type loaded struct {
	seq        uint64
	ev         Event
	st         deliveryState
	acceptedAt time.Time
}

// loadEntries reads claimed events in one read transaction. Events no
// longer pending are left out and returned in gone.
func (o *Outbox) loadEntries(seqs []uint64) (found []loaded, gone []uint64, err error) {
	if o.closed.Load() {
		return nil, nil, ErrClosed
	}
	found = make([]loaded, 0, len(seqs))
	var stored []uint64 // not fresh: read from the store
	for _, seq := range seqs {
		if f, ok := o.takeFresh(seq); ok {
			found = append(found, loaded{seq: seq, ev: f.ev, acceptedAt: f.acceptedAt})
		} else {
			stored = append(stored, seq)
		}
	}
	if len(stored) == 0 {
		return found, nil, nil
	}
	o.waitSeqApplied(slices.Max(stored)) // an early event may not be stored yet
	err = o.db.View(func(tx *bolt.Tx) error {
		p, s := tx.Bucket(bucketPending), tx.Bucket(bucketState)
		for _, seq := range stored {
			k := seqKey(seq)
			v := p.Get(k)
			if v == nil {
				gone = append(gone, seq)
				continue
			}
			l := loaded{seq: seq}
			var derr error
			if l.ev, l.acceptedAt, _, derr = decodeRecord(v, true); derr != nil {
				return fmt.Errorf("entry %d: %w", seq, derr)
			}
			if sv := s.Get(k); sv != nil {
				l.st, _ = decodeState(sv)
			}
			found = append(found, l)
		}
		return nil
	})
	// Oldest first, as claimed, whichever source an event came from.
	slices.SortFunc(found, func(a, b loaded) int { return cmp.Compare(a.seq, b.seq) })
	return found, gone, err
}

// completeMany deletes delivered events in one transaction. On a store
// error they are scheduled again at retryAt (and may be delivered twice).
//
// With the applier running (a writable outbox) the delete is queued for its
// next transaction and completeMany returns nil at once; the events stay
// claimed until it commits (a failed transaction is tried again).
func (o *Outbox) completeMany(seqs []uint64, retryAt time.Time) error {
	if o.applyDone != nil {
		o.queueDeletes(seqs)
		return nil
	}
	sizes := make([]int64, len(seqs))
	err := o.update(func(tx *bolt.Tx) error {
		p, s := tx.Bucket(bucketPending), tx.Bucket(bucketState)
		for i, seq := range seqs {
			k := seqKey(seq)
			sizes[i] = int64(len(p.Get(k)))
			if err := p.Delete(k); err != nil {
				return err
			}
			if err := s.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		for _, seq := range seqs {
			o.sched.finish(seq, true, retryAt)
		}
		o.signal()
		return fmt.Errorf("deleting delivered events: %w", err)
	}
	for i, seq := range seqs {
		if sizes[i] > 0 {
			o.pendingN--
			o.pendingBytes -= sizes[i]
		}
		o.sched.finish(seq, false, time.Time{})
	}
	return nil
}

// failedEntry is the recorded outcome of a failed attempt: the new state,
// and whether the event goes to the dead letters.
type failedEntry struct {
	seq     uint64
	st      deliveryState
	dead    bool
	retryAt time.Time // when a store error leaves a dead-lettered event pending
}

// settleFailures persists failed attempts in one transaction: dead ones move
// to the dead letters, the others get their next attempt. It reports which
// were dead-lettered. On a store error nothing changed on disk; the events
// are scheduled again (at their next attempt, or retryAt for dead ones).
func (o *Outbox) settleFailures(fs []failedEntry) (buried []bool, err error) {
	var last uint64
	for _, f := range fs {
		last = max(last, f.seq)
	}
	o.waitSeqApplied(last) // an event delivered early may not be stored yet
	sizes := make([]int64, len(fs))
	err = o.update(func(tx *bolt.Tx) error {
		p, s, d := tx.Bucket(bucketPending), tx.Bucket(bucketState), tx.Bucket(bucketDead)
		for i, f := range fs {
			sizes[i] = 0
			k := seqKey(f.seq)
			rec := p.Get(k)
			if rec == nil {
				continue
			}
			if !f.dead {
				if err := s.Put(k, encodeState(f.st)); err != nil {
					return err
				}
				continue
			}
			if err := d.Put(k, encodeDead(f.st, rec)); err != nil {
				return err
			}
			sizes[i] = int64(len(rec))
			if err := p.Delete(k); err != nil {
				return err
			}
			if err := s.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	buried = make([]bool, len(fs))
	o.mu.Lock()
	for i, f := range fs {
		switch {
		case err != nil && f.dead:
			o.sched.finish(f.seq, true, f.retryAt)
		case !f.dead:
			o.sched.finish(f.seq, true, f.st.NextAttempt)
		default:
			if sizes[i] > 0 {
				o.pendingN--
				o.pendingBytes -= sizes[i]
				o.deadN++
				o.deadBytes += sizes[i]
				buried[i] = true
			}
			o.sched.finish(f.seq, false, time.Time{})
		}
	}
	o.mu.Unlock()
	o.signal()
	if err != nil {
		return buried, fmt.Errorf("recording failed attempts: %w", err)
	}
	return buried, nil
}
