// Package uring flushes files to stable storage through Linux's io_uring,
// so that a goroutine waiting for the flush parks in the Go scheduler
// instead of holding an OS thread in a blocking system call.
//
// A blocking fdatasync(2) of a few hundred microseconds makes the Go
// runtime's monitor thread wake every 20 us while it lasts, take the
// processor away from the blocked thread and hand it to another, and park
// that thread again when the call returns. Under a steady stream of
// flushes (imedge's outbox journal syncs once per group of callbacks) that
// churn costs more CPU than the flush itself. Through a [Ring] the flush
// runs on a kernel worker; its completion is signalled on an eventfd that
// the waiting goroutine reads through the runtime's network poller.
//
// A Ring runs one flush at a time; callers queue on it. [New] fails with an
// error wrapping [ErrUnavailable] where the kernel or a seccomp policy
// (Docker's default one, for instance) does not offer io_uring, and on
// operating systems other than Linux; callers then use fdatasync(2).
package uring
