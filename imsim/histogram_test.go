package imsim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestHistogram_BucketsCoverEveryValue(t *testing.T) {
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1e6, 1e9, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		assert.Less(t, i, histBuckets, "value %d", v)
		assert.GreaterOrEqual(t, histUpper(i), v, "value %d lies under its bucket's bound", v)
		if i > 0 {
			assert.Less(t, histUpper(i-1), v, "value %d lies above the previous bucket", v)
		}
	}
}

func TestHistogram_QuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// Log-uniform between 10 µs and 1 s, like latencies.
		vals[i] = int64(math.Exp(math.Log(1e4) + rng.Float64()*(math.Log(1e9)-math.Log(1e4))))
		h.add(time.Duration(vals[i]))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := float64(h.quantile(q))
		assert.InEpsilon(t, exact, got, 1.0/histSub, "q=%v", q)
		assert.GreaterOrEqual(t, got, exact, "the bound is never below the exact value")
	}
	assert.Equal(t, time.Duration(vals[len(vals)-1]), h.quantile(1))
	assert.Equal(t, vals[len(vals)-1], h.max)

	var merged, a, b histogram
	for i, v := range vals {
		if i%2 == 0 {
			a.add(time.Duration(v))
		} else {
			b.add(time.Duration(v))
		}
	}
	merged.merge(&a)
	merged.merge(&b)
	assert.Equal(t, h.counts, merged.counts)
	assert.Equal(t, h.quantile(0.99), merged.quantile(0.99))
	assert.InEpsilon(t, float64(h.mean()), float64(merged.mean()), 1e-9)
}

func TestHistogram_Empty(t *testing.T) {
	var h histogram
	assert.Zero(t, h.quantile(0.5))
	assert.Zero(t, h.mean())
}
