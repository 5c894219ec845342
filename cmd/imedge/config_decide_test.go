package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imedge/imedge/catalog"
	"github.com/imedge/imedge/decide"
)

func TestDecideConfig(t *testing.T) {
	t.Parallel()
	c, _, err := parseServeConfig([]string{
		"--decide", "Group.*=http://127.0.0.1:9/group", "--decide", "*=https://mod.internal/decide",
		"--decide-fallback", "Sns.*=deny:38001,OfficialAccount.CallbackBeforeAddSubscriber=deny", "--decide-fallback", "*=deny",
		"--decide-timeout", "1s", "--decide-rate", "5",
	}, noEnv)
	require.NoError(t, err)
	assert.Equal(t, []string{"Group.*=http://127.0.0.1:9/group", "*=https://mod.internal/decide"}, c.Decide.Targets)
	assert.Len(t, c.Decide.Fallbacks, 3, "comma-separated values too")
	assert.Empty(t, c.Decide.validate(c))
	o, errs := c.Decide.options(c)
	require.Empty(t, errs)
	assert.Equal(t, time.Second, o.Timeout)
	assert.Equal(t, c.IM.SignWindow, o.CacheTTL, "the same answer within the sign window")
	assert.Equal(t, 5.0, c.Decide.limiterOptions(c.Limits).Rate)

	d := defaultConfig()
	assert.Empty(t, d.Decide.validate(d), "the defaults: every before-callback in observe mode, allowed")
	assert.Equal(t, decide.DefaultTimeout, d.Decide.Timeout)

	for _, tc := range []struct {
		name string
		mod  func(*decideConfig)
		want string
		is   error
	}{
		{"timeout above IM's budget", func(d *decideConfig) { d.Timeout = 2 * time.Second }, "--decide-timeout 2s", nil},
		{"no timeout", func(d *decideConfig) { d.Timeout = 0 }, "--decide-timeout", nil},
		{"bad target", func(d *decideConfig) { d.Targets = []string{"http://x/"} }, "--decide", decide.ErrInvalidOptions},
		{"a target that decides nothing", func(d *decideConfig) { d.Targets = []string{"Push.*=http://x/"} }, "matches no before-callback", decide.ErrInvalidOptions},
		{"bad fallback", func(d *decideConfig) { d.Fallbacks = []string{"*=block"} }, "--decide-fallback", decide.ErrInvalidOptions},
		{"a code a command refuses", func(d *decideConfig) { d.Fallbacks = []string{"*=deny:1"} }, "Sns.CallbackPrevFriendAdd", catalog.ErrBadCode},
		{"negative rate", func(d *decideConfig) { d.Rate = -1 }, "--decide-rate", nil},
		{"no burst", func(d *decideConfig) { d.Rate, d.Burst = 1, 0 }, "--decide-burst", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.mod(&c.Decide)
			err := errors.Join(c.Decide.validate(c)...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.False(t, strings.Contains(err.Error(), "\n"), "one line per problem: %q", err)
		})
	}
}
