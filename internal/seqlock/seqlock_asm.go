//go:build amd64 || arm64

package seqlock

import "unsafe"

// Load64 loads the aligned 8 bytes at p in one access, uninstrumented: an
// 8-byte load of a seqlock reader.
//
//go:noescape
func Load64(p unsafe.Pointer) uint64

// StoreRelaxed32 stores v at p in one access, with no fence and
// uninstrumented: an announcement whose ordering against later loads
// comes from the other side's membarrier.
//
//go:noescape
func StoreRelaxed32(p *uint32, v uint32)

// StoreRelease32 stores v at p in one access, after every earlier load and
// store of this goroutine (a store-release), uninstrumented.
//
//go:noescape
func StoreRelease32(p *uint32, v uint32)
