package cow

import (
	"fmt"
	"math/bits"
	"strings"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Addr is an address in a Space. Zero is never mapped.
type Addr uint64

// Prot is a region's protection: a combination of ProtRead and ProtWrite,
// or ProtNone. As on x86, a writable region is also readable.
type Prot uint8

// Protections.
const (
	ProtNone  Prot = 0
	ProtRead  Prot = 1 << 0
	ProtWrite Prot = 1 << 1

	protMask = ProtRead | ProtWrite
)

func (p Prot) readable() bool { return p != ProtNone }
func (p Prot) writable() bool { return p&ProtWrite != 0 }

// String formats a protection like /proc/self/maps: "rw", "r-", "--".
func (p Prot) String() string {
	b := []byte("--")
	if p.readable() {
		b[0] = 'r'
	}
	if p.writable() {
		b[1] = 'w'
	}
	return string(b)
}

// OrderSet is a set of folio orders: bit n set means folios of order n may
// be allocated on a fault. Order 0 is always in it.
type OrderSet uint32

// orderInvalid marks a set built from an order out of range; NewSpace
// rejects it.
const orderInvalid OrderSet = 1 << 31

// Orders returns the set of the given orders and order 0. An order outside
// [0, folio.NrOrders) makes the set invalid (NewSpace returns ErrInvalid).
func Orders(orders ...int) OrderSet {
	s := OrderSet(1)
	for _, o := range orders {
		if o < 0 || o >= folio.NrOrders {
			s |= orderInvalid
			continue
		}
		s |= 1 << o
	}
	return s
}

// DefaultOrders returns {0, contpte order, PMD order} for the arena, less
// any above its MaxOrder.
func DefaultOrders(a *folio.Arena) OrderSet {
	g := a.Geometry()
	s := OrderSet(1)
	for _, o := range []int{g.ContOrder, g.PMDOrder} {
		if o <= g.MaxOrder {
			s |= 1 << o
		}
	}
	return s
}

// Has reports whether order is in the set.
func (s OrderSet) Has(order int) bool { return order >= 0 && order < 31 && s&(1<<order) != 0 }

// Highest returns the largest order in the set.
func (s OrderSet) Highest() int { return bits.Len32(uint32(s&^orderInvalid)) - 1 }

// String lists the orders: "{0,4,9}".
func (s OrderSet) String() string {
	var parts []string
	for o := 0; o < 31; o++ {
		if s.Has(o) {
			parts = append(parts, fmt.Sprint(o))
		}
	}
	if s&orderInvalid != 0 {
		parts = append(parts, "invalid")
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// CopyUnit is what a COW fault copies when a shared page is written.
type CopyUnit int

const (
	// CopyPage copies the one page written, as the kernel does: the rest
	// of a large folio stays shared. The default.
	CopyPage CopyUnit = iota
	// CopyFolio copies the whole folio when the space maps all of it and it
	// is shared (gVisor's 2 MiB unit, Vernon Yang's mTHP COW RFC): fewer
	// faults, more bytes copied.
	CopyFolio
)

// Options configure a Space.
type Options struct {
	// Orders are the folio orders a write fault may allocate; the zero
	// value means DefaultOrders.
	Orders OrderSet
	// CopyUnit says what a COW fault copies; the zero value is CopyPage.
	CopyUnit CopyUnit
}

// Advice is a hint or request about a range, as for madvise.
type Advice int

// Advice values.
const (
	// DontNeed drops the pages: the range reads zero afterwards.
	DontNeed Advice = iota + 1
	// DontFork: the range is not inherited by Fork's child.
	DontFork
	// DoFork undoes DontFork.
	DoFork
	// WipeOnFork: the child inherits the range empty (zero-filled).
	WipeOnFork
	// KeepOnFork undoes WipeOnFork.
	KeepOnFork
	// Collapse (MADV_COLLAPSE) copies the pages of each PMD-aligned,
	// PMD-sized part of the range that lies within one region into one
	// new PMD-order folio mapped by a huge entry, exclusive to this space;
	// pages shared with other spaces stay theirs. Parts holding a pinned or
	// otherwise referenced folio are left as they were (ErrBusy).
	Collapse
	// PopulateRead (MADV_POPULATE_READ) faults the range in for reading
	// now: pages never written map the shared zero page.
	PopulateRead
	// PopulateWrite (MADV_POPULATE_WRITE) faults the range in for writing
	// now: every page gets memory of its own, in folios of the space's
	// orders, and pages shared with a Fork are copied (or reused).
	PopulateWrite
)

func (a Advice) String() string {
	switch a {
	case DontNeed:
		return "DontNeed"
	case DontFork:
		return "DontFork"
	case DoFork:
		return "DoFork"
	case WipeOnFork:
		return "WipeOnFork"
	case KeepOnFork:
		return "KeepOnFork"
	case Collapse:
		return "Collapse"
	case PopulateRead:
		return "PopulateRead"
	case PopulateWrite:
		return "PopulateWrite"
	}
	return fmt.Sprintf("Advice(%d)", int(a))
}
