package folio

import (
	"fmt"
	"sync/atomic"
)

// orderStats are the per-order allocation counts: atomic, because the
// order-0 caches update them without Arena.mu.
type orderStats struct {
	alloc     [NrOrders]atomic.Uint64
	allocFail [NrOrders]atomic.Uint64
	free      [NrOrders]atomic.Uint64
}

// arenaStats are the arena's other counters, guarded by Arena.mu, which the
// paths that change them hold anyway.
type arenaStats struct {
	folioSplits   [NrOrders]uint64
	buddySplits   uint64
	buddyMerges   uint64
	releases      uint64
	bytesReleased uint64
}

// Stats is a snapshot of an arena's counters.
type Stats struct {
	TotalPages   int64 // pages the arena manages
	FreePages    int64 // pages on the free lists (allocatable), quarantined ones included
	Quarantined  int64 // freed pages the anonfolio_debug build holds back, inaccessible (see FolioMarkHeld)
	ResidentFree int64 // free pages still backed by host memory
	ReleasedFree int64 // free pages returned to the kernel (or never touched)
	PageSize     int
	MaxOrder     int
	HugePage     bool   // MADV_HUGEPAGE applied to the backing
	Populated    bool   // Config.Populate prefaulted the backing
	Backing      string // "mmap" or "Go heap" (race builds)
	Spaces       int    // mm ids in use: live spaces

	Alloc         [NrOrders]uint64 // per order: folios allocated
	AllocFail     [NrOrders]uint64 // per order: allocations that found no block
	Free          [NrOrders]uint64 // per order: folios freed
	FolioSplits   [NrOrders]uint64 // per order: large folios split to order 0
	BuddySplits   uint64           // free blocks split to serve a smaller order
	BuddyMerges   uint64           // free blocks merged with their buddy
	BytesZeroed   uint64           // bytes cleared for AllocZero (known-zero pages are not)
	BytesReleased uint64           // bytes returned to the kernel, cumulative
	Releases      uint64           // madvise calls that returned memory
}

// Stats returns the arena's counters.
func (a *Arena) Stats() Stats {
	a.mmMu.Lock()
	spaces := a.nrMM
	a.mmMu.Unlock()
	st := Stats{
		TotalPages:  a.nrPages,
		PageSize:    a.geo.PageSize,
		MaxOrder:    a.geo.MaxOrder,
		HugePage:    a.hugePage,
		Populated:   a.populated,
		Backing:     backingName,
		Spaces:      spaces,
		BytesZeroed: a.bytesZeroed.Load(),
	}
	for o := range NrOrders {
		st.Alloc[o] = a.ostat.alloc[o].Load()
		st.AllocFail[o] = a.ostat.allocFail[o].Load()
		st.Free[o] = a.ostat.free[o].Load()
	}
	cached := a.pcpPages() // free, in the order-0 caches (counted resident)
	st.Quarantined = a.quarantined()
	a.mu.Lock()
	defer a.mu.Unlock()
	st.FreePages = a.nrFree + cached + st.Quarantined
	st.ResidentFree = a.nrRetained + cached
	st.ReleasedFree = a.nrFree - a.nrRetained
	st.FolioSplits = a.stat.folioSplits
	st.BuddySplits = a.stat.buddySplits
	st.BuddyMerges = a.stat.buddyMerges
	st.BytesReleased = a.stat.bytesReleased
	st.Releases = a.stat.releases
	return st
}

// String summarises the counters in one line.
func (s Stats) String() string {
	ps := int64(s.PageSize)
	return fmt.Sprintf("%s in %s pages: %s free (%s resident), spaces: %d",
		HumanSize(s.TotalPages*ps), HumanSize(ps), HumanSize(s.FreePages*ps), HumanSize(s.ResidentFree*ps), s.Spaces)
}
