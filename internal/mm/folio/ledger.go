package folio

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/sections"
)

// The external-reference ledger counts the references on the arena's memory
// that are neither mappings nor in flight: pins (FOLL_PIN) and plain
// references (FOLL_GET) held by the pin package's Pages, and the plain
// references to the shared zero page, which has no folio to count them.
// Summed over the arena, each folio's refcount less its mapcount and
// pincount must come to the outstanding plain references, and the pincounts
// to the outstanding pins: that is how cow.Check verifies the accounting
// exactly. Close refuses while anything is outstanding, the zero page
// included. The counters are sharded like the order-0 caches, so a pin costs
// one uncontended atomic add here.
//
// The pins and plain references on folios are counted only in race and
// invariants builds (ExactLedger), which is where Check is exact about
// them: a pin and its release take two atomics of their own (the grab, the
// pincount) and, in those builds, three more for the ledger and its gate,
// which would double what a pin costs. The default build keeps a pin at its
// floor; its Check still verifies that no folio's refcount is below its
// mappings and pins, and Close still refuses while a pinned or referenced
// folio is allocated. References to the zero page are always counted.
type ledger struct {
	shard [nLedger]struct {
		pins, gets, zero atomic.Int64
		_                [40]byte
	}
}

const nLedger = 16

// LedgerAdd records pins, plain references to folios and plain references
// to the zero page taken (positive) or released (negative) outside the
// arena's mappings.
func (a *Arena) LedgerAdd(pins, gets, zeroGets int) {
	var probe byte
	s := &a.ledger.shard[uintptr(unsafe.Pointer(&probe))>>13&(nLedger-1)]
	if pins != 0 {
		s.pins.Add(int64(pins))
	}
	if gets != 0 {
		s.gets.Add(int64(gets))
	}
	if zeroGets != 0 {
		s.zero.Add(int64(zeroGets))
	}
}

// Ledger returns the pins, plain references to folios and plain references
// to the zero page the ledger counts as outstanding (without ExactLedger,
// the first two are not counted: see Outstanding).
func (a *Arena) Ledger() (pins, gets, zeroGets int64) {
	for i := range a.ledger.shard {
		pins += a.ledger.shard[i].pins.Load()
		gets += a.ledger.shard[i].gets.Load()
		zeroGets += a.ledger.shard[i].zero.Load()
	}
	return pins, gets, zeroGets
}

// ledgerGate keeps Check from seeing a release half done: Pages.Release
// drops a folio's pins or references and then the ledger's count, with no
// lock of any space held (the space may be gone), so it does both inside a
// section of the gate; Check freezes the gate, which waits for the sections
// in flight and holds new ones at the door, and compares the two.
// Acquisitions need none of this: they run inside a lockless section of
// their space or under its map lock, which Check quiesces.
type ledgerGate struct {
	in     sections.Counter
	frozen atomic.Int32 // Freezes in force
	// door is held for writing while frozen: a section that found the
	// gate frozen waits on it for reading.
	door sync.RWMutex
}

// LedgerEnter begins a release of pins or plain references: a section of
// the ledger gate, which it waits at while a Check has frozen it. Pass the
// result to LedgerExit once the folio counts and the ledger agree again.
func (a *Arena) LedgerEnter() *atomic.Int64 {
	g := &a.gate
	for {
		n := g.in.Enter()
		if g.frozen.Load() == 0 {
			return n
		}
		sections.Exit(n)
		g.door.RLock() // until LedgerThaw
		g.door.RUnlock()
	}
}

// LedgerExit ends the section LedgerEnter began.
func (a *Arena) LedgerExit(n *atomic.Int64) { sections.Exit(n) }

// LedgerFreeze holds new releases at the gate and waits for those in
// flight: until LedgerThaw, the folios' pin and reference counts and the
// ledger change only by acquisitions (which the caller also quiesced).
//
// +checklocksignore: the door stays locked until LedgerThaw.
func (a *Arena) LedgerFreeze() {
	g := &a.gate
	g.door.Lock()
	g.frozen.Add(1)
	g.in.Drain()
}

// LedgerThaw reopens the gate.
//
// +checklocksignore: LedgerFreeze locked the door.
func (a *Arena) LedgerThaw() {
	g := &a.gate
	g.frozen.Add(-1)
	g.door.Unlock()
}

// Outstanding returns the pins, plain references to folios and plain
// references to the zero page held outside the arena's mappings, for
// reports (Close's refusal, an out-of-memory error) and tests. With
// ExactLedger they are the ledger's counts. Without it the first two are
// summed over the allocated folios: each folio's pincount, and its
// references beyond its mappings and pins. That is exact while no access
// or fault is in flight (they hold references of their own), an estimate
// otherwise. It walks the page descriptors: not for a hot path.
func (a *Arena) Outstanding() (pins, gets, zeroGets int64) {
	pins, gets, zeroGets = a.Ledger()
	if ExactLedger {
		return pins, gets, zeroGets
	}
	pins, gets = 0, 0
	a.ForEachFolio(func(head PFN, order int) bool {
		p := int64(a.pincount(head, order))
		pins += p
		gets += max(0, int64(a.FolioRef(head))-int64(a.FolioMapcount(head))-p)
		return true
	})
	return pins, gets, zeroGets
}
