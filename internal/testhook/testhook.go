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
	// rechecked its entry.
	LocklessAfterGrab
	// LocklessAfterRecheck: a lockless path grabbed a run and rechecked
	// its entry; it is about to use the pages (copy, or pin them).
	LocklessAfterRecheck

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
