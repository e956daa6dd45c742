package cow

import (
	"fmt"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Stats are a space's counters, shaped like the kernel's per-size mTHP
// statistics (transparent_hugepage/hugepages-<size>kB/stats) plus the COW
// and fork counts anonfolio users ask about.
type Stats struct {
	FaultAlloc    [folio.NrOrders]uint64 // per order: write faults served by a new folio of that order (anon_fault_alloc)
	FaultFallback [folio.NrOrders]uint64 // per order: tried and not allocated (anon_fault_fallback)
	Split         [folio.NrOrders]uint64 // per order: large folios this space split (split)
	SplitDeferred [folio.NrOrders]uint64 // per order: large folios queued for deferred split (split_deferred)
	SplitFailed   uint64                 // deferred splits given up (pinned, referenced, or mappings not found)

	ZeroPageMaps    uint64 // read faults that mapped the shared zero page
	ZeroUpgrades    uint64 // writes to the zero page served by a folio of the space's orders, not a copied page
	WPReuse         uint64 // write faults on a read-only PTE that reused the page
	WPCopy          uint64 // write (and unshare) faults that copied
	WPCopyDiscarded uint64 // copies thrown away because the entry changed meanwhile (pte_same failed)
	CopyBytes       uint64 // bytes copied by COW faults
	ForkCopies      uint64 // pages copied at Fork because they were pinned
	Forks           uint64 // Fork calls that succeeded
	Faults          uint64 // faults handled (locked slow path)
	LeafShares      uint64 // page-table leaves Fork shared with a child instead of copying (on-demand fork)
	LeafUnshares    uint64 // shared leaves this space took a private copy of, on its first change
	Collapsed       uint64 // PMD-order folios Advise(Collapse) made (thp_collapse_alloc)

	// The adaptive batching of sequential faults (faulthint.go): a fault
	// that continues its region's previous one maps or copies the rest of
	// its aligned 64 KiB block at once. The pages are counted in
	// FaultAlloc[0] and WPCopy like any others.
	FaultAround      uint64 // sequential write faults that mapped a block of order-0 pages (fault-around)
	FaultAroundPages uint64 // pages those mapped beyond the faulting one
	CopyAround       uint64 // sequential COW faults that copied a block of pages (copy-around)
	CopyAroundPages  uint64 // pages those copied beyond the faulting one

	Resident       int64 // pages this space maps now (its RSS; the zero page not counted)
	PageTableBytes int64 // memory of this space's page tables
	Regions        int   // regions (VMAs)
}

// counters are the live, atomic form of Stats.
type counters struct {
	faultAlloc      [folio.NrOrders]atomic.Uint64
	faultFallback   [folio.NrOrders]atomic.Uint64
	split           [folio.NrOrders]atomic.Uint64
	splitDeferred   [folio.NrOrders]atomic.Uint64
	splitFailed     atomic.Uint64
	zeroPageMaps    atomic.Uint64
	zeroUpgrades    atomic.Uint64
	wpReuse         atomic.Uint64
	wpCopy          atomic.Uint64
	wpCopyDiscarded atomic.Uint64
	copyBytes       atomic.Uint64
	forkCopies      atomic.Uint64
	forks           atomic.Uint64
	faults          atomic.Uint64
	leafShares      atomic.Uint64
	leafUnshares    atomic.Uint64
	collapsed       atomic.Uint64
	faultAround     atomic.Uint64
	faultAroundPgs  atomic.Uint64
	copyAround      atomic.Uint64
	copyAroundPgs   atomic.Uint64
	resident        atomic.Int64
}

// Stats returns the space's counters. It works on a closed space (its last
// counts, Resident zero).
func (s *Space) Stats() Stats {
	c := &s.cnt
	var st Stats
	for o := range folio.NrOrders {
		st.FaultAlloc[o] = c.faultAlloc[o].Load()
		st.FaultFallback[o] = c.faultFallback[o].Load()
		st.Split[o] = c.split[o].Load()
		st.SplitDeferred[o] = c.splitDeferred[o].Load()
	}
	st.SplitFailed = c.splitFailed.Load()
	st.ZeroPageMaps = c.zeroPageMaps.Load()
	st.ZeroUpgrades = c.zeroUpgrades.Load()
	st.WPReuse = c.wpReuse.Load()
	st.WPCopy = c.wpCopy.Load()
	st.WPCopyDiscarded = c.wpCopyDiscarded.Load()
	st.CopyBytes = c.copyBytes.Load()
	st.ForkCopies = c.forkCopies.Load()
	st.Forks = c.forks.Load()
	st.Faults = c.faults.Load()
	st.LeafShares = c.leafShares.Load()
	st.LeafUnshares = c.leafUnshares.Load()
	st.Collapsed = c.collapsed.Load()
	st.FaultAround = c.faultAround.Load()
	st.FaultAroundPages = c.faultAroundPgs.Load()
	st.CopyAround = c.copyAround.Load()
	st.CopyAroundPages = c.copyAroundPgs.Load()
	st.Resident = c.resident.Load()
	_, _, st.PageTableBytes = s.table.Stats()
	s.mapLock.RLock()
	st.Regions = len(s.regions)
	s.mapLock.RUnlock()
	return st
}

// String summarises the counters in one line.
func (st Stats) String() string {
	var faults uint64
	for _, n := range st.FaultAlloc {
		faults += n
	}
	return fmt.Sprintf("resident %d pages, regions %d; faults: %d folios allocated, %d zero-page maps; COW: %d copies (%s), %d reuses; forks %d",
		st.Resident, st.Regions, faults, st.ZeroPageMaps, st.WPCopy, folio.HumanSize(int64(st.CopyBytes)), st.WPReuse, st.Forks)
}
