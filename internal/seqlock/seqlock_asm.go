//go:build amd64 || arm64

package seqlock

import "unsafe"

// Load64 loads the aligned 8 bytes at p in one access, uninstrumented: an
// 8-byte load of a seqlock reader.
//
//go:noescape
func Load64(p unsafe.Pointer) uint64
