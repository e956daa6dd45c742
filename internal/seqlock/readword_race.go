//go:build race

package seqlock

import "unsafe"

// ReadWord is a seqlock reader's load of the aligned 8 bytes at p: one
// access, ordered before the caller's next load (the generation's). In
// race builds it is Load64, which the detector does not see (the page may
// be someone else's by now, written without synchronisation with us: the
// race the generation check is for), then Fence.
func ReadWord(p unsafe.Pointer) uint64 {
	v := Load64(p)
	Fence()
	return v
}
