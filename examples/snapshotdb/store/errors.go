package store

import (
	"errors"
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
)

// Errors. Each is a sentinel for errors.Is; returned errors wrap them with
// detail, except ErrNotFound from the read paths, which is returned as is
// so that a miss does not allocate. Running out of the arena's memory is
// folio.ErrNoMemory.
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
	// ErrBrokenChain: the images given to LoadChain are not a full image
	// and deltas each following the one before (a delta missing, moved
	// or from another chain). LoadChain loads nothing then.
	ErrBrokenChain = errors.New("store: the images do not form a chain")
	// ErrSaveInProgress: Save was called while another save was running.
	ErrSaveInProgress = errors.New("store: a save is already in progress")
	// ErrNotInteger: IncrBy on a value that is not a decimal int64.
	ErrNotInteger = errors.New("store: value is not an integer or out of range")
	// ErrOverflow: IncrBy would overflow an int64.
	ErrOverflow = errors.New("store: increment or decrement would overflow")
)

var errOddPairs = fmt.Errorf("%w: an odd number of arguments for key/value pairs", cow.ErrInvalid)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func tooLarge(klen, vlen int) error {
	return fmt.Errorf("%w: key of %d bytes, value of %d", ErrTooLarge, klen, vlen)
}
