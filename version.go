package imedge

import (
	_ "embed"
	"strings"
)

// versionFile is the VERSION file's content, set at compile time and never
// written.
//
//go:embed VERSION
var versionFile string

// Version returns the release version from the VERSION file without a "v"
// prefix, e.g. "0.1.0". A release is tagged "v" + Version(); a build between
// releases reports the last released version, and its commit (see
// `imedge version`) tells it apart. Safe for concurrent use.
func Version() string { return strings.TrimSpace(versionFile) }
