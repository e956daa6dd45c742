package slab

import "math/bits"

// Size classes. Blocks of up to 128 bytes come in the ten sizes of
// smallSizes; above, every doubling [2^(k-1), 2^k) is cut in eight equal
// steps (144, 160, ... 256, 288, ...), so a block wastes less than an
// eighth of its size to rounding. Every size is a multiple of 8, so every
// block is 8-aligned. The largest class is Options.ClassReserve/8.
var smallSizes = [...]uint64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128}

// nSmall is the number of classes of at most 128 bytes.
const nSmall = len(smallSizes)

// smallClass maps (n+7)/8 to the class of n for n <= 128.
var smallClass = [17]uint8{0, 0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9}

// classOf returns the smallest class whose blocks hold n > 0 bytes.
func classOf(n uint64) int {
	if n <= 128 {
		return int(smallClass[(n+7)>>3])
	}
	k := bits.Len64(n - 1) // 2^(k-1) < n <= 2^k, k >= 8
	q := (n - 1<<(k-1) + 1<<(k-4) - 1) >> (k - 4)
	return nSmall + (k-8)*8 + int(q) - 1
}

// classSize returns the block size of class c.
func classSize(c int) uint64 {
	if c < nSmall {
		return smallSizes[c]
	}
	c -= nSmall
	k := c/8 + 8
	return 1<<(k-1) + uint64(c%8+1)<<(k-4)
}

// numClasses returns how many classes there are when the largest block is
// maxSize bytes, a power of two of at least 256.
func numClasses(maxSize uint64) int { return classOf(maxSize) + 1 }
