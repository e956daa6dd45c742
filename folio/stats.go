package folio

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Stats is a snapshot of an arena's counters.
type Stats struct {
	TotalPages   int64 // pages the arena manages
	FreePages    int64 // pages on the free lists (allocatable), quarantined ones included
	Quarantined  int64 // freed pages the anonfolio_debug build holds back, inaccessible (see package pin)
	ResidentFree int64 // free pages still backed by host memory
	ReleasedFree int64 // free pages returned to the kernel (or never touched)
	PageSize     int
	MaxOrder     int
	HugePage     bool   // MADV_HUGEPAGE applied to the backing
	Populated    bool   // Config.Populate prefaulted the backing
	Backing      string // "mmap" or "Go heap" (race builds)
	Spaces       int    // live spaces

	Alloc         [NrOrders]uint64 // per order: folios allocated
	AllocFail     [NrOrders]uint64 // per order: allocations that found no block
	Free          [NrOrders]uint64 // per order: folios freed
	FolioSplits   [NrOrders]uint64 // per order: large folios split to order 0
	BuddySplits   uint64           // free blocks split to serve a smaller order
	BuddyMerges   uint64           // free blocks merged with their buddy
	BytesZeroed   uint64           // bytes cleared for new folios (memory known to be zero is not)
	BytesReleased uint64           // bytes returned to the kernel, cumulative
	Releases      uint64           // madvise calls that returned memory
}

// String summarises the counters in one line: sizes, free and resident
// memory, spaces.
func (s Stats) String() string { return mm.Stats(s).String() }
