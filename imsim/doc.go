// Package imsim simulates Tencent Cloud IM's callback client: it builds
// callback requests (query parameters, optional token Sign, FriendDelete
// bodies), sends them over mutual TLS with a client certificate, and drives
// a fixed-concurrency load measuring throughput, latency percentiles and
// errors by kind.
//
// [Send] posts one callback and returns IM's view of the answer (the
// operator's "verify" button); for a callback whose reply IM acts on (a
// before-callback), [ReadDecision] reads that answer as IM would: allow,
// deny, rewrite, drop or partial. [Load] runs workers that each keep one
// keep-alive connection ([KeepAlive]), open a new connection with a full
// handshake per request ([NewConn]), or open a new connection per request
// resuming the TLS session from a ticket ([Resume]). Bodies can be
// distinct per request, all the same, or a mix with a share of repeats;
// ClientIPs can be one address or a number of distinct ones. A load can
// send any command with a body template, and count the answers to
// before-callbacks by decision.
//
// The package speaks HTTP/1.1 itself over crypto/tls, one request per
// connection at a time, so that the client spends as little CPU as possible
// and the connection count equals the concurrency.
//
// # Not here
//
// imsim does not validate the callbacks it sends (anything can be sent, so a
// test can send bad ones) and holds no package-level state; it imports no
// package of this module.
package imsim
