package folio

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Errors. Each is a sentinel for errors.Is; the errors returned wrap them
// with what failed and why.
var (
	// ErrNoMemory: the arena has no free folio of the order a fault needed
	// (even after falling back to smaller ones and splitting partly
	// unmapped large folios), or every space id is in use. The error says
	// which order, at which address, and what holds the arena's memory.
	ErrNoMemory = mm.ErrNoMemory
	// ErrBusy: Close found spaces, pins, Gets or folios still alive; the
	// error counts each.
	ErrBusy = mm.ErrBusy
	// ErrInvalid: a bad Config or argument.
	ErrInvalid = mm.ErrInvalid
	// ErrClosed: the arena was closed.
	ErrClosed = mm.ErrClosed
)
