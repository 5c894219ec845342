// Package audit owns imedge's audit stream: the record written for every
// rejected callback and every refused TLS handshake, the closed list of
// reason codes, per-key sampling so a flood cannot turn the audit log into
// the attack, the record of every operator action on a running imedge
// ([AdminAction], never sampled), and a log file that can be reopened after
// rotation.
//
// It imports nothing of imedge's own; the TLS layer, the receiver and the
// admin listener write to it. It never sees secrets: callers pass fingerprints, hashes and
// sizes, never tokens, keys or bodies.
package audit
