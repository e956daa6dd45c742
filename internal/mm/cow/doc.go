// Package cow is anonfolio's address space, the mm: a Space holds regions
// (VMAs) of anonymous memory, a page table, the map lock and the fork
// sequence count, and implements faults, copy-on-write, Fork, and
// ReadAt/WriteAt as a CPU would access the memory. It owns the policy: which
// folio order a fault allocates, when a write reuses a page and when it
// copies, what Fork shares.
//
// # The state of a page
//
// A page of a folio mapped in some space is in one of these states:
//
//	exclusive   AnonExclusive set; mapped by this space only, writable if
//	            its region is. Writes go straight to it. A pin may hold it.
//	shared      AnonExclusive clear; mapped read-only, perhaps by several
//	            spaces. A write fault reuses it if its folio is mapped only
//	            by this space and nothing else references it, and copies it
//	            otherwise.
//
// Transitions: a write fault allocates exclusive pages; Fork turns exclusive
// pages into shared ones (except those of a pinned folio, which the child
// gets copies of); reuse and unshare turn a shared page back into an
// exclusive one; a copy replaces a shared page by a new exclusive one. A
// read of an unpopulated page maps the shared zero page, which a write or
// an unshare replaces by a private page.
//
// # Reuse and in-flight copies
//
// A COW copy (wp_page_copy) takes a reference on the old folio, drops the
// PTL, copies, retakes the PTL and installs the copy only if the entry still
// maps the same page with the same permission and the old page did not
// become AnonExclusive. Because the fault holds the map lock for reading
// throughout, nothing that write-protects (Fork, Protect) can run in between,
// so the entry cannot go read-only → writable → read-only under it: the
// check is exact. That is what lets a reuse ignore this space's own copies in
// flight: another goroutine of the same space may reuse the page and write
// it while the copy reads it; the copy then finds its entry changed and is
// discarded (copyPage is the one helper that reads page contents without
// synchronisation, for that benign race; see copypage_race.go). The reuse
// test counts only the copies in flight from before its refcount read to
// after (copyTable's slots carry a generation), so a copy that ends
// meanwhile never hides another reference. Every other reference (a plain
// Get, a pin, a lockless reader) stops a reuse, as the kernel's refcount
// test does.
//
// # Lockless paths
//
// GUP-fast (in the pin package) walks the table without a lock: it enters
// a lockless section, backs out if wpSeq is odd or the space is closed,
// grabs the folio (a reference), rechecks the entry and that the leaf is
// still in the space's directory slot (gup_fast's pmd recheck), and undoes
// if either changed.
//
// ReadAt, WriteAt and the Accessor take no reference at all (tlb.go says
// why that is safe). A read translates through a software TLB entry that
// carries the leaf's or slot's TLB generation, copies the page, and
// discards the copy if the generation moved meanwhile (a seqlock read:
// every change that removes, replaces or write-protects a mapping bumps the
// generation first). A write runs in a writer section, checks that wpSeq
// is even and the leaf not shared, reads the entry, rechecks the
// generation (the race the spin model found), and stores. Fork makes wpSeq
// odd and waits for the writer sections in flight to drain before it
// write-protects anything, so a lockless write lands wholly before or
// after the snapshot (a section ends on a page boundary); a zap waits for
// them before it frees a page. Protect and WriteProtect quiesce the same way, so
// that an access in flight is done before the lower protection is in force
// (the next write to each page faults, which dirty tracking relies on), and
// so does Check.
//
// On-demand fork shares leaves without write-protecting them, so a space
// that drops a shared leaf (a whole-slot DontNeed or Unmap) leaves it as an
// eager fork would have: write-protected, its pages no longer
// AnonExclusive. A reader of the dropping space that took a reference
// through the leaf a moment before then stops the remaining users from
// reusing the page under it. Close has no reader in flight (it quiesces
// and holds its map lock for writing), but a Get taken before the Fork
// outlives it: it write-protects the folios whose references exceed their
// mappings, so that the remaining user copies them on its next write.
//
// # Sequential faults
//
// A region remembers the range its last write fault on unmapped pages
// mapped and the range its last COW fault copied (faulthint.go). A fault
// next to that range continues a scan and is batched: fault-around maps a
// run of order-0 pages (anon.go), copy-around copies a run of pages
// (copyaround.go), the run doubling with each fault in a row up to the
// end of the aligned 64 KiB block. Each page of a batch is mapped or
// copied under the same rules as a single fault's page, and rechecked on
// its own.
//
// # Lock order
//
//	arenaState.splitMu                       one deferred-split pass, or one Check
//	  Space.mapLock (RW)                     the mmap_lock; two spaces' only in mm id order (Check, the deferred split)
//	    pte.Dir.mu                           the PMD lock
//	      pte.Leaf.mu                        the PTL; two only under mapLock held for writing (Fork, Remap)
//	        Space.copyMu                     in-flight copies
//	        arenaState.mu                    deferred-split queue, space registry
//	          folio atomics, mapcount lock
//	            folio.Arena.mu               the allocator
//
// The deferred split runs with no map lock held: the fault path drops its
// own before it reclaims.
//
// # What Check verifies
//
// See Check: isolation (a writable page is exclusive, an exclusive page is
// mapped once), no folio freed while mapped, exact accounting of mappings,
// pins and references, and the consistency of every table and of the arena.
package cow
