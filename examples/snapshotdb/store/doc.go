// Package store is an embedded key-value store whose whole state lives in
// one anonfolio address space (a cow.Space), so that it can be snapshotted
// in microseconds by a Fork and saved in the background while writers go
// on, as Redis does with fork(2) and Go programs otherwise cannot. It has
// Redis's string commands (SET and its options, GETSET, GETDEL, INCRBY,
// APPEND, MSET, EXPIRE and TTLs, SCAN...) for examples/respserver.
//
// # Layout
//
// Every byte of the store's state is in the space; the Go side holds only
// locks, and caches of the space's headers that it writes through on every
// change. The space holds:
//
//	root    the superblock (magic, version, hash seed, where the rest is),
//	        then one page per shard: its header (the two bucket tables of
//	        its dict and the rehash index, its key count, its TTL array)
//	slab    the allocator (slab.go): its header, a cache page per shard,
//	        span descriptors, then the spans the blocks are carved from
//
// A key belongs to the shard given by the top bits of its hash (xxh3,
// seeded). A shard's dict is a chained hash table grown and shrunk by an
// incremental rehash, as Redis's dict.c: two tables while a rehash runs,
// buckets moved a few at a time by the writers and the cron. A record is
// one block: {next, expire, hash, klen, vlen, ttl index, key, value}; the
// pointers to it (its bucket, its predecessor's next) carry its length in
// their top bits, so that a reader fetches it whole with one ReadAt. The
// keys with a TTL are also in an array per shard, for the active expiry's
// sampling.
//
// # Concurrency
//
// A Store is safe for concurrent use. Each shard has its own RWMutex:
// readers (GET, EXISTS, TTL...) share it, writers hold it, each command
// for its whole length, so that every command is atomic as in Redis. A
// command over several keys (MSET, DEL, MGET...) locks their shards in
// index order. There is no global lock on any command's path: the slab's
// own lock is taken only to hand a cache a new page of chunks or a large
// block.
//
// # Consistency at a Fork (the quiesce)
//
// A Fork copies the space page by page, atomically with respect to each
// page only. For the snapshot to be a consistent store, Snapshot first
// quiesces it: it takes every shard's lock (in index order) and then the
// slab's, forks, and releases them. Every change to the store's state is
// made under one of those locks, so none is half done at the Fork; the
// writers wait for the Fork only (tens of microseconds with 64 shards).
// Whoever forks the store's space must do the same (the snapshot
// package's Options.Quiesce is that hook).
//
// # Image
//
// Save streams the regions of a snapshot as they are in memory (save.go),
// unmapping each window of the snapshot once written so that later writes
// reuse pages instead of copying them. Load maps each region back at its
// address, then checks the checksums and every invariant of the layout
// (validate.go), so that a truncated, corrupted or crafted image is
// ErrCorrupt and loads nothing. Save, Load and the slab are the seams where
// the library's snapshot and slab packages (issues 15 and 16) will replace
// the store's own, incremental saves included.
package store
