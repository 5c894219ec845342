// Package forward owns what happens to a callback after imedge accepted it:
// a durable outbox on local disk and the delivery of each stored event to
// the internal URL.
//
// # Outbox
//
// [Outbox] is an embedded bbolt store (one file, [FileName], in its
// directory; directory 0700, files 0600) behind a write-ahead journal
// ([JournalFileName], a fixed-size 64 MiB file written with zeros once,
// when created).
// [Outbox.Append] returns only after the event is written to the journal
// and fdatasynced; concurrent Appends share one write and one fdatasync:
// records that arrive while a sync runs form the next group, written as
// soon as that one ends and the goroutines ready to run have had their
// turn (those about to append join it), with no timer. A background applier then copies
// journaled events into bbolt, as many per transaction as are waiting (at
// most one transaction every 100 ms under load), together with a
// journal-applied mark and the deletes of delivered events. Up to 8192
// journaled events are also kept in memory and are deliverable at once; one
// delivered before the applier's transaction has only its id written (its
// record and its delete cancel out). Anything that reads or changes a
// stored record first waits for the applier. When the journal is nearly full and everything in it is applied,
// writing starts over at its beginning; recovery tells the records of the
// previous pass apart by their lower sequence numbers. Writing inside a file that does not grow keeps
// the synchronous part of an Append to one small fdatasync (about 0.3 ms
// here, against about 1.4 ms for a loaded bbolt commit with its two).
// Reads (Stats, List, Show, AcceptedSince, Replay, PurgeDead) first wait
// for the applier, so they see every appended event. An event over a
// quarter of the journal skips it and is committed to bbolt directly.
//
// An event is stored under a monotonically increasing sequence number, so
// the same event id may be stored twice (for example after the dedupe
// window). The outbox is bounded in events and bytes, counting pending
// events and dead letters together; when it is full, Append fails with
// [ErrFull] and stores nothing, and any write failure is returned too, so
// the caller never acknowledges an event that was not stored. While the
// applier cannot write bbolt (disk full, file size cap), Append fails with
// its error, so callers get 503 instead of filling the journal. Ids of
// accepted events are also kept for a while (RememberFor), delivered or
// not, so a dedupe window can be reloaded at start with
// [Outbox.AcceptedSince].
//
// After kill -9 or a power cut, reopening the directory gives every event
// whose Append had returned nil: the journal's records carry a length and
// a CRC-32C, recovery copies every intact record newer than the store's
// journal-applied mark into bbolt and stops at the first torn or corrupt
// one; bbolt's copy-on-write pages and its two checksummed meta pages make
// a torn commit fall back to the previous one, whose mark is older, so the
// journal supplies what the torn commit lost. A read-only open (the
// operator commands that only look) does not read the journal: after a
// crash, events of the last moments appear once the server (or replay, or
// purge) has opened the directory for writing. Only one process may open
// a directory; another gets [ErrLocked] ("stop it first"). Operator
// commands (stats, list, show, replay, purge)
// are methods of Outbox and therefore need the server stopped.
//
// # Delivery
//
// [Dispatcher] claims due events, oldest first (lowest sequence among those
// whose backoff ended), and hands each to a [Deliverer], normally [Client].
// It deletes an event only after a 2xx. Failures are retried with
// exponential backoff and full jitter, at least the Retry-After of a 429 or
// 503; a 4xx other than 408 and 429, an event older than MaxAge, or one past
// MaxAttempts is moved to the dead letters with its last error (status and
// reason, never a body). Attempt counts, next-attempt times and errors are
// persisted, so a restart respects them. Delivery is at least once: an event
// may arrive twice if imedge stops between the internal service's answer
// and the delete; the internal service de-duplicates on the event id.
// While the internal URL gives no answer at all (connection refused, DNS,
// TLS, timeout), new attempts pause, growing from BackoffBase to at most
// min(BackoffMax, 2 s), instead of trying every pending event against it;
// any answer ends the pause ([DispatcherStats.PausedUntil]).
//
// # Headers
//
// [Client] POSTs the original body bytes, unchanged, with these headers:
//
//	Content-Type                 application/json
//	X-Imedge-Event-Id            event id (hex SHA-256 of SdkAppid, command, body)
//	X-Imedge-Sdkappid            SdkAppid
//	X-Imedge-Command             CallbackCommand
//	X-Imedge-Client-Ip           ClientIP
//	X-Imedge-Opt-Platform        OptPlatform (omitted when empty)
//	X-Imedge-Client-Identity     verified client-certificate identity (omitted when empty)
//	X-Imedge-Client-Cert-Sha256  SHA-256 of the client certificate (omitted when empty)
//	X-Imedge-Request-Id          imedge's request id
//	X-Imedge-Received-At         arrival time, RFC 3339 with nanoseconds, UTC
//	X-Imedge-Attempt             attempt number, from 1
//	User-Agent                   imedge
//
// and, when a signing secret is configured, Standard Webhooks headers:
//
//	webhook-id         the event id
//	webhook-timestamp  Unix seconds of this attempt
//	webhook-signature  "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body))
//
// The secret is given as "whsec_" + base64 or as raw bytes; it and the body
// are never logged.
//
// # Batches
//
// With [DispatcherOptions.BatchSize] above 1 (imedge serve --forward-batch N)
// and a Deliverer that implements [BatchDeliverer] (Client does), each
// request carries up to N due events, oldest first, as one JSON array, and
// the X-Imedge-Batch-Size header says how many. A batch that is not full
// waits up to [DispatcherOptions.BatchWait] for more due events; a lone
// event then leaves in an array of one. Each element carries what the
// headers carry for a single event:
//
//	{"id":"<event id>","sdkappid":"1400000000","command":"Sns.CallbackFriendDelete",
//	 "client_ip":"36.112.173.178","opt_platform":"iOS",
//	 "client_identity":"spiffe://…","client_cert_sha256":"…",
//	 "request_id":"…","received_at":"2026-11-26T06:12:01.52Z","attempt":1,
//	 "body":{…the exact bytes IM sent…}}
//
// opt_platform, client_identity, client_cert_sha256 and received_at are left
// out when empty. A body that is not valid JSON (the receiver never stores
// one) is sent as "body_base64" instead. A 2xx delivers every event of the
// batch; any other answer fails all of them, and each is retried (or
// dead-lettered) on its own schedule, so the next batch may group them
// differently. With a signing secret, webhook-id is "batch_" + the hex
// SHA-256 of the event ids, each followed by a newline ([BatchID]), and the
// signature covers the whole array. Batching saves a request, a read and a
// delete transaction per event; the internal service must accept arrays.
//
// # Not here
//
// The package does not validate callbacks, authenticate IM or de-duplicate
// (receiver and dedupe do), and it imports neither: cmd/imedge converts
// receiver.Event to [Event] and maps [ErrFull] to the receiver's 503.
package forward
