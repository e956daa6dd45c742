package store

import "errors"

// Errors. Each is a sentinel for errors.Is; returned errors wrap them with
// detail. Running out of the arena's memory is folio.ErrNoMemory.
var (
	// ErrNotFound: no value is stored under the key.
	ErrNotFound = errors.New("store: key not found")
	// ErrTooLarge: a key longer than MaxKeyLen or a value longer than
	// MaxValueLen.
	ErrTooLarge = errors.New("store: key or value too large")
	// ErrClosed: the store or snapshot was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt: an image is truncated, fails its checksums or breaks an
	// invariant of the layout. Load loads nothing then.
	ErrCorrupt = errors.New("store: corrupt image")
	// ErrSaveInProgress: Save was called while another save was running.
	ErrSaveInProgress = errors.New("store: a save is already in progress")
)
