package folio

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Errors. Each is a sentinel for errors.Is; returned errors may wrap them
// with context.
var (
	// ErrNoMemory: no free block of the requested order (or larger) is left,
	// the host refused the reservation, or every mm id is in use.
	ErrNoMemory = errors.New("folio: out of memory")
	// ErrBusy: the arena still has allocated folios or live spaces.
	ErrBusy = errors.New("folio: arena busy")
	// ErrInvalid: a bad Config or argument.
	ErrInvalid = errors.New("folio: invalid argument")
	// ErrClosed: the arena was closed.
	ErrClosed = errors.New("folio: arena closed")
)

// DefaultSize is the arena size when Config.Size is 0.
const DefaultSize = 1 << 30

// maxPages keeps PFNs and free-list links in 31 bits.
const maxPages = 1<<31 - 2

// Config describes an arena. The zero value is a 1 GiB arena of host-sized
// pages with folios up to the PMD order.
type Config struct {
	Size     int64 // bytes of backing memory to reserve; 0 means 1 GiB
	PageSize int   // base page size, a power of two >= 4096; 0 means the host's
	MaxOrder int   // largest folio order; 0 means the PMD order (9 for 4 KiB pages)

	// Populate prefaults the whole backing when the arena is created
	// (MADV_POPULATE_WRITE, or touching every page on kernels before 5.14),
	// so that a latency-sensitive user never waits on the kernel's own page
	// fault inside ours. A populated arena keeps its memory: unless
	// RetainFree says otherwise, nothing is returned to the kernel.
	Populate bool

	// NoHugePage advises MADV_NOHUGEPAGE on the backing instead of
	// MADV_HUGEPAGE (which is used when the host's THP mode allows it).
	NoHugePage bool

	// RetainFree is how many bytes of free memory stay resident before the
	// background scavenger returns large free blocks to the kernel. 0 means
	// Size/16 (all of it with Populate); negative means never.
	RetainFree int64

	// LazyFree returns memory with MADV_FREE (reclaimed only under host
	// memory pressure, cheaper to reuse) instead of MADV_DONTNEED, at the
	// price that released pages are no longer known to be zero.
	LazyFree bool
}

// Arena is the backing memory of one or more spaces: one mmap reservation
// divided into base pages, a buddy allocator over them and their metadata.
// All methods are safe for concurrent use.
type Arena struct {
	_ noCopy

	// Immutable after NewArena.
	geo          Geometry
	sys          sysMem
	mem          []byte
	pages        []page
	nrPages      int64
	zeroPage     []byte
	lazyFree     bool
	hugePage     bool  // MADV_HUGEPAGE was applied
	populated    bool  // Config.Populate succeeded
	retainPages  int64 // free resident pages kept; -1: never release in the background
	releaseOrder int   // smallest block the background scavenger releases; -1: none
	hostOrder    int   // smallest block that covers whole host pages; -1: none

	bytesZeroed atomic.Uint64 // zeroing runs outside mu
	ostat       orderStats

	// pcp are the order-0 page caches in front of the buddy allocator
	// (see pcp.go).
	pcp [nPCP]pcpList
	// ledger counts the pins and plain references outstanding; gate keeps
	// Check from seeing a release half done.
	ledger ledger
	gate   ledgerGate
	// attached is what Attached made: the cow package's state of the
	// arena's spaces.
	attachOnce sync.Once
	attached   any
	// quar holds freed folios that pins or Gets handed out, in the
	// anonfolio_debug build (see debugalloc.go).
	quar quarantine

	// Per-page bits, atomic (see bitmap).
	pae      bitmap // AnonExclusive
	zeroed   bitmap // free page known to read zero
	released bitmap // free page returned to the kernel

	// mu is the buddy allocator lock, last in the lock order.
	mu sync.Mutex

	// free holds the free lists per order and residency.
	// +checklocks:mu
	free [NrOrders][nrLists]freeArea
	// nrFree counts free pages, including those out for a madvise.
	// +checklocks:mu
	nrFree int64
	// nrRetained counts free pages still resident.
	// +checklocks:mu
	nrRetained int64
	// scavenging counts free pages off the lists for a madvise.
	// +checklocks:mu
	scavenging int64
	// +checklocks:mu
	closed bool
	// +checklocks:mu
	scavStarted bool
	// stat holds the counters; its atomics are updated without mu.
	// +checklocks:mu
	stat arenaStats

	// scavReturned is signalled whenever the scavenger puts a block back,
	// for allocations that found nothing while one was out. Its L is &mu.
	// +checklocks:mu
	scavReturned sync.Cond

	scavWake chan struct{}
	scavStop chan struct{}
	scavDone chan struct{}

	// mmMu guards mm id allocation. Lock order: mmMu → mu.
	mmMu sync.Mutex
	// mmIDs has bit i set when id i is in use (id 0 never is).
	// +checklocks:mmMu
	mmIDs [MaxMMIDs/64 + 1]uint64
	// +checklocks:mmMu
	nrMM int
	// mmHint is where the next search starts.
	// +checklocks:mmMu
	mmHint int
}

