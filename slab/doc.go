// Package slab allocates blocks inside a cow.Space (the kernel's kmalloc,
// for a space): variable-size blocks handed out as cow.Addr, with every
// byte of the allocator's state in the space itself. A Fork of the space,
// a snapshot image of it, or a ResetTo to an earlier Fork carries the
// allocator along with the data, and Open finds it again at its Root.
//
//	h, _ := slab.New(s, slab.Options{})
//	p, _ := h.Alloc(100)          // 112 usable bytes, reading zero
//	s.WriteAt(record, int64(p))
//	c, _ := s.Fork()
//	hc, _ := slab.Open(c, h.Root()) // the same blocks, in the child
//
// # Size classes and slabs
//
// A request is rounded up to a size class: 8, 16, 24, 32, 48, 64, 80, 96,
// 112 and 128 bytes, then eight classes per doubling (144, 160, ... 256,
// 288, ...), so rounding wastes less than an eighth of a block, up to the
// largest block, Options.ClassReserve/8 (2 GiB by default). Each class owns
// one area of the allocator's reservation, cut in chunks of 2 MiB (or of
// eight blocks, for blocks over 256 KiB). A chunk holds blocks back to back
// from its start, so a block of a power-of-two size up to the PMD size is
// aligned to its size, and in its last pages its slabs' 16-byte
// descriptors (and, in the first chunk, the class word): the metadata
// shares a page-table leaf with the blocks it describes, and a folio too in
// a space of large folios. A slab is a run of 64 blocks; its descriptor
// holds the allocation bitmap (bit i set: block i is allocated) and a link.
// The slabs that have a free block form the class's partial list (the
// kernel's kmem_cache_node partial list), headed by the class word, which
// also says how far slabs are carved. Because a block's class, slab and bit
// follow from its address by arithmetic, Free and Size find them without a
// lookup, and reject an address outside the blocks, inside a block, in
// the metadata, or of a free block, before they change anything.
//
// Alloc takes the lowest free block of the slab at the head of the list,
// carving a new slab when the list is empty; a slab that fills leaves the
// list, and one that was full goes back to its head when a block of it is
// freed. The common Alloc takes the class lock, loads the class word and a
// bitmap and stores the bitmap; the common Free takes the lock, loads the
// bitmap, zeroes the block and stores the bitmap. Neither allocates Go
// memory. With a slice's speed for those accesses the pair costs about what
// new([64]byte) and its share of garbage collection do (the pair benchmark,
// `go test -run '^$' -bench AllocFree64 -benchtime 1x ./slab`, reports it
// as view/new+gc).
//
// Blocks of eight pages or more are large: whole pages, page-aligned, and
// freeing one gives its pages back to the arena at once (Advise DontNeed;
// the parts of large folios it leaves go at the next deferred split). A
// slab of smaller blocks whose blocks are all free gives back the whole
// pages it covers, unless it heads its partial list (so that allocating and
// freeing one block does not drop and refault a page each time).
//
// # Zero on free
//
// A block reads as zero when it is handed out, over all its bytes. The
// allocator zeroes a block when it is freed, not when it is allocated: the
// memory of a new slab is already zero, so Alloc never writes a block;
// a large block is cleared by giving its pages back, which freeing it does
// anyway; and a freed block's old bytes do not linger into later snapshots.
//
// # Concurrency
//
// Each class has its own lock; nothing is shared between classes, so
// goroutines that allocate different sizes do not wait for each other.
// The locks live in Go memory, in a state that every handle on the same
// space and root shares (Open of a root with a live handle returns a
// handle on the same state), and the state caches nothing that lives in
// the space: the space is the only copy of the allocator's data. (It keeps
// one hint, the head of each partial list, which only decides whether an
// emptied slab's pages are worth giving back.)
//
// # Snapshots: the rule
//
// A Fork may be taken at any instant, while other goroutines allocate and
// free: the child holds an allocator that Open accepts, in which every
// block is either allocated or free, and none is lost. This rests on what
// Fork guarantees for writes through Space.WriteAt (and the Accessor):
// each lands wholly before or wholly after the snapshot, so the child sees
// a prefix of each goroutine's writes. A block's bit changes in one store,
// and that store is the commit of its Alloc or Free (a Free zeroes the
// block before it; at worst the child holds an allocated block that the
// Free had begun to zero, wholly or, for a block across two pages, in
// part).
// Changes of a partial list take two or three stores; they set the busy bit
// in the class word first and clear it with the last one. A child whose
// class word has the busy bit rebuilds that class's list from its bitmaps
// at the first operation that needs the list (or at Check): a walk of
// that class's slabs, once. Open itself reads only the header.
//
// Quiesce is for lining the allocator up with the caller's own data: a
// snapshot taken between Quiesce and its resume (snapshot.Options.Quiesce)
// sees no operation in flight, so each block the caller's structures point
// to is allocated and no allocation is half recorded. The same holds for
// ResetTo: quiesce around it, and restore a Fork of the same allocator.
//
// # Misuse
//
// A misuse returns an error and changes nothing: Alloc(n) with n <= 0 is
// cow.ErrInvalid, a Free or Size of an address that is not a block's start
// is ErrNotBlock, of a free block ErrNotAllocated (so a double free is
// caught as long as the block was not handed out again meanwhile). Open
// checks the header's magic (ErrNotAllocator), checksum (ErrCorrupt) and
// version (ErrVersion); damaged metadata found later is ErrCorrupt, never
// a panic or a write out of bounds. Check walks every structure.
//
// # Lock order
//
//	class locks, in class order     (only Quiesce, Stats and Check hold more than one at a time)
//	  the space's own locks         (through ReadAt, WriteAt, Advise)
//
// # Address space
//
// New reserves one region of (classes+1) × Options.ClassReserve bytes
// (about 3.2 TiB with the default, of the space's 128 TiB): an area for the
// header, then one per class. Reserving costs nothing; memory and page
// tables are used only where blocks and their metadata are written.
package slab
