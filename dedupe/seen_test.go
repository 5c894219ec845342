package dedupe_test

import (
	"github.com/imedge/imedge/dedupe"
	"github.com/imedge/imedge/receiver"
)

// *dedupe.Set is what cmd/imedge passes to the receiver as its Seen.
var _ receiver.Seen = (*dedupe.Set)(nil)
