// Package store is an embedded key-value store whose whole state lives in
// one anonfolio address space (a cow.Space), so that it can be snapshotted in
// microseconds by a Fork and saved in the background while writers go on, as
// Redis does with fork(2) and Go programs otherwise cannot.
//
// # Layout
//
// The space holds three regions:
//
//	meta   one page: the header (counts, index geometry, the slab's top and
//	       its free lists), flushed from the Go copy before every Fork and
//	       identical to the header of a saved image
//	index  an open-addressing hash table with linear probing: slots of 16
//	       bytes, {hash, ref}; ref 0 is an empty slot, 1 a tombstone, else
//	       (offset/16)<<8 | size class of the item's chunk in the slab
//	slab   items {klen uint32, vlen uint32, key, value} in chunks of size
//	       classes (multiples of 16 bytes, four per doubling), carved from a
//	       bump pointer; a freed chunk goes on its class's free list, linked
//	       through its first 8 bytes
//
// Every access goes through the space: ReadAt and WriteAt on the hot paths
// (the space faults and copies on write as a CPU would), pin.Get and pin.Pin
// to stream whole regions without copying (Save, Load, rehashing).
//
// # Concurrency
//
// A Store is safe for concurrent use. Writers (Put, Delete) hold the store's
// lock exclusively, readers (Get) share it. Snapshot and Save take it only
// for the Fork, a few microseconds: the snapshot is then a separate space
// that nobody writes, read without the store's lock while the store goes on.
//
// # Image
//
// Save writes: the header (magic, version, geometry, its own CRC-32C), the
// index, the slab up to its top, and a trailer with the CRC-32C of all of it.
// Load checks both checksums and every structural invariant before it hands
// out a store, so a truncated, corrupted or crafted image is ErrCorrupt and
// loads nothing.
package store
