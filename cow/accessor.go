package cow

import (
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
)

// Accessor is one goroutine's fast handle on a Space: ReadAt and WriteAt,
// and atomic 8-byte loads and stores, through a software TLB of its own
// that remembers where recently used memory is. A read takes no reference
// and writes nothing shared (a seqlock read: it copies, then checks that
// nothing remapped the page meanwhile), so goroutines with Accessors of
// their own read in parallel without slowing each other.
//
// An Accessor is not for concurrent use: give each goroutine its own, or
// hand one over with a lock or a channel. Every method is safe against
// Fork, Unmap, Protect, Remap, Advise and copy-on-write in other
// goroutines: a translation they change is dropped before the old page can
// be reused. Errors are the Space's (ErrFault, ErrProtection, ErrClosed);
// the 8-byte operations need an 8-byte aligned address (ErrInvalid
// otherwise) and use the machine's byte order.
//
// Close it when done: every Fork and every unmap of the space looks at the
// sections of each open Accessor. An Accessor must come from NewAccessor:
// the zero value reports ErrInvalid.
type Accessor mm.Accessor

func (a *Accessor) m() (*mm.Accessor, error) {
	if a == nil {
		return nil, errNoAccessor
	}
	return (*mm.Accessor)(a), nil
}

// NewAccessor returns a new Accessor on s. On a closed space, the
// Accessor's methods report ErrClosed.
func (s *Space) NewAccessor() *Accessor {
	m, err := s.m()
	if err != nil {
		return nil
	}
	return (*Accessor)(m.NewAccessor())
}

// ReadAt reads len(p) bytes at address off, as Space.ReadAt does. It
// implements io.ReaderAt.
func (a *Accessor) ReadAt(p []byte, off int64) (int, error) {
	if a == nil { // written out, not a.m(), to stay within the inlining budget
		return 0, errNoAccessor
	}
	return (*mm.Accessor)(a).ReadAt(p, off)
}

// WriteAt writes p at address off, as Space.WriteAt does: each page lands
// wholly before or after a concurrent Fork. It implements io.WriterAt.
func (a *Accessor) WriteAt(p []byte, off int64) (int, error) {
	if a == nil {
		return 0, errNoAccessor
	}
	return (*mm.Accessor)(a).WriteAt(p, off)
}

// LoadUint64 loads the 8 bytes at addr atomically.
func (a *Accessor) LoadUint64(addr Addr) (uint64, error) {
	if a == nil { // written out, not a.m(), to stay within the inlining budget
		return 0, errNoAccessor
	}
	return (*mm.Accessor)(a).LoadUint64(mm.Addr(addr))
}

// StoreUint64 stores v at addr atomically, faulting as a write would (a
// first write allocates, a write to a page shared with a Fork copies it).
func (a *Accessor) StoreUint64(addr Addr, v uint64) error {
	if a == nil {
		return errNoAccessor
	}
	return (*mm.Accessor)(a).StoreUint64(mm.Addr(addr), v)
}

// AddUint64 adds delta to the 8 bytes at addr atomically and returns the new
// value.
func (a *Accessor) AddUint64(addr Addr, delta uint64) (uint64, error) {
	if a == nil {
		return 0, errNoAccessor
	}
	return (*mm.Accessor)(a).AddUint64(mm.Addr(addr), delta)
}

// CompareAndSwapUint64 stores new at addr if it holds old, atomically, and
// reports whether it did. In a read-only region, a CAS whose old value
// matches is ErrProtection; one whose old value does not match returns
// false (it would write nothing).
func (a *Accessor) CompareAndSwapUint64(addr Addr, old, new uint64) (bool, error) {
	if a == nil {
		return false, errNoAccessor
	}
	return (*mm.Accessor)(a).CompareAndSwapUint64(mm.Addr(addr), old, new)
}

// Close releases the Accessor; its methods report ErrClosed afterwards. A
// second Close returns nil.
func (a *Accessor) Close() error {
	m, err := a.m()
	if err != nil {
		return err
	}
	return m.Close()
}

// View calls fn with the memory of [addr, addr+n) in place, one physically
// contiguous piece at a time, in address order (a whole large folio is one
// piece), and returns the first error fn returns, or the space's
// (ErrFault, ErrProtection) as ReadAt or WriteAt would. With write, each
// piece is made writable first (faulting as a write would) and what fn
// writes into it is the space's write; without, fn must only read it.
//
// Use it to work on bytes where they are: compare a key, encode a value,
// checksum a record, without a copy. The rules:
//
//   - a piece is valid only while fn runs: do not keep it;
//   - fn must be short: while it runs its pages stay mapped as they are, so
//     a Fork, Close, Protect or WriteProtect of the space waits for it, and
//     Unmap, DontNeed, MapFixed or Remap wait before they free anything;
//   - fn must not call those methods on this space: they would wait for fn;
//     nor this Accessor's methods, which report ErrInvalid from fn (a
//     fault of theirs would wait for a Fork that waits for fn); nor the
//     space's ReadAt and WriteAt, which may fault and so wait in the same
//     way (another space's are fine);
//   - each piece lands wholly before or after a concurrent Fork.
//
// The anonfolio_debug build checks the first and third rules: it gives fn
// a copy that it makes inaccessible when fn returns (a piece used later
// faults at the culprit), and a wait for fn that lasts 10 s panics.
func (a *Accessor) View(addr Addr, n int, write bool, fn func(p []byte) error) error {
	m, err := a.m()
	if err != nil {
		return err
	}
	return m.View(mm.Addr(addr), n, write, fn)
}
