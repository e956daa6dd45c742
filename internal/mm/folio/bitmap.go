package folio

import (
	"math/bits"
	"sync/atomic"
)

// bitmap is one bit per page. Every word is accessed atomically: bits of one
// word belong to different folios, which different goroutines update at once
// without a common lock (a folio's owner changes its own bits only).
type bitmap []atomic.Uint64

func newBitmap(n int64) bitmap { return make(bitmap, (n+63)/64) }

// wordMask returns the mask of bits [i, i+n) that fall into i's word, and
// how many of the n bits that is.
func wordMask(i, n int64) (mask uint64, k int64) {
	off := i & 63
	k = min(n, 64-off)
	if k == 64 {
		return ^uint64(0), 64
	}
	return ((uint64(1) << k) - 1) << off, k
}

func (b bitmap) test(i int64) bool { return b[i>>6].Load()&(1<<(i&63)) != 0 }

// set sets bits [i, i+n).
func (b bitmap) set(i, n int64) {
	for n > 0 {
		m, k := wordMask(i, n)
		if m == ^uint64(0) {
			b[i>>6].Store(m)
		} else {
			b[i>>6].Or(m)
		}
		i, n = i+k, n-k
	}
}

// clear clears bits [i, i+n).
func (b bitmap) clear(i, n int64) {
	for n > 0 {
		m, k := wordMask(i, n)
		if m == ^uint64(0) {
			b[i>>6].Store(0)
		} else {
			b[i>>6].And(^m)
		}
		i, n = i+k, n-k
	}
}

// count returns how many of bits [i, i+n) are set.
func (b bitmap) count(i, n int64) int64 {
	var c int64
	for n > 0 {
		m, k := wordMask(i, n)
		c += int64(bits.OnesCount64(b[i>>6].Load() & m))
		i, n = i+k, n-k
	}
	return c
}

// any reports whether any of bits [i, i+n) is set.
func (b bitmap) any(i, n int64) bool {
	for n > 0 {
		m, k := wordMask(i, n)
		if b[i>>6].Load()&m != 0 {
			return true
		}
		i, n = i+k, n-k
	}
	return false
}

// all reports whether every bit of [i, i+n) is set.
func (b bitmap) all(i, n int64) bool {
	for n > 0 {
		m, k := wordMask(i, n)
		if b[i>>6].Load()&m != m {
			return false
		}
		i, n = i+k, n-k
	}
	return true
}

// nextClear returns the first clear bit in [i, end), or end.
func (b bitmap) nextClear(i, end int64) int64 {
	for i < end {
		m, _ := wordMask(i, end-i)
		if w := ^b[i>>6].Load() & m; w != 0 {
			return i&^63 + int64(bits.TrailingZeros64(w))
		}
		i = (i | 63) + 1
	}
	return end
}

// nextSet returns the first set bit in [i, end), or end.
func (b bitmap) nextSet(i, end int64) int64 {
	for i < end {
		m, _ := wordMask(i, end-i)
		if w := b[i>>6].Load() & m; w != 0 {
			return i&^63 + int64(bits.TrailingZeros64(w))
		}
		i = (i | 63) + 1
	}
	return end
}
