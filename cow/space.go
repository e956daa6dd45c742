package cow

import (
	"fmt"

	"github.com/anonfolio/anonfolio/folio"
	mm "github.com/anonfolio/anonfolio/internal/mm/cow"
	mmfolio "github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Space is an address space: what a process's mm is to Linux. It holds
// regions of anonymous memory (Map), backed by folios of one arena, and
// serves loads and stores (ReadAt, WriteAt) as a CPU would: a first write
// allocates a folio, a write to a page shared with a Fork copies it. All
// methods are safe for concurrent use by many goroutines.
//
// A Space is made by NewSpace or Fork; the zero value is not usable (its
// methods return ErrInvalid). Close it when done: until then it holds its
// memory, and its arena cannot close.
type Space mm.Space

// errNoSpace is what the methods of a Space that NewSpace or Fork did not
// make return.
var errNoSpace = fmt.Errorf("%w: a Space not made by NewSpace or Fork", ErrInvalid)

// errNoAccessor is what a nil Accessor's methods return.
var errNoAccessor = fmt.Errorf("%w: a nil Accessor (from NewAccessor on a Space not made by NewSpace or Fork)", ErrInvalid)

// m returns the space's engine, or errNoSpace.
func (s *Space) m() (*mm.Space, error) {
	m := (*mm.Space)(s)
	if !m.Valid() {
		return nil, errNoSpace
	}
	return m, nil
}

// NewSpace returns an empty space that allocates from a.
func NewSpace(a *folio.Arena, opts Options) (*Space, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil arena", ErrInvalid)
	}
	s, err := mm.NewSpace((*mmfolio.Arena)(a), opts.mm())
	if err != nil {
		return nil, err
	}
	return (*Space)(s), nil
}

// Map maps length bytes of anonymous, zero-filled memory somewhere free and
// returns its address, aligned to the PMD size (2 MiB with 4 KiB pages) so
// that the largest folios fit. Nothing is allocated until the memory is
// touched. length must be a positive multiple of the page size.
func (s *Space) Map(length int, prot Prot) (Addr, error) {
	m, err := s.m()
	if err != nil {
		return 0, err
	}
	a, err := m.Map(length, mm.Prot(prot))
	return Addr(a), err
}

// MapFixed maps length bytes at addr, replacing whatever was mapped there
// (MAP_FIXED).
func (s *Space) MapFixed(addr Addr, length int, prot Prot) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.MapFixed(mm.Addr(addr), length, mm.Prot(prot))
}

// Unmap removes the mappings in [addr, addr+length) and frees their pages
// (munmap); a part that is not mapped is no error.
func (s *Space) Unmap(addr Addr, length int) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.Unmap(mm.Addr(addr), length)
}

// Protect changes the protection of [addr, addr+length), which must be
// mapped (ErrFault otherwise), as mprotect(2) does. Pages keep their data.
// A ReadAt or WriteAt in flight finishes before Protect returns; every
// access after it sees the new protection.
func (s *Space) Protect(addr Addr, length int, prot Prot) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.Protect(mm.Addr(addr), length, mm.Prot(prot))
}

// WriteProtect makes the pages mapped in [addr, addr+length) read-only while
// their regions stay writable, as the kernel's soft-dirty reset does: the
// next write to each page faults (and reuses the page if no other space
// shares it). A WriteAt in flight finishes first. The range must be mapped.
func (s *Space) WriteProtect(addr Addr, length int) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.WriteProtect(mm.Addr(addr), length)
}

// Remap moves the pages of [old, old+length) to [new, new+length), as
// mremap(MREMAP_MAYMOVE|MREMAP_FIXED) does: whatever was mapped at new is
// unmapped first, the old range must lie within one region, and the ranges
// must not overlap. Nothing is copied.
func (s *Space) Remap(old Addr, length int, new Addr) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.Remap(mm.Addr(old), length, mm.Addr(new))
}

// Advise applies advice to [addr, addr+length), which must be mapped
// (madvise).
func (s *Space) Advise(addr Addr, length int, advice Advice) error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.Advise(mm.Addr(addr), length, mm.Advice(advice))
}

