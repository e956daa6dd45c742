package cow

import (
	"github.com/anonfolio/anonfolio/folio"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Stats are a space's counters, shaped like the kernel's per-size mTHP
// statistics (transparent_hugepage/hugepages-<size>kB/stats) plus the
// copy-on-write and fork counts.
type Stats struct {
	FaultAlloc    [folio.NrOrders]uint64 // per order: write faults served by a new folio of that order (anon_fault_alloc)
	FaultFallback [folio.NrOrders]uint64 // per order: tried and not allocated (anon_fault_fallback)
	Split         [folio.NrOrders]uint64 // per order: large folios this space split (split)
	SplitDeferred [folio.NrOrders]uint64 // per order: large folios queued for deferred split (split_deferred)
	SplitFailed   uint64                 // deferred splits given up (pinned, referenced, or mappings not found)

	ZeroPageMaps    uint64 // read faults that mapped the shared zero page
	ZeroUpgrades    uint64 // writes to the zero page served by a folio of the space's orders (the kernel copies one page)
	WPReuse         uint64 // write faults on a read-only page that reused it (no copy)
	WPCopy          uint64 // write (and unshare) faults that copied
	WPCopyDiscarded uint64 // copies thrown away because the entry changed meanwhile (pte_same failed)
	CopyBytes       uint64 // bytes copied by copy-on-write faults
	ForkCopies      uint64 // pages copied at Fork because they were pinned
	Forks           uint64 // Fork calls that succeeded
	Faults          uint64 // faults handled
	LeafShares      uint64 // page-table leaves Fork shared with a child instead of copying (on-demand fork)
	LeafUnshares    uint64 // shared leaves this space took its own copy of, on its first change
	Collapsed       uint64 // PMD-order folios Advise(Collapse) made (thp_collapse_alloc)

	// Sequential faults are batched: a write fault on an unmapped page
	// right after (or before) the range its region's previous one mapped
	// maps the rest of its aligned 64 KiB block with order-0 pages at once,
	// and a copy-on-write fault right after the previous one copies the
	// rest of its block at once. Sparse access is never batched. The pages
	// are counted in FaultAlloc[0] and WPCopy like any others.
	FaultAround      uint64 // sequential write faults that mapped a block of order-0 pages (fault-around)
	FaultAroundPages uint64 // pages those mapped beyond the faulting one
	CopyAround       uint64 // sequential copy-on-write faults that copied a block of pages (copy-around)
	CopyAroundPages  uint64 // pages those copied beyond the faulting one

	Resident       int64 // pages this space maps now (its RSS; the zero page not counted)
	PageTableBytes int64 // memory of this space's page tables
	Regions        int   // regions (VMAs)
}

// String summarises the counters in one line.
func (s Stats) String() string { return mm.Stats(s).String() }

// PagemapEntry describes what maps one address of a space, as a line of
// /proc/pid/pagemap and /proc/kpageflags do together: for tests, tools and
// debugging.
type PagemapEntry struct {
	PFN       uint64 // the page's frame number: its index in the arena (0 for the zero page)
	Order     int    // the order of the folio the page belongs to
	Zero      bool   // the shared zero page, which a read of an untouched page maps
	Writable  bool   // the entry allows a write now; a write to a read-only one of a writable region faults
	Dirty     bool   // written since it was mapped
	Young     bool   // accessed since it was mapped
	Huge      bool   // mapped by a huge (PMD) entry, with the whole PMD-order folio
	Cont      bool   // part of a contiguous-PTE (contpte) block
	Shared    bool   // in a page-table leaf shared with a Fork's child or parent (on-demand fork)
	Exclusive bool   // AnonExclusive: no other space maps the page, so a write reuses it
	Written   bool   // written since the space's last snapshot (soft-dirty, pagemap's PM_SOFT_DIRTY)
}

// Check verifies the library's invariants over the given spaces, which
// must be every live space of one arena (closed ones may be passed too),
// and returns the first violation, naming the address, the folio and the
// counts. It verifies snapshot isolation (a writable page is exclusive, an
// exclusive page is mapped once, no pinned page is shared), that no folio
// is freed while mapped, exact accounting of mappings, pins and references
// (a page nobody maps or holds is a leak), and the consistency of every
// page table and of the arena's allocator. DESIGN.md lists the invariants.
// Pins and plain references are accounted exactly in race builds and with
// the invariants build tag (go test -race, go test -tags invariants), where
// the pin package counts what it holds; the default build, which keeps a
// pin at its floor cost, verifies that no folio's refcount is below its
// mappings and pins, but cannot tell a leaked reference from a held one.
//
// It locks every space, waits for the accesses and releases in flight, and
// holds off the deferred split, so it may run while other goroutines use
// the spaces (they wait for it). It costs a walk of every table and of the
// arena's page descriptors: for tests, and for debugging a live program.
func Check(spaces ...*Space) error {
	ms := make([]*mm.Space, len(spaces))
	for i, s := range spaces {
		if !(*mm.Space)(s).Valid() {
			return errNoSpace
		}
		ms[i] = (*mm.Space)(s)
	}
	return mm.Check(ms...)
}

// SplitDeferred is Space.SplitDeferred for an arena, whichever of its
// spaces left the folios partly mapped. It returns how many pages it freed.
func SplitDeferred(a *folio.Arena) int { return mm.SplitDeferred((*mmfolio.Arena)(a)) }
