// Package folio is anonfolio's physical memory: an Arena of base pages
// carved out of one mmap reservation, a buddy allocator that hands out
// naturally aligned folios of order 0..MaxOrder, and the per-page metadata
// (the struct-page analog) that the layers above use to count references,
// mappings and pins and to track which subpages are AnonExclusive.
//
// The package knows nothing of page tables: the pte and cow packages above
// it decide what a folio maps to; folio only keeps the counts exact.
//
// # Memory states
//
// Every base page of an arena is, at any moment, in exactly one of these
// states (the runtime's mem.go model, applied per page):
//
//  1. Free, released: on a buddy free list and not backed by host memory
//     (never touched, or returned with MADV_DONTNEED). Known to read zero.
//  2. Free, resident: on a buddy free list, backed by host memory. Known
//     zero only if it was never written since it was last zero.
//  3. Allocated: part of a folio with a non-zero refcount. Owned by whoever
//     holds the references; its metadata describes the folio.
//
// Allocation moves 1 or 2 to 3 (zeroing only the pages not known zero when
// the caller asks for zeroed memory); the last FolioPut moves 3 to 2; the
// scavenger moves 2 to 1 when more than Config.RetainFree bytes are free and
// resident.
//
// # Metadata
//
// The metadata is a flat array with one 16-byte page descriptor per base
// page, plus three bitmaps (AnonExclusive, known zero, released) of one bit
// per page. That is 16.4 bytes per page: 0.40 % of managed memory with
// 4 KiB pages, 0.10 % with 16 KiB and 0.025 % with 64 KiB pages (the
// kernel's struct page is 64 bytes, 1.56 %).
//
// A folio's state lives in its first pages, as the kernel keeps it in the
// head and first tail pages:
//
//	every page:  flags  order of its folio (so a tail finds its head), head bit
//	head page:   ref    refcount: mappings + pins + gets + in-flight references
//	             w2     mapcount (PTE mappings + entire/PMD mappings)
//	             w3     small folio: pincount; large folio: the two tracked mm
//	                    ids, the "maybe mapped shared" bit and the mapcount lock
//	tail page 1: w2     pincount (large folios)
//	             w3     per-mm mapcounts of the two tracked mm ids (16 bits each)
//	tail page 2: w2     entire (PMD) mapcount (folios of order >= 2)
//
// The ref word of every page that is not the head of an allocated folio is
// zero. FolioTryGet depends on it: a lockless grab of a stale page either
// finds a live head (and rechecks it after the grab) or fails on zero.
//
// # Owners (mm ids)
//
// To decide "this folio is mapped only by this space and nobody else holds
// a reference" without a reverse map, large folios track the ids of up to
// two address spaces (MMIDs) with their per-space mapcounts, and a shared
// bit that is set when a third space maps the folio, exactly as the
// kernel's CONFIG_MM_ID does. Small folios need no owner: refcount 1 with the
// faulting space mapping it is already proof.
//
// # Lock order
//
// Within this package:
//
//	Arena.mmMu (mm id allocation)          independent, leaf
//	large-folio mapcount lock (bit in w3)
//	  Arena.mu (buddy free lists)
//
// In the whole library: space map lock → page-table locks (PTL) → folio
// atomics and the mapcount lock → Arena.mu. Nothing here calls up.
// Refcounts, pincounts, flags and the bitmaps are atomics and take no lock;
// Arena.mu guards only the free lists and the counters next to them.
//
// # Errors
//
// Bad configuration is ErrInvalid, running out of pages (or of mm ids) is
// ErrNoMemory, closing an arena that still has allocated folios or live
// spaces is ErrBusy, and using a closed arena is ErrClosed. Corrupted
// metadata (a refcount going negative, a double free) is a bug in the
// library, not a user error, and panics.
package folio
