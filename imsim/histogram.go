package imsim

import (
	"math"
	"math/bits"
	"time"
)

// histSub is the number of buckets per power of two: values are kept with a
// relative error below 1/histSub (1.6 %), in constant memory.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = histSub + (64-histSubBits-1)*histSub
)

// histogram counts durations in log-linear buckets. It is not safe for
// concurrent use; each worker has its own and they are merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    int64
}

func histIndex(v int64) int {
	if v < histSub {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1
	return histSub + e*histSub + int(uint64(v)>>e) - histSub
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := (i - histSub) / histSub
	sub := int64(i-histSub)%histSub + histSub
	hi := (sub+1)<<e - 1
	if hi < 0 { // the last bucket reaches past MaxInt64
		return math.MaxInt64
	}
	return hi
}

func (h *histogram) add(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the smallest bucket bound at or below which a share q of
// the values fall, never more than the largest value seen. Zero when empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}
