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
//	root    the superblock (magic, version, hash seed, where the allocator
//	        is and what it reserved), then one page per shard: its header
//	        (the two bucket tables of its dict and the rehash index, its
//	        key count, its TTL array)
//	slab    package slab's allocator (kmalloc for a space): its header at
//	        its root, then one area per size class; every record, bucket
//	        array and TTL array is one of its blocks
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
// index order. There is no global lock on any command's path: the
// allocator's locks are per size class. A shard's writers access the
// space through the shard's Accessor (they hold its lock alone); readers
// through the Space, or through a Reader of their own, whose Accessor
// makes their reads lockless and cheaper.
//
// # Consistency at a Fork (the quiesce)
//
// A Fork copies the space page by page, atomically with respect to each
// page only. For the snapshot to be a consistent store, Snapshot and Save
// first quiesce it: every shard's lock (in index order), then the
// allocator's Quiesce (its class locks); fork; release. Every change to
// the store's state is made under one of those locks, so none is half
// done at the Fork; the writers wait for the Fork only (tens of
// microseconds with 64 shards). Save passes that quiesce to package
// snapshot as Options.Quiesce.
//
// # Images
//
// Save is package snapshot's Save of the store's space (its format; go doc
// snapshot): a full image, or with SaveDelta the pages written since the
// previous save. Load and LoadChain load a full image and its deltas into
// a new space (a broken chain or a damaged image loads nothing), then
// open the allocator (slab.Open, Check) and check every invariant of the
// store's layout (validate.go), so that a crafted image is ErrCorrupt.
// Chain keeps a directory's images (manifest, full image, deltas) so that
// a crash never leaves a chain that does not load.
package store
