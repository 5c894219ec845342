package receiver

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLRUTable_MatchesAModel drives the table and a plain slice model with
// the same random operations, as ClientLimiter does (evict when full, then
// add), and checks that both agree on membership, order and bucket values.
func TestLRUTable_MatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const maxKeys = 37
	tab := newLRUTable()
	var model []clientKey // most recently used first
	vals := map[clientKey]int64{}
	key := func(n int) clientKey { var k clientKey; k[15], k[14] = byte(n), byte(n>>8); return k }
	for step := range 20000 {
		k := key(rng.IntN(100))
		b, ok := tab.get(k)
		at := slices.Index(model, k)
		require.Equal(t, at >= 0, ok, "step %d: membership of %v", step, k)
		if ok {
			assert.Equal(t, vals[k], b.lastUsed, "step %d: the bucket of %v", step, k)
			model = slices.Delete(model, at, at+1)
		} else {
			if tab.len() >= maxKeys {
				old := tab.evictOldest()
				victim := model[len(model)-1]
				model = model[:len(model)-1]
				assert.Equal(t, vals[victim], old.lastUsed, "step %d: the least recently used key is evicted", step)
				delete(vals, victim)
			}
			b = tab.add(k)
		}
		b.lastUsed = int64(step)
		vals[k] = int64(step)
		model = slices.Insert(model, 0, k)
		require.Equal(t, len(model), tab.len())
		require.LessOrEqual(t, len(tab.slots), maxKeys, "slots stay dense")
	}
	// Walk the links from head to tail: the model's order.
	var walked []clientKey
	for i := tab.head; i >= 0; i = tab.slots[i].next {
		walked = append(walked, tab.slots[i].key)
	}
	assert.Equal(t, model, walked)
}
