package cow

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// Errors. Each is a sentinel for errors.Is; the errors returned wrap them
// with the address or argument at fault. Running out of memory is
// folio.ErrNoMemory.
var (
	// ErrFault: no region at that address (what a SIGSEGV is for a
	// missing mapping).
	ErrFault = mm.ErrFault
	// ErrProtection: the access is not allowed by the region's protection.
	ErrProtection = mm.ErrProtection
	// ErrInvalid: a misaligned address, a bad length, an overlap, an
	// unknown argument, or a Space that NewSpace or Fork did not make.
	ErrInvalid = mm.ErrInvalid
	// ErrClosed: the space was closed.
	ErrClosed = mm.ErrClosed
	// ErrBusy: Advise(Collapse) found pages it may not move: pinned, or
	// referenced by someone other than their mappings (a Get, a copy or a
	// read in flight). As MADV_COLLAPSE's EAGAIN: a later try may work.
	ErrBusy = mm.ErrBusy
)
