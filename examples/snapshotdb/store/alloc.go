package store

import "github.com/anonfolio/anonfolio/cow"

// allocator hands out blocks of the store's space: the records, the bucket
// arrays and the TTL arrays live in them. It is the seam where the
// library's slab package (issue 16) will replace the store's own slab
// (slab.go), whose Allocator has these three methods.
//
// A block reads as zero when handed out. The store gives each shard its
// own allocator and calls it only under that shard's lock; an allocator
// shared between shards must be safe for concurrent use (slab's is).
type allocator interface {
	// Alloc returns a block of at least n bytes, n > 0.
	Alloc(n int) (cow.Addr, error)
	// Free gives back a block Alloc returned.
	Free(addr cow.Addr) error
	// Size returns the usable bytes of an allocated block.
	Size(addr cow.Addr) (int, error)
}
