package folio

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// DefaultSize is the arena size when Config.Size is 0: 1 GiB.
const DefaultSize = mm.DefaultSize

// NrOrders bounds folio orders: the per-order arrays of Stats (here and in
// package cow) have NrOrders entries, for orders 0 to NrOrders-1.
const NrOrders = mm.NrOrders

// Config describes an arena. The zero value is a 1 GiB arena of host-sized
// pages with folios up to the PMD order (2 MiB with 4 KiB pages).
type Config struct {
	Size     int64 // bytes of backing memory to reserve; 0 means 1 GiB
	PageSize int   // base page size, a power of two >= 4096; 0 means the host's
	MaxOrder int   // largest folio order; 0 means the PMD order (9 for 4 KiB pages)

	// Populate prefaults the whole backing when the arena is created
	// (MADV_POPULATE_WRITE), so that a latency-sensitive program never waits
	// on the kernel's own page fault inside anonfolio's. A populated arena
	// keeps its memory: unless RetainFree says otherwise, nothing is
	// returned to the kernel.
	Populate bool

	// NoHugePage advises MADV_NOHUGEPAGE on the backing instead of
	// MADV_HUGEPAGE (which is used when the host's THP mode allows it).
	NoHugePage bool

	// RetainFree is how many bytes of free memory stay resident before the
	// background scavenger returns large free blocks to the kernel. 0 means
	// Size/16 (all of it with Populate); negative means never.
	RetainFree int64

	// LazyFree returns memory with MADV_FREE (reclaimed only under host
	// memory pressure, cheaper to reuse) instead of MADV_DONTNEED.
	LazyFree bool
}

// Arena is the memory behind one or more spaces (package cow): one mmap
// reservation of Size bytes, cut into base pages that are handed out as
// folios of 1 to 2^MaxOrder pages. Nothing is committed until a space
// touches it. All methods are safe for concurrent use; a closed arena's
// methods report what they can (Stats, String) and allocate nothing.
type Arena mm.Arena

func (a *Arena) mm() *mm.Arena { return (*mm.Arena)(a) }

// NewArena reserves the backing memory described by cfg and returns an
// arena with every page free. The reservation is address space only
// (MAP_NORESERVE): its cost is what the spaces on it touch.
func NewArena(cfg Config) (*Arena, error) {
	a, err := mm.NewArena(mm.Config(cfg))
	if err != nil {
		return nil, err
	}
	return (*Arena)(a), nil
}

// Close unmaps the backing memory. It fails with ErrBusy, naming what is
// still alive, while a space of the arena is open, a pin or a Get is held,
// or a folio is still allocated; the arena then stays usable. Closing a
// closed arena is a no-op.
func (a *Arena) Close() error { return a.mm().Close() }

// PageSize returns the base page size in bytes.
func (a *Arena) PageSize() int { return a.mm().PageSize() }

// MaxOrder returns the largest folio order: folios are at most
// PageSize<<MaxOrder bytes.
func (a *Arena) MaxOrder() int { return a.mm().MaxOrder() }

// Geometry returns the arena's page size and the orders derived from it.
func (a *Arena) Geometry() Geometry { return Geometry(a.mm().Geometry()) }

// Scavenge returns free memory to the kernel until at most keep bytes of
// free memory remain resident, largest blocks first, and returns how many
// bytes it released. The background scavenger does this on its own past
// Config.RetainFree; call Scavenge when you know you are done with a lot of
// memory (after closing a large snapshot, say).
func (a *Arena) Scavenge(keep int64) int64 { return a.mm().Scavenge(keep) }

// Stats returns the arena's counters. It works on a closed arena.
func (a *Arena) Stats() Stats { return Stats(a.mm().Stats()) }

// String describes the arena in one line: its size, page size and largest
// folio, and how much is free; safe on a closed arena.
func (a *Arena) String() string { return a.mm().String() }
