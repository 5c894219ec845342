package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/imedge/imedge"
)

// buildInfo is what `imedge version` reports about the running binary.
type buildInfo struct {
	Version   string `json:"version"`    // the VERSION file, e.g. "0.1.0"
	Commit    string `json:"commit"`     // VCS revision; "" when the build recorded none (-buildvcs=false, no .git)
	Dirty     bool   `json:"dirty"`      // the tree had uncommitted changes at build time
	GoVersion string `json:"go_version"` // the toolchain that built the binary, e.g. "go1.27.3"
	Platform  string `json:"platform"`   // GOOS/GOARCH, e.g. "linux/amd64"
}

// readBuildInfo collects the version from the embedded VERSION file and the
// rest from the build information the Go linker recorded.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: imedge.Version(), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Dirty = s.Value == "true"
			}
		}
	}
	return b
}

// String is the one-line form: "imedge 0.1.0 (commit abc…+dirty)".
func (b buildInfo) String() string {
	if b.Commit == "" {
		return "imedge " + b.Version
	}
	dirty := ""
	if b.Dirty {
		dirty = "+dirty"
	}
	return fmt.Sprintf("imedge %s (commit %s%s)", b.Version, b.Commit, dirty)
}

// versionString is the one-line version, also served by /status.
func versionString() string { return readBuildInfo().String() }

// runVersion prints the version line, or with --json an object with
// version, commit, dirty, go_version and platform.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("imedge version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print version, commit, dirty flag, Go version and platform as JSON")
	if help, err := parseFlags(fs, args, stdout, "Usage: imedge version [--json]\n"); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("imedge version: unexpected argument %q", fs.Arg(0))
	}
	b := readBuildInfo()
	if !*asJSON {
		_, err := fmt.Fprintln(stdout, b.String())
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(b)
}
