// Package imedge is the module root. It holds one thing: the release
// version, embedded from the VERSION file beside it, so that `go build`,
// `go run ./cmd/imedge` and `make release` stamp the same version without
// linker flags or git tags (a clean clone may carry none).
//
// It does not own the commit or the Go version a binary was built with:
// cmd/imedge reads those from the build information. It imports nothing of
// ours.
package imedge
