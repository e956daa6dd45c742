// Package testhook lets tests stop a goroutine at a named point inside the
// library, to replay an exact interleaving (a COW copy paused after it
// dropped the PTL, a pin landing between Fork's checks and its
// write-protect). When no hook is set, Run costs one atomic load.
package testhook

import "sync/atomic"

// Point names a place in the library where a test may intervene.
type Point int

const (
	// WPCopyUnlocked: wp_page_copy has taken its reference on the old
	// folio and dropped the PTL, and has not yet allocated or copied.
	WPCopyUnlocked Point = iota
	// WPCopyBeforeInstall: the copy is made; the PTL is about to be
	// retaken for the pte_same check.
	WPCopyBeforeInstall
	// Quiescing: Fork, Close or Check has made wpSeq odd and is about to
	// wait for the lockless sections in flight to drain.
	Quiescing
	// ForkBeforeCopy: Fork holds the map lock for writing and has made
	// wpSeq odd, and has not yet looked at any page.
	ForkBeforeCopy
	// ForkAfterPinCheck: Fork decided a batch may be shared (no pin seen)
	// and is about to clear AnonExclusive and write-protect it.
	ForkAfterPinCheck
	// LocklessAfterGrab: a lockless path grabbed a folio and has not yet
	// rechecked its entry; or a seqlock read found its page and has not
	// yet copied it or checked the generation; or a lockless write found
	// its page writable and has not yet written it.
	LocklessAfterGrab
	// LocklessAfterRecheck: a lockless walk grabbed a run and found its
	// entry unchanged; its caller has not yet used the run (a pin has not
	// recorded it).
	LocklessAfterRecheck
	// SplitAfterGrab: the deferred split took its reference on a queued
	// folio and has not yet locked the spaces that map it.
	SplitAfterGrab
	// PinFastDone: a pin or Get took part of its range on the fast path
	// and left its lockless section; the slow path has not begun.
	PinFastDone
	// ReleaseMidway: a release of pins or Gets dropped its first run's
	// counts on the folio and not yet the ledger's.
	ReleaseMidway
	// ScavengeMadvise: a scavenge took a free block off its list and is
	// about to return it to the kernel.
	ScavengeMadvise
	// RemapMoving: a Remap has carried the source leaf's "maybe pinned"
	// hint to the target leaf and is about to move entries between them,
	// holding no PTL (the space is not quiesced: lockless paths run).
	RemapMoving
	// FaultAroundBeforeInstall: a fault-around allocated and cleared its
	// batch of pages without the PTL and is about to take it to recheck
	// that every entry is still none.
	FaultAroundBeforeInstall
	// LocklessBeforeEntry: a lockless write has its translation (the TLB
	// entry, filled or validated) and has not yet read the entry.
	LocklessBeforeEntry

	nrPoints
)

var hooks [nrPoints]atomic.Pointer[func()]

// Run calls the hook set at p, if any.
func Run(p Point) {
	if f := hooks[p].Load(); f != nil {
		(*f)()
	}
}

// Set installs f at p and returns a function that removes it. Tests only.
func Set(p Point, f func()) (restore func()) {
	hooks[p].Store(&f)
	return func() { hooks[p].Store(nil) }
}

// Once is a hook that runs f the first time only and remembers that it
// ran: a test whose interleaving never happened proves nothing, so tests
// check Ran after the operation.
type Once struct {
	done atomic.Bool
	f    func()
}

// NewOnce returns a hook that runs f once.
func NewOnce(f func()) *Once { return &Once{f: f} }

// Run runs f if it has not run yet; pass it to Set.
func (h *Once) Run() {
	if h.done.CompareAndSwap(false, true) {
		h.f()
	}
}

// Ran reports whether f ran.
func (h *Once) Ran() bool { return h.done.Load() }