// ReadAt reads len(p) bytes from address off, as CPU loads would: a page
// never written reads zero, a page of a region without read permission is
// ErrProtection, an address outside every region is ErrFault. It returns
// how many bytes it read before an error. It implements io.ReaderAt over
// the space's addresses.
func (s *Space) ReadAt(p []byte, off int64) (int, error) {
	m, err := s.m()
	if err != nil {
		return 0, err
	}
	return m.ReadAt(p, off)
}

// WriteAt writes p at address off, as CPU stores would: allocating folios
// for pages never written, copying pages shared with a Fork. For each page
// the write lands wholly before or wholly after a concurrent Fork. It
// returns how many bytes it wrote before an error. It implements
// io.WriterAt over the space's addresses.
func (s *Space) WriteAt(p []byte, off int64) (int, error) {
	m, err := s.m()
	if err != nil {
		return 0, err
	}
	return m.WriteAt(p, off)
}

// Fork returns a copy-on-write snapshot of the space: a full, writable
// child that starts with the same contents and regions (less those advised
// DontFork; WipeOnFork ones come empty). It takes microseconds whatever the
// size: the child shares the parent's page-table pages (on-demand fork) and
// each side copies a page the first time it writes it. Pages pinned in the
// parent are copied for the child at once, so pins stay the parent's.
func (s *Space) Fork() (*Space, error) {
	m, err := s.m()
	if err != nil {
		return nil, err
	}
	c, err := m.Fork()
	if err != nil {
		return nil, err
	}
	return (*Space)(c), nil
}

// Close is exit: it unmaps everything and frees what only this space held.
// Pins and Gets taken from the space stay valid until released. Closing a
// closed space is a no-op.
func (s *Space) Close() error {
	m, err := s.m()
	if err != nil {
		return err
	}
	return m.Close()
}

// Closed reports whether Close was called.
func (s *Space) Closed() bool {
	m, err := s.m()
	return err != nil || m.Closed()
}

// Arena returns the arena the space allocates from.
func (s *Space) Arena() *folio.Arena {
	m, err := s.m()
	if err != nil {
		return nil
	}
	return (*folio.Arena)(m.Arena())
}

// PageSize returns the space's base page size.
func (s *Space) PageSize() int {
	m, err := s.m()
	if err != nil {
		return 0
	}
	return m.PageSize()
}

// Options returns the options the space was made with, Orders resolved.
func (s *Space) Options() Options {
	m, err := s.m()
	if err != nil {
		return Options{}
	}
	o := m.Options()
	return Options{Orders: OrderSet(o.Orders), CopyUnit: CopyUnit(o.CopyUnit)}
}

// Stats returns the space's counters. They survive Close (Resident is then
// zero).
func (s *Space) Stats() Stats {
	m, err := s.m()
	if err != nil {
		return Stats{}
	}
	return Stats(m.Stats())
}

// Pagemap returns what maps addr, as a line of /proc/pid/pagemap would:
// read without a lock, so a snapshot that may change at once if other
// goroutines use the space. ok is false if nothing is mapped there.
func (s *Space) Pagemap(addr Addr) (PagemapEntry, bool) {
	m, err := s.m()
	if err != nil {
		return PagemapEntry{}, false
	}
	e, ok := m.Pagemap(mm.Addr(addr))
	return PagemapEntry(e), ok
}

// SplitDeferred splits the large folios of the space's arena that were left
// partly mapped (by DontNeed, Unmap or copy-on-write) and frees their
// unmapped pages; it returns how many pages it freed (deferred_split_scan).
// A fault that finds the arena out of memory does this on its own; call it
// when you want the memory back now.
func (s *Space) SplitDeferred() int {
	m, err := s.m()
	if err != nil {
		return 0
	}
	return m.SplitDeferred()
}

// String describes the space in one line: its id, regions, resident memory
// and whether it is closed.
func (s *Space) String() string {
	m, err := s.m()
	if err != nil {
		return "cow.Space(invalid)"
	}
	return m.String()
}
