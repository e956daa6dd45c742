//go:build !amd64 && !arm64

package seqlock

import (
	"sync/atomic"
	"unsafe"
)

// Load64 loads the aligned 8 bytes at p atomically. (Elsewhere than amd64
// and arm64 it is an atomic load, which the race detector sees.)
func Load64(p unsafe.Pointer) uint64 { return atomic.LoadUint64((*uint64)(p)) }

// Fence orders the reader's loads before its next load of the generation:
// an atomic read-modify-write of a local is a full barrier everywhere Go
// runs.
func Fence() {
	var x atomic.Uint32
	x.Add(0)
}