// noCopy makes `go vet` report copies of an Arena.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// NewArena reserves the backing memory described by cfg and returns an arena
// with every page free.
func NewArena(cfg Config) (*Arena, error) {
	geo, err := NewGeometry(cfg.PageSize, cfg.MaxOrder)
	if err != nil {
		return nil, err
	}
	size := cfg.Size
	switch {
	case size < 0:
		return nil, fmt.Errorf("%w: arena size %d is negative", ErrInvalid, size)
	case size == 0:
		size = DefaultSize
	}
	block := int64(geo.FolioSize(geo.MaxOrder))
	if size > maxPages*int64(geo.PageSize)-block {
		return nil, fmt.Errorf("%w: arena size %d exceeds %d pages", ErrInvalid, size, int64(maxPages))
	}
	size = (size + block - 1) / block * block // whole max-order blocks

	plat := HostPlatform()
	align := max(block, int64(plat.HostPageSize), int64(plat.THPPMDSize))
	sys, err := sysReserve(uintptr(size), uintptr(align))
	if err != nil {
		return nil, err
	}
	zp, err := sysZeroPage(geo.PageSize)
	if err != nil {
		_ = sys.free()
		return nil, err
	}
	nr := size >> geo.PageShift
	a := &Arena{
		geo:      geo,
		sys:      sys,
		mem:      sys.mem,
		pages:    make([]page, nr),
		nrPages:  nr,
		zeroPage: zp,
		lazyFree: cfg.LazyFree,
		pae:      newBitmap(nr),
		zeroed:   newBitmap(nr),
		released: newBitmap(nr),
		scavWake: make(chan struct{}, 1),
		scavStop: make(chan struct{}),
		scavDone: make(chan struct{}),
	}
	a.hostOrder = orderCovering(geo, plat.HostPageSize)
	releaseBytes := max(plat.HostPageSize, 64<<10)
	if plat.THPPMDSize > 0 {
		releaseBytes = max(plat.HostPageSize, plat.THPPMDSize)
	}
	a.releaseOrder = a.hostOrder
	if a.hostOrder >= 0 {
		a.releaseOrder = max(a.hostOrder, min(geo.MaxOrder, orderCeil(geo, releaseBytes)))
	}

	a.hugePage = !cfg.NoHugePage && plat.THPAllowed()
	sysHugePage(a.mem, a.hugePage)

	a.zeroed.set(0, nr) // fresh anonymous memory reads zero
	if cfg.Populate {
		if err := sysPopulate(a.mem, plat.HostPageSize); err != nil {
			sysFreeZeroPage(zp)
			_ = sys.free()
			return nil, err
		}
		a.populated = true
	} else {
		a.released.set(0, nr) // and is not resident until touched
	}
	switch {
	case cfg.RetainFree < 0:
		a.retainPages = -1
	case cfg.RetainFree > 0:
		a.retainPages = cfg.RetainFree >> geo.PageShift
	case cfg.Populate:
		a.retainPages = -1
	default:
		a.retainPages = nr / 16
	}

	a.mu.Lock()
	a.scavReturned.L = &a.mu
	for pfn := PFN(0); pfn < PFN(nr); pfn += PFN(1) << geo.MaxOrder {
		a.pushLocked(pfn, geo.MaxOrder)
	}
	a.nrFree = nr
	if cfg.Populate {
		a.nrRetained = nr
	}
	a.mu.Unlock()
	return a, nil
}

// orderCovering returns the order of the smallest block that covers whole
// host pages, or -1 if even the largest folio is smaller than a host page.
func orderCovering(geo Geometry, hostPage int) int {
	o := 0
	if hostPage > geo.PageSize {
		o = bits.TrailingZeros(uint(hostPage / geo.PageSize))
	}
	if o > geo.MaxOrder {
		return -1
	}
	return o
}

// orderCeil returns the smallest order whose folio is at least n bytes.
func orderCeil(geo Geometry, n int) int {
	o := 0
	for geo.FolioSize(o) < n {
		o++
	}
	return o
}

