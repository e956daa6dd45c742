package cow

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/sections"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// Space is an address space: an mm. It holds regions (VMAs) of anonymous
// memory backed by folios of one arena, a page table that maps them, and
// the locks and sequence count of the kernel's mm. All methods are safe for
// concurrent use.
type Space struct {
	// Immutable after creation.
	a         *folio.Arena
	geo       folio.Geometry
	ps        uint64 // page size
	leafShift uint   // log2 of the bytes one leaf (one directory slot) maps
	mm        folio.MMID
	serial    uint64 // unique for the process's life (mm ids are reused)
	as        *arenaState
	orders    OrderSet
	copyUnit  CopyUnit
	table     *pte.Table

	// mapLock is the mmap_lock: held for reading by faults and the locked
	// slow paths, for writing by anything that changes regions, by Fork
	// and by Close.
	mapLock sync.RWMutex
	// regions are sorted by address and do not overlap.
	// +checklocks:mapLock
	regions []region
	// mapHint is where Map starts looking for room.
	// +checklocks:mapLock
	mapHint Addr

	// closed is set by Close (with mapLock held for writing); the lockless
	// paths read it after entering a section.
	closed atomic.Bool
	// wpSeq is the write_protect_seq: odd while Fork write-protects (and
	// while Close and Check quiesce the space). Lockless paths back out
	// while it is odd, and GUP-fast rechecks it at the end.
	wpSeq atomic.Uint64
	// inflight counts the GUP-fast walks in flight (they hold references).
	inflight sections.Counter
	// accs are the open Accessors, whose sections the same events wait
	// for (accsections.go): the reference-free lockless writes (WriteAt, an
	// Accessor's stores), which no page they write may be freed under, and
	// the seqlock reads, which only Close waits for. Space.ReadAt and
	// WriteAt run in sections of pooled Accessors (accpool.go). See tlb.go.
	accs accessorSet

	// copies records this space's COW copies in flight: each holds a
	// reference on the old folio that must not stop a reuse (the copy
	// will find its entry changed and discard itself).
	copies copyTable

	// track is the baseline state: what a snapshot's delta needs beyond
	// the written marks (baseline.go).
	track tracking
	// reserve holds the pages a ResetTo reserved for the copies it makes.
	// +checklocks:mapLock
	reserve []folio.PFN
	// mended are the slots the last ResetTo mended entry by entry
	// (reset.go), by address.
	// +checklocks:mapLock
	mended map[uint64]mendedLeaf

	cnt counters
}

// NewSpace returns an empty space that allocates from a.
func NewSpace(a *folio.Arena, opts Options) (*Space, error) {
	if a == nil {
		return nil, invalid("nil arena")
	}
	orders := opts.Orders
	if orders == 0 {
		orders = DefaultOrders(a)
	}
	orders |= 1
	if orders&orderInvalid != 0 || orders.Highest() > a.MaxOrder() {
		return nil, invalid("orders %v: not within [0, %d]", orders, a.MaxOrder())
	}
	if opts.CopyUnit != CopyPage && opts.CopyUnit != CopyFolio {
		return nil, invalid("copy unit %d", opts.CopyUnit)
	}
	return newSpace(a, orders, opts.CopyUnit)
}

func newSpace(a *folio.Arena, orders OrderSet, unit CopyUnit) (*Space, error) {
	mm, err := a.NewMMID()
	if err != nil {
		if errors.Is(err, folio.ErrClosed) {
			return nil, invalid("arena is closed")
		}
		return nil, err
	}
	g := a.Geometry()
	s := &Space{
		a:         a,
		geo:       g,
		ps:        uint64(g.PageSize),
		leafShift: g.PageShift + uint(g.PMDOrder),
		mm:        mm,
		serial:    spaceSerial.Add(1),
		orders:    orders,
		copyUnit:  unit,
		table:     pte.New(g, a, uint16(mm)),
	}
	s.as = register(s)
	return s, nil
}

// spaceSerial numbers the spaces.
var spaceSerial atomic.Uint64

// Valid reports whether s was made by NewSpace or Fork (not nil, not a
// zero value).
func (s *Space) Valid() bool { return s != nil && s.table != nil }

// String describes the space in one line: its id, regions, resident memory,
// or that it is closed.
func (s *Space) String() string {
	if !s.Valid() {
		return "cow.Space(invalid)"
	}
	if s.closed.Load() {
		return fmt.Sprintf("cow.Space(%d, closed)", s.mm)
	}
	st := s.Stats()
	return fmt.Sprintf("cow.Space(%d: regions %d, %s resident, forks %d, orders %v)",
		s.mm, st.Regions, folio.HumanSize(st.Resident*int64(s.ps)), st.Forks, s.orders)
}

// Arena returns the arena the space allocates from.
func (s *Space) Arena() *folio.Arena { return s.a }

// Closed reports whether Close was called.
func (s *Space) Closed() bool { return s.closed.Load() }

// PageSize returns the space's base page size.
func (s *Space) PageSize() int { return int(s.ps) }

// Options returns the options the space was created with (Orders resolved).
func (s *Space) Options() Options { return Options{Orders: s.orders, CopyUnit: s.copyUnit} }

// Close is exit: it unmaps everything and releases the space's id. Pins and
// plain references taken from the space stay valid until released. Closing
// a closed space is a no-op.
func (s *Space) Close() error {
	s.mapLock.Lock()
	defer s.mapLock.Unlock()
	if s.closed.Load() {
		return nil
	}
	s.closed.Store(true)
	s.quiesceLocked()
	s.accs.wait(true) // reads in flight too: the arena may close after us
	for _, r := range s.regions {
		s.zapRange(r.start, r.end)
	}
	s.regions = nil
	s.unquiesce()
	s.as.unregister(s)
	s.a.FreeMMID(s.mm)
	return nil
}

// quiesceLocked makes the lockless paths back out (wpSeq odd) and waits for
// those in flight: from here on, only holders of mapLock touch the space.
//
// Preconditions: mapLock is held for writing.
// +checklocks:s.mapLock
func (s *Space) quiesceLocked() {
	s.wpSeq.Add(1)
	testhook.Run(testhook.Quiescing)
	s.inflight.Drain()
	s.accs.wait(false)
}

// unquiesce lets the lockless paths in again.
func (s *Space) unquiesce() { s.wpSeq.Add(1) }

// copyStart records a COW copy of the folio in flight.
func (s *Space) copyStart(head folio.PFN) { s.copies.add(head) }

// copyEnd records that it is over.
func (s *Space) copyEnd(head folio.PFN) { s.copies.remove(head) }

// pageAlign rounds a down to a page boundary.
func (s *Space) pageAlign(a Addr) Addr { return a &^ Addr(s.ps-1) }
