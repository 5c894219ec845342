// Package dedupe holds imedge's bounded, time-windowed "seen this key?" set,
// used to drop callbacks that Tencent IM retried after imedge had already
// accepted them.
//
// IM callbacks carry no event id, so the receiver keys each accepted event on
// the SHA-256 of SdkAppid, CallbackCommand and the raw body. The [Set] hands
// out a key with [Set.Claim] and learns the outcome with [Set.Settle]: a key
// is marked seen only once the event was durably accepted; if accepting
// failed it is forgotten, so IM's retry goes through. Two identical requests
// arriving together are serialised: one holds the key, the other waits for
// its outcome and gets the same answer.
//
// # Identical bodies are one event
//
// Because the key is a hash of the body, identical bodies inside the window
// are treated as one event. In particular, if the same friend is deleted,
// re-added and deleted again within the window, IM sends a byte-identical
// "After a Friend Is Deleted" callback the second time, and it is dropped as
// a duplicate (answered OK, not forwarded, counted in [Stats.Hits]). This is
// the price of de-duplicating a protocol without event ids; the window keeps
// it rare.
//
// # Why the default window is 10 minutes
//
// The window runs from first acceptance and is not extended by duplicates.
// IM gives up on a callback after 2 seconds; "after" callbacks are retried
// only when the app enables retry-on-timeout, and the schedule is not
// documented (spec §3). Ten minutes is far longer than any plausible
// retry-on-timeout schedule, so every retry of an accepted event lands inside
// it. It is short enough that a
// genuine repeat of the same deletion (delete, re-add, delete again) rarely
// falls inside it, and it bounds memory: the set holds at most one window of
// accepted keys, and at most [Options.Size] of them.
//
// # Memory and restarts
//
// Seen keys live in a size-bounded table kept in acceptance order
// (imedge/internal/lrutable, with the end of each key's window stored as the
// value; expiry is checked lazily, and expired keys at the old end are
// dropped before the size bound evicts anything). Each key is stored as a
// 16-byte digest next to its 8-byte window end, in arrays that hold no
// pointers: about 40 bytes of heap per key, which the garbage collector
// never scans (BenchmarkMemory_1MKeys). The table grows with the keys held,
// up to [Options.Size]. Keys being decided ("in flight") are kept apart in a
// small map so they can never be evicted; that map is bounded by the number
// of concurrent requests. After a restart, the caller re-marks the keys
// accepted within the window with [Set.Load], so a retry that arrives after
// the restart is still recognised.
//
// The package does no I/O, starts no goroutines and imports no other imedge
// package except internal/lrutable. It does not compute keys (the receiver does) and it does not
// persist anything (the outbox does).
package dedupe
