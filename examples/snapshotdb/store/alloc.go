package store

import "github.com/anonfolio/anonfolio/cow"

// allocator hands out blocks of the store's space: the records, the bucket
// arrays and the TTL arrays live in them. It is package slab's Allocator
// (kmalloc for a space: size classes, all its state in the space, safe
// for concurrent use); the interface is the part of it the shards use.
//
// A block reads as zero when handed out. Every shard shares the store's
// one allocator, whose per-class locks nest inside the shards' locks.
type allocator interface {
	// Alloc returns a block of at least n bytes, n > 0.
	Alloc(n int) (cow.Addr, error)
	// Free gives back a block Alloc returned.
	Free(addr cow.Addr) error
	// Size returns the usable bytes of an allocated block.
	Size(addr cow.Addr) (int, error)
}
