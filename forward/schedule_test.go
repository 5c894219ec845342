package forward

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSeqHeap_KeepsOrder drives the heap with random pushes, pops and
// removes and checks every pop against a sorted model.
func TestSeqHeap_KeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h seqHeap
	var model []uint64
	for range 20_000 {
		switch op := rng.IntN(10); {
		case op < 5 || len(model) == 0:
			v := rng.Uint64N(1000)
			h.push(v)
			model = append(model, v)
			slices.Sort(model)
		case op < 8:
			require.Equal(t, model[0], h.pop())
			model = model[1:]
		default:
			i := rng.IntN(len(h))
			v := h.remove(i)
			j := slices.Index(model, v)
			require.GreaterOrEqual(t, j, 0, "remove returned %d, not in the heap", v)
			model = slices.Delete(model, j, j+1)
		}
		require.Len(t, h, len(model))
	}
	for len(model) > 0 {
		assert.Equal(t, model[0], h.pop())
		model = model[1:]
	}
}
