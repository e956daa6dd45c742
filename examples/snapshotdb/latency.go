package main

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: eight per power of
// two, so a percentile is within 1/8 of the truth. Not safe for
// concurrent use: each writer keeps its own and they are merged.
type histogram struct {
	counts [64 * 8]uint64
	n      uint64
}

func (h *histogram) add(d time.Duration) {
	v := uint64(max(d, 1))
	e := bits.Len64(v) - 1 // 2^e <= v
	sub := uint64(0)
	if e >= 3 {
		sub = (v >> (e - 3)) & 7
	}
	h.counts[e*8+int(sub)]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// percentile returns the upper bound of the bucket holding the p-th
// percentile (0 < p <= 100).
func (h *histogram) percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(float64(h.n)*p/100 + 0.5)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= max(want, 1) {
			e, sub := i/8, uint64(i%8)
			if e < 3 {
				return time.Duration(uint64(1) << e)
			}
			return time.Duration((8 + sub + 1) << (e - 3))
		}
	}
	return 0
}
