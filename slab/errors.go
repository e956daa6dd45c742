package slab

import (
	"errors"
	"fmt"
)

// Errors. Each is a sentinel for errors.Is; returned errors wrap them with
// the address or value at fault. Alloc(n) with n <= 0 is cow.ErrInvalid;
// running out of memory or of a size class's address space is
// folio.ErrNoMemory; the space's own errors (cow.ErrClosed, cow.ErrFault)
// come through wrapped.
var (
	// ErrNotBlock: the address is not the start of a block of this
	// allocator: outside its reservation, inside its metadata, or inside
	// a block (an interior pointer).
	ErrNotBlock = errors.New("slab: not the address of a block")
	// ErrNotAllocated: the address is where a block starts, but that block
	// is not allocated: freed already (a double free), or never handed out.
	ErrNotAllocated = errors.New("slab: block not allocated")
	// ErrNotAllocator: Open found no allocator at the root (no magic).
	ErrNotAllocator = errors.New("slab: no allocator at that address")
	// ErrVersion: the allocator at the root has a layout version this
	// package does not read.
	ErrVersion = errors.New("slab: unsupported allocator version")
	// ErrCorrupt: the allocator's header or metadata is damaged (a bad
	// checksum, a value out of bounds, a broken list).
	ErrCorrupt = errors.New("slab: allocator state is damaged")
)

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// wrap adds the call to an error that came from the space (the package's
// own errors already say what and where). Call it only with an error: its
// arguments allocate.
func wrap(err error, call string, args ...any) error {
	for _, own := range []error{ErrNotBlock, ErrNotAllocated, ErrCorrupt} {
		if errors.Is(err, own) {
			return err
		}
	}
	return fmt.Errorf("slab: %s: %w", fmt.Sprintf(call, args...), err)
}
