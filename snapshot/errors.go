package snapshot

import "errors"

// Errors. Each is a sentinel for errors.Is; the errors returned wrap them
// with what was found. A Space's own errors (cow.ErrClosed,
// cow.ErrInvalid), running out of memory (folio.ErrNoMemory) and the
// reader's or writer's errors come through wrapped as they are.
var (
	// ErrCorrupt: the image is damaged or truncated (a checksum, a count or
	// a field does not match). Never ErrMismatch: the checksums cover the
	// headers, the base's identity included.
	ErrCorrupt = errors.New("snapshot: image corrupt or truncated")
	// ErrNoBase: a delta Save of a space that has no successful Save (nor
	// a Load) to be relative to.
	ErrNoBase = errors.New("snapshot: no previous image to make a delta from")
	// ErrMismatch: a delta loaded onto a space that is not exactly in the
	// state it follows (another image, or the space changed since), a
	// full image loaded into a space that has regions, or an image of
	// another page size.
	ErrMismatch = errors.New("snapshot: the image does not follow the space's state")
)
