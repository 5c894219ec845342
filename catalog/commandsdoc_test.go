package catalog

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite docs/commands.md from the table")

const commandsDoc = "../docs/commands.md"

// TestCommandsDoc keeps docs/commands.md in step with the table; run
// `go test ./catalog -run TestCommandsDoc -update` to rewrite it.
func TestCommandsDoc(t *testing.T) {
	got := commandsMarkdown(New())
	if *update {
		require.NoError(t, os.WriteFile(commandsDoc, got, 0o644))
	}
	want, err := os.ReadFile(commandsDoc)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "docs/commands.md is out of step with the table; run go test ./catalog -run TestCommandsDoc -update")
}

// commandsMarkdown renders the catalog as docs/commands.md.
func commandsMarkdown(c *Catalog) []byte {
	var b bytes.Buffer
	b.WriteString(`# IM callback commands

<!-- Generated from catalog/table.go by: go test ./catalog -run TestCommandsDoc -update
     Do not edit by hand; the test fails when this file and the table differ. -->

Every command Tencent Cloud IM posts to the app's callback URL, as imedge's catalog knows
it. **Kind**: *after* (IM ignores the reply), *before* (IM acts on the app's decision), *reply*
(IM passes the app's data on). **ClientIP** / **OptPlatform**: whether IM sends that query
parameter. **Required**: the body fields a callback must carry to be accepted (every other
checked field is optional and only type-checked; unlisted fields are forwarded untouched).
**Served by default**: imedge serves every command unless ` + "`--commands`" + ` says otherwise: an
after-callback is stored and delivered; a before or reply command is answered through the decision
path (decide.md): by its ` + "`--decide`" + ` service, or in observe mode with its fallback.

Account ids (` + "`*_Account`" + `) are bounded by ` + "`--max-account-bytes`" + `, except ` + "`Official_Account`" + ` (an
app-defined id); other ids by ` + fmt.Sprint(MaxIDBytes) + ` bytes; arrays by ` + fmt.Sprint(MaxItems) + ` elements (` + "`Push.*`" + `
batches: 1 to 100 events). ` + "`EventTime`" + ` is accepted as a JSON number or a string of digits.

| Command | Family | Kind | ClientIP | OptPlatform | Required | Served by default | Source |
|---|---|---|---|---|---|---|---|
`)
	yes := func(v bool) string {
		if v {
			return "yes"
		}
		return "no"
	}
	for _, cmd := range c.Commands() {
		req := cmd.Required()
		for i, p := range req {
			req[i] = "`" + p + "`"
		}
		reqs := strings.Join(req, ", ")
		if reqs == "" {
			reqs = "none"
		}
		served := "yes"
		if !cmd.ServedByDefault() {
			served = "yes (" + cmd.Kind.String() + ": --decide, else observe mode)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n",
			cmd.Name, cmd.Family, cmd.Kind, yes(cmd.ClientIP), yes(cmd.OptPlatform), reqs, served, cmd.Source)
	}
	return b.Bytes()
}
