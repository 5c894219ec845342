package imedge_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge"
)

func TestVersion_IsTheVERSIONFileAsSemver(t *testing.T) {
	b, err := os.ReadFile("VERSION")
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(b)), imedge.Version())
	assert.Regexp(t, `^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`, imedge.Version(),
		"VERSION holds a semantic version without a v prefix (the tag is v + VERSION)")
}

// The changelog has a section for the version being built, with the two
// sections every release owes operators: how to upgrade and how to go back.
func TestChangelog_HasUpgradeAndDowngradeForVERSION(t *testing.T) {
	b, err := os.ReadFile("CHANGELOG.md")
	require.NoError(t, err)
	text := string(b)
	head := regexp.MustCompile(`(?m)^## \[` + regexp.QuoteMeta(imedge.Version()) + `\] - \d{4}-\d{2}-\d{2}$`)
	loc := head.FindStringIndex(text)
	require.NotNil(t, loc, "CHANGELOG.md has a heading \"## [%s] - YYYY-MM-DD\"", imedge.Version())
	section := text[loc[1]:]
	if next := regexp.MustCompile(`(?m)^## \[`).FindStringIndex(section); next != nil {
		section = section[:next[0]]
	}
	assert.Regexp(t, `(?m)^### Upgrade$`, section)
	assert.Regexp(t, `(?m)^### Downgrade$`, section)
	assert.Contains(t, text, "["+imedge.Version()+"]: ", "the version heading has its link reference")
}

func TestLicense_IsApache2(t *testing.T) {
	b, err := os.ReadFile("LICENSE")
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "Apache License\n                           Version 2.0, January 2004")
	assert.Contains(t, text, "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION")
	assert.Contains(t, text, "END OF TERMS AND CONDITIONS")
}
