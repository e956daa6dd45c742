package slab

import "testing"

func TestClassOf(t *testing.T) {
	prev := uint64(0)
	for c := 0; c < numClasses(1<<31); c++ {
		size := classSize(c)
		if size <= prev || size%8 != 0 {
			t.Fatalf("class %d: size %d after %d", c, size, prev)
		}
		if c >= nSmall && (size-prev)*8 > prev+8 {
			t.Fatalf("class %d: step %d from %d wastes more than an eighth", c, size-prev, prev)
		}
		for _, n := range []uint64{prev + 1, (prev + size) / 2, size} {
			if got := classOf(n); got != c {
				t.Fatalf("classOf(%d) = %d (size %d), want %d (size %d)", n, got, classSize(got), c, size)
			}
		}
		prev = size
	}
	if got := numClasses(1 << 31); got != 202 {
		t.Errorf("numClasses(2 GiB) = %d, want 202", got)
	}
	if got := classSize(numClasses(256<<10) - 1); got != 256<<10 {
		t.Errorf("largest class of 256 KiB is %d", got)
	}
}
