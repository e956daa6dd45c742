//go:build !amd64

package seqlock

import "sync/atomic"

// StoreRelease32 stores v at p in one access, after every earlier load and
// store of this goroutine (a store-release): sync/atomic's Store, which is
// STLR on arm64.
func StoreRelease32(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