// Close releases the backing memory. It fails with ErrBusy, naming what is
// still alive, while any space (mm id) is alive, any pin or plain reference
// (the zero page's included) is held, or any folio is allocated; the arena
// then stays usable. Closing a closed arena is a no-op.
func (a *Arena) Close() error {
	a.drainQuarantine()
	a.drainPCP()
	a.mmMu.Lock()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.mmMu.Unlock()
		return nil
	}
	pins, gets, zeroGets := a.Ledger()
	if a.nrFree != a.nrPages || a.nrMM > 0 || pins != 0 || gets != 0 || zeroGets != 0 {
		pins, gets, zeroGets = a.Outstanding() // a pinned or referenced folio is allocated: name it
		err := fmt.Errorf("%w: %d spaces alive, %d pages pinned, %d pages held by Get (%d of them the zero page), %d of %d pages allocated",
			ErrBusy, a.nrMM, pins, gets+zeroGets, zeroGets, a.nrPages-a.nrFree, a.nrPages)
		a.mu.Unlock()
		a.mmMu.Unlock()
		return err
	}
	a.closed = true
	// A Scavenge that took a block off its list may still be in its
	// madvise: the memory must stay mapped until it is back (it counts as
	// free meanwhile, so the test above let it through).
	for a.scavenging > 0 {
		a.scavReturned.Wait()
	}
	started := a.scavStarted
	a.mu.Unlock()
	a.mmMu.Unlock()

	if started {
		close(a.scavStop)
		<-a.scavDone
	}
	sysFreeZeroPage(a.zeroPage)
	return a.sys.free()
}

// PageSize returns the base page size in bytes.
func (a *Arena) PageSize() int { return a.geo.PageSize }

// MaxOrder returns the largest folio order.
func (a *Arena) MaxOrder() int { return a.geo.MaxOrder }

// Geometry returns the arena's geometry.
func (a *Arena) Geometry() Geometry { return a.geo }

// NrPages returns the number of base pages the arena manages.
func (a *Arena) NrPages() int64 { return a.nrPages }

// NewMMID allocates an id for a new address space. It fails with
// ErrNoMemory when MaxMMIDs spaces are alive and with ErrClosed on a closed
// arena. While any id is allocated, Close fails with ErrBusy.
func (a *Arena) NewMMID() (MMID, error) {
	a.mmMu.Lock()
	defer a.mmMu.Unlock()
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	if a.nrMM == MaxMMIDs {
		return 0, fmt.Errorf("%w: all %d mm ids in use", ErrNoMemory, MaxMMIDs)
	}
	for i := 0; i < MaxMMIDs; i++ {
		id := (a.mmHint+i)%MaxMMIDs + 1
		if a.mmIDs[id/64]&(1<<(id%64)) == 0 {
			a.mmIDs[id/64] |= 1 << (id % 64)
			a.nrMM++
			a.mmHint = id
			return MMID(id), nil
		}
	}
	panic("folio: mm id bitmap inconsistent with its count")
}

// FreeMMID returns an id. Every folio must already be unmapped from its space.
func (a *Arena) FreeMMID(id MMID) {
	a.mmMu.Lock()
	defer a.mmMu.Unlock()
	if id == 0 || int(id) > MaxMMIDs || a.mmIDs[id/64]&(1<<(id%64)) == 0 {
		panic(fmt.Sprintf("folio: FreeMMID(%d) of an id that is not allocated", id))
	}
	a.mmIDs[id/64] &^= 1 << (id % 64)
	a.nrMM--
}

// String describes the arena in one line (its size, page size, largest
// folio, free memory and spaces); safe on a closed arena, whose memory it
// does not touch.
func (a *Arena) String() string {
	if a == nil {
		return "folio.Arena(nil)"
	}
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	size := HumanSize(a.nrPages << a.geo.PageShift)
	if closed {
		return fmt.Sprintf("folio.Arena(%s, closed)", size)
	}
	st := a.Stats()
	ps := int64(a.geo.PageSize)
	return fmt.Sprintf("folio.Arena(%s of %s pages, folios up to %s: %s free, spaces: %d)",
		size, HumanSize(ps), HumanSize(int64(a.geo.FolioSize(a.geo.MaxOrder))), HumanSize(st.FreePages*ps), st.Spaces)
}

// Attached returns the value make returns, made on the first call and kept
// for the arena's life: the cow package keeps the registry of the arena's
// spaces and its deferred-split queue there.
func (a *Arena) Attached(make func() any) any {
	a.attachOnce.Do(func() { a.attached = make() })
	return a.attached
}
