package folio

import (
	"sync/atomic"
	"unsafe"
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
// to the zero page outstanding.
func (a *Arena) Ledger() (pins, gets, zeroGets int64) {
	for i := range a.ledger.shard {
		pins += a.ledger.shard[i].pins.Load()
		gets += a.ledger.shard[i].gets.Load()
		zeroGets += a.ledger.shard[i].zero.Load()
	}
	return pins, gets, zeroGets
}
