package receiver_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/imedge/imedge/receiver"
)

func TestLimiterKey(t *testing.T) {
	for _, c := range []struct {
		addr string
		bits int
		want string
	}{
		{"192.0.2.7", 64, "192.0.2.7"},
		{"::ffff:192.0.2.7", 64, "192.0.2.7"}, // IPv4-mapped keys as IPv4
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6%eth0", 64, "2001:db8:1:2::/64"}, // zone ignored
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
	} {
		assert.Equal(t, c.want, receiver.LimiterKey(netip.MustParseAddr(c.addr), c.bits), c.addr)
	}
}
