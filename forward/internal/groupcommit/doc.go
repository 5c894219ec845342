// Package groupcommit gathers the requests of concurrent callers into
// groups and commits each group with one call, without a timer. The outbox
// uses it twice: for its write-ahead journal (one write and one fdatasync
// per group, internal/journal) and for its bbolt transactions
// (internal/store).
//
// It owns only the grouping: what a commit does, and what a failed commit
// means for each request, is the caller's. It imports nothing of ours.
package groupcommit
