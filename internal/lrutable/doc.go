// Package lrutable holds [Table], a hash table of fixed-size keys kept in
// least-recently-used order, built for large, bounded tables such as
// imedge's per-ClientIP rate limiter and its dedupe set.
//
// A [Table] stores its entries in one slice of slots linked in LRU order by
// int32 indices, and finds them through an open-addressing index of int32
// slot numbers. With a value type that holds no pointers, neither array
// holds any pointer, so the garbage collector never scans them however many
// keys they hold, and no operation allocates except to grow the arrays. A
// table holding n keys of 16 bytes with values of v bytes costs about
// n·(24+v) bytes of slots plus 5 to 11 bytes per key of index.
//
// The package owns the data structure only. It does not decide what to
// evict or when: callers check [Table.Len] against their own bound and call
// [Table.RemoveOldest]. It does no locking, starts no goroutines and
// imports no other imedge package.
package lrutable
