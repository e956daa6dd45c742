//go:build !race

package seqlock

import (
	"sync/atomic"
	"unsafe"
)

// ReadWord is a seqlock reader's load of the aligned 8 bytes at p: one
// access, ordered before the caller's next load (the generation's). It is
// sync/atomic's load, which inlines to a MOV on x86-64 (whose loads stay
// in order) and to a load-acquire on arm64 (LDAR: no later load is
// satisfied before it, so no DMB is needed).
func ReadWord(p unsafe.Pointer) uint64 { return atomic.LoadUint64((*uint64)(p)) }
