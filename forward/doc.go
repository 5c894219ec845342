// Package forward owns what happens to a callback after imedge accepted it:
// a durable outbox on local disk, per destination, and the delivery of each
// stored event to its destination's internal URL.
//
// # Parts
//
// The package is four parts with narrow seams between them:
//
//   - The write-ahead journal and its applier: internal/journal owns the
//     journal file (framing, sequence numbers, flush, reuse) and
//     internal/groupcommit the grouping of concurrent callers; the applier
//     (apply.go) writes appended events to the journal, makes them
//     deliverable at once, and copies them into the store in the
//     background.
//   - The store: internal/store owns the bbolt file, its buckets, the
//     record and state codecs, the format version and its upgrade, and
//     every query and write of stored events. Only it imports bbolt.
//   - Scheduling and delivery: a queue per destination (queue.go,
//     schedule.go: its share of the limits, its schedule, its events kept
//     in memory for their first attempt) and a [Dispatcher] per
//     destination (backoff, pause, batching) posting through a
//     [Deliverer], normally [Client].
//   - The front: [Outbox] (outbox.go, ops.go), which the receiver calls
//     (Append) and operators query, and which ties the parts together.
//
// The journal and the store are internal packages because they are
// self-contained and their interfaces are narrow (bytes with sequence
// numbers; records, states and queries): the compiler keeps forward out
// of their insides. The applier, the queues and the Dispatcher stay in
// this package as separate types: on the fast path an appended event is
// one allocation handed by pointer from Append through the journal's
// group commit to the applier, its queue and its Dispatcher, and splitting
// them across packages would mean exporting those internals or copying
// each event at every seam. Each part has its own tests.
//
// # Outbox
//
// [Outbox] is an embedded bbolt store (one file, [FileName], in its
// directory; directory 0700, files 0600) behind a write-ahead journal
// ([JournalFileName], a fixed-size 64 MiB file written with zeros once,
// when created).
// [Outbox.Append] returns only after the event is written to the journal
// and flushed (through io_uring where the kernel offers it, else
// fdatasync(2)); concurrent Appends share one write and one flush:
// records that arrive while a flush runs form the next group, written as
// soon as that one ends and the goroutines ready to run have had their
// turn (those about to append join it), with no timer. A background
// applier then copies journaled events into bbolt, as many per
// transaction as are waiting (at most one transaction every 100 ms under
// load), together with a journal-applied mark and the removals of
// delivered events. Up to 8192 journaled events are also kept in memory
// and are deliverable at once; one delivered before the applier's
// transaction is never written as pending (its record and its removal
// cancel out). Anything that reads or changes a stored record first waits
// for the applier, so reads (Stats, List, Show, AcceptedSince, replay,
// purge) see every appended event and no delivered one. When the journal
// is nearly full and everything in it is applied, writing starts over at
// its beginning; recovery tells the records of the previous pass apart by
// their lower sequence numbers. Writing inside a file that does not grow
// keeps the synchronous part of an Append to one small flush (about 0.3 ms
// here, against about 1.4 ms for a loaded bbolt commit with its two). An
// event over a quarter of the journal skips it and is committed to bbolt
// directly.
//
// An event is stored under a monotonically increasing sequence number, so
// the same event id may be stored twice (for example after the dedupe
// window). Any write failure is returned, so the caller never acknowledges
// an event that was not stored. While the applier cannot write bbolt (disk
// full, file size cap), Append fails with its error, so callers get 503
// instead of filling the journal. Ids of accepted events are also kept for
// a while (RememberFor), delivered or not, so a dedupe window can be
// reloaded at start with [Outbox.AcceptedSince].
//
// After kill -9 or a power cut, reopening the directory gives every event
// whose Append had returned nil: the journal's records carry a length and
// a CRC-32C, recovery copies every intact record newer than the store's
// journal-applied mark into bbolt and stops at the first torn or corrupt
// one; bbolt's copy-on-write pages and its two checksummed meta pages make
// a torn commit fall back to the previous one, whose mark is older, so the
// journal supplies what the torn commit lost. A read-only open (inspecting
// a stopped instance) does not recover the journal: it lists the
// journal's unapplied records as pending, and the next writable open
// stores them. Only one process may open a directory for writing; another
// gets [ErrLocked] ("stop it first"). The operator methods (Stats, List,
// Show, ReplayDead, ReplayDelivered, PurgeDead, RetryNow) are safe on the
// running server's open Outbox.
//
// # Destinations
//
// Each [Event] names its destination: a stable name the caller chooses,
// the route's pattern (e.g. "Group.*"), or [DefaultDestination] for the
// catch-all; never a URL, which may carry a secret. The store keeps the
// name, so changing a destination's URL redirects its pending events.
// Each destination configured at open ([OutboxOptions.Destinations]) has
// its own queue and is delivered by its own [Dispatcher] (own workers,
// backoff and pause, own Deliverer built from the destination's URL): a
// destination that is down or slow does not delay the others.
//
// The limits (MaxEvents, MaxBytes) count pending events and dead letters
// and are split equally among the configured destinations, default
// included (the remainder of the division goes to default). When one
// destination's share is full, only its Appends fail with [ErrFull]; the
// others keep accepting. Equal shares are the simple rule that guarantees
// every destination its room whatever the others do: a destination whose
// internal service is down fills its share and no more. (A shared pool
// would let one outage take the room of all; weights would be one more
// setting to get right.) A deployment whose routes need more room raises
// the limits.
//
// Events stored under a destination that is not configured at open (a
// route removed) count against default's share and are delivered through
// default; the open logs a warning per such destination with its counts.
//
// # Retention
//
// Delivered events (bodies included) are kept for
// [OutboxOptions.RetainDelivered], 24 hours by default, so that they can
// be replayed ([Outbox.ReplayDelivered]) after the internal service lost
// events it had acknowledged. They only use the room the limits leave:
// they do not count against a destination's share, every applier
// transaction drops the oldest deliveries until pending events, dead
// letters and retained events fit the limits together, and so a retained
// event never makes Append refuse a callback. At the default limits a day
// is kept below about one callback a second; at higher rates the limits
// shorten what is kept, oldest first. Retention costs no time on the path
// that answers IM: the applier writes each delivered event's record to
// bbolt once (an event delivered before it was stored was never written
// at all without retention) and deletes it when it ages or needs the room;
// BenchmarkPipeline (retain=true against retain=false) measures that
// cost. A negative RetainDelivered keeps nothing.
//
// # Format
//
// The store records its format version (internal/store documents the
// layout). Opening an older format upgrades it (format 1, imedge before
// destinations: its events belong to default); opening a newer one fails
// with [ErrNewerFormat] and leaves it untouched, even when it is empty
// (the format is recorded in the store). To go back to an older imedge,
// drain the outbox (stop taking callbacks, let every event be delivered,
// deal with the dead letters), then move its directory aside so that the
// older imedge starts a new one.
//
// # Delivery
//
// [Dispatcher] claims due events of its destination, oldest first (lowest
// sequence among those whose backoff ended), and hands each to a
// [Deliverer], normally [Client]. It removes an event only after a 2xx.
// Every other answer, and no answer, is retried with exponential backoff
// and full jitter, at least the Retry-After of a 429 or 503, until the
// event is past MaxAttempts or MaxAge; it then moves to the dead letters
// with its last error (status and reason, never a body). Statuses listed
// in [DispatcherOptions.PermanentStatus] dead-letter at their first answer
// instead (a 4xx is often a mis-routed URL or an expired token, fixed in
// minutes: retrying is the safe default). Attempt counts,
// next-attempt times, errors and the last [HistoryLen] attempts (time,
// status or error, duration) are persisted, so a restart respects them
// and operators see them ([Outbox.Show]). Delivery is at least once: an
// event may arrive twice if imedge stops between the internal service's
// answer and the removal; the internal service de-duplicates on the event
// id. While the internal URL gives no answer at all (connection refused,
// DNS, TLS, timeout), new attempts pause, growing from BackoffBase to at
// most min(BackoffMax, 2 s), instead of trying every pending event against
// it; any answer ends the pause ([DispatcherStats.PausedUntil]).
//
// Each attempt, single or batched, is reported to
// [DispatcherOptions.OnAttempt] (for latency metrics). Failures and dead
// letters are logged sampled, per destination: at most one "delivery
// failing" and one "events dead-lettered" warning per 10 s, with the count
// in the window, the window and the last error; per-event lines are debug.
// Durations in log records are Go duration strings ("1.5s").
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
// removal per event; the internal service must accept arrays.
//
// # Not here
//
// The package does not validate callbacks, authenticate IM, de-duplicate
// or route (receiver, dedupe and cmd/imedge do: the caller picks each
// event's destination), and it imports none of them: cmd/imedge converts
// receiver.Event to [Event] and maps [ErrFull] to the receiver's 503.
package forward
