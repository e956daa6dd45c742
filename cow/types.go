package cow

import (
	"github.com/anonfolio/anonfolio/folio"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
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
)

// String formats a protection as /proc/self/maps does: "rw", "r-", "--".
func (p Prot) String() string { return mm.Prot(p).String() }

// OrderSet is a set of folio orders: bit n set means a fault may allocate a
// folio of order n (2^n pages). Order 0 is always in it.
type OrderSet uint32

// Orders returns the set of the given orders and order 0. An order outside
// [0, folio.NrOrders) makes the set invalid: NewSpace refuses it with
// ErrInvalid.
func Orders(orders ...int) OrderSet { return OrderSet(mm.Orders(orders...)) }

// DefaultOrders returns what a space allocates when Options.Orders is zero:
// order 0, the contpte order (64 KiB with 4 KiB pages) and the PMD order
// (2 MiB), less any above the arena's MaxOrder.
func DefaultOrders(a *folio.Arena) OrderSet {
	return OrderSet(mm.DefaultOrders((*mmfolio.Arena)(a)))
}

// Has reports whether order is in the set.
func (s OrderSet) Has(order int) bool { return mm.OrderSet(s).Has(order) }

// Highest returns the largest order in the set.
func (s OrderSet) Highest() int { return mm.OrderSet(s).Highest() }

// String lists the orders: "{0,4,9}".
func (s OrderSet) String() string { return mm.OrderSet(s).String() }

// CopyUnit is what a write to a page shared with a Fork copies.
type CopyUnit int

const (
	// CopyPage copies the one page written, as the kernel does: the rest of
	// a large folio stays shared. The default.
	CopyPage CopyUnit = iota
	// CopyFolio copies the whole folio when the space maps all of it and it
	// is shared (gVisor's 2 MiB unit): fewer faults, more bytes copied.
	CopyFolio
)

// Options configure a Space. The zero value is the default: DefaultOrders,
// CopyPage.
type Options struct {
	// Orders are the folio orders a write fault may allocate; the zero
	// value means DefaultOrders. Which orders suit a workload is what
	// bench/cmd/orderbench measures.
	Orders OrderSet
	// CopyUnit says what a write to a shared page copies; the zero value
	// is CopyPage.
	CopyUnit CopyUnit
}

func (o Options) mm() mm.Options {
	return mm.Options{Orders: mm.OrderSet(o.Orders), CopyUnit: mm.CopyUnit(o.CopyUnit)}
}

// Advice is a hint or a request about a range, as for madvise(2).
type Advice int

// Advice values.
const (
	// DontNeed (MADV_DONTNEED) drops the pages: the range reads zero
	// afterwards and its memory goes back to the arena.
	DontNeed Advice = iota + 1
	// DontFork (MADV_DONTFORK): Fork's child does not inherit the range.
	DontFork
	// DoFork (MADV_DOFORK) undoes DontFork.
	DoFork
	// WipeOnFork (MADV_WIPEONFORK): the child inherits the range empty.
	WipeOnFork
	// KeepOnFork (MADV_KEEPONFORK) undoes WipeOnFork.
	KeepOnFork
	// Collapse (MADV_COLLAPSE) copies each PMD-aligned, PMD-sized part of
	// the range that lies in one region into one new PMD-order folio mapped
	// by a huge entry, exclusive to this space; pages shared with a Fork
	// stay theirs. Parts that hold a pinned or otherwise referenced folio
	// are left as they were (ErrBusy).
	Collapse
	// PopulateRead (MADV_POPULATE_READ) faults the range in for reading
	// now, so that later reads find it mapped: pages never written map the
	// shared zero page. The range must be readable (ErrProtection).
	PopulateRead
	// PopulateWrite (MADV_POPULATE_WRITE) faults the range in for writing
	// now: every page gets memory of its own, in folios of the space's
	// orders, and pages shared with a Fork are copied (or reused). The
	// range must be writable (ErrProtection).
	PopulateWrite
)

// String names the advice: "DontNeed".
func (a Advice) String() string { return mm.Advice(a).String() }
