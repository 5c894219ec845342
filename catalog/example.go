package catalog

import (
	"embed"
	"strings"
)

// examples holds one realistic body per command, typed from Tencent's
// documented examples, named after the command. They double as the test
// corpus: every one must pass the receiver's validation.
//
//go:embed examples/*.json
var examples embed.FS

// Example returns a realistic, valid body for the command (a fresh copy the
// caller may modify), or nil when the catalog ships none, which its tests
// do not allow. The same bytes each time: a receiver that de-duplicates
// treats a second copy as a retry.
func (c *Command) Example() []byte {
	b, err := examples.ReadFile("examples/" + c.Name + ".json")
	if err != nil {
		return nil
	}
	return []byte(strings.TrimSpace(string(b)))
}
