// Package model is a reference model of a cow.Space and of the pins taken
// from it: plain Go maps of page contents per space, with none of the
// library's machinery (no folios, no page tables, no copy-on-write, no
// locks). Fork copies every page at once. The differential tests in
// conformance drive the library and the model with the same operations and
// compare every result, data and errors alike.
//
// The model follows Linux's private anonymous memory where the library does
// and the library where the API leaves freedom:
//
//   - Map returns zero-filled memory; MapFixed replaces what was there;
//     Unmap'd addresses fault (ErrFault).
//   - A region without ProtRead or ProtWrite cannot be read, one without
//     ProtWrite cannot be written (ErrProtection); a writable region is
//     also readable.
//   - Regions are maximal runs of pages with the same protection and fork
//     advice, as the library merges them: Remap's source must lie in one.
//   - Fork gives the child a copy of every page, except those of DontFork
//     regions (absent in the child) and WipeOnFork ones (mapped, zero).
//   - DontNeed drops the pages: they read zero.
//   - A pin holds physical pages, not addresses: Page. Writes through a
//     pin and through the space that maps the page see each other; a Fork
//     copies the page for the child, so the parent keeps the pinned one;
//     Remap moves it; Unmap, MapFixed, DontNeed and Close leave the pin
//     holding it, with the contents it had, and the space no longer sees it.
//
// Errors are the library's sentinels, in the order the library checks
// arguments: ErrInvalid for bad arguments, then ErrClosed, then ErrFault or
// ErrProtection for the first page that refuses the access.
package model

import (
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/pin"
)

// vaLimit is the end of the address space.
const vaLimit = uint64(1) << pte.VABits

// Page is one physical page of the model: what a space maps and a pin
// holds. Its data is nil until written (zero).
type Page struct {
	data []byte
}

// advice bits of a region.
const (
	dontFork uint8 = 1 << iota
	wipeOnFork
)

// entry is one mapped page of a space: its region's attributes and the
// page, nil while unpopulated (it reads zero).
type entry struct {
	prot  cow.Prot
	flags uint8
	page  *Page
}

// Space is the model of one cow.Space.
type Space struct {
	ps      uint64
	closed  bool
	based   bool              // a delta snapshot.Save has a base (snapshot.go)
	entries map[uint64]*entry // by page number (address / page size)
}

// NewSpace returns an empty space of pageSize-byte pages.
func NewSpace(pageSize int) *Space {
	return &Space{ps: uint64(pageSize), entries: make(map[uint64]*entry)}
}

// PageSize returns the page size.
func (s *Space) PageSize() int { return int(s.ps) }

// Closed reports whether Close was called.
func (s *Space) Closed() bool { return s.closed }

// Pages returns how many pages are mapped.
func (s *Space) Pages() int { return len(s.entries) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{cow.ErrInvalid}, args...)...)
}

func checkProt(prot cow.Prot) error {
	if prot&^(cow.ProtRead|cow.ProtWrite) != 0 {
		return invalid("protection %#x", uint8(prot))
	}
	return nil
}

// checkRange validates a page range argument as the library does.
func (s *Space) checkRange(addr cow.Addr, length int) error {
	switch {
	case length <= 0:
		return invalid("length %d", length)
	case uint64(addr)%s.ps != 0 || uint64(length)%s.ps != 0:
		return invalid("address %#x or length %#x not aligned", uint64(addr), length)
	case addr == 0:
		return invalid("address zero")
	case uint64(addr) >= vaLimit || uint64(length) > vaLimit-uint64(addr):
		return invalid("range %#x+%#x beyond the address space", uint64(addr), length)
	}
	return nil
}

// pages returns the page numbers [first, end) of an aligned range.
func (s *Space) pages(addr cow.Addr, length int) (first, end uint64) {
	first = uint64(addr) / s.ps
	return first, first + uint64(length)/s.ps
}

// covered reports whether every page of the range is mapped.
func (s *Space) covered(addr cow.Addr, length int) bool {
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		if s.entries[p] == nil {
			return false
		}
	}
	return true
}

// zap unmaps the pages of the range.
func (s *Space) zap(addr cow.Addr, length int) {
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		delete(s.entries, p)
	}
}

// fill maps the range with fresh, unpopulated pages.
func (s *Space) fill(addr cow.Addr, length int, prot cow.Prot) {
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		s.entries[p] = &entry{prot: prot}
	}
}

// CheckMap predicts Map's error; on nil the library chooses the address and
// the caller records it with Mapped.
func (s *Space) CheckMap(length int, prot cow.Prot) error {
	if err := checkProt(prot); err != nil {
		return err
	}
	if length <= 0 || uint64(length)%s.ps != 0 {
		return invalid("length %d", length)
	}
	if s.closed {
		return cow.ErrClosed
	}
	return nil
}

// Mapped records a region Map placed at addr. It fails if addr is not
// aligned to align or the range was not free: Map must not take addresses
// in use.
func (s *Space) Mapped(addr cow.Addr, length int, prot cow.Prot, align uint64) error {
	if addr == 0 || uint64(addr)%align != 0 {
		return fmt.Errorf("Map returned %#x, not aligned to %#x", uint64(addr), align)
	}
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		if s.entries[p] != nil {
			return fmt.Errorf("Map returned %#x+%#x, which overlaps the mapped page %#x", uint64(addr), length, p*s.ps)
		}
	}
	s.fill(addr, length, prot)
	return nil
}

// MapFixed maps the range, replacing what was there.
func (s *Space) MapFixed(addr cow.Addr, length int, prot cow.Prot) error {
	if err := checkProt(prot); err != nil {
		return err
	}
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	if s.closed {
		return cow.ErrClosed
	}
	s.fill(addr, length, prot)
	return nil
}

// Unmap unmaps the range; unmapped parts are no error.
func (s *Space) Unmap(addr cow.Addr, length int) error {
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	if s.closed {
		return cow.ErrClosed
	}
	s.zap(addr, length)
	return nil
}

// Protect changes the protection of a mapped range.
func (s *Space) Protect(addr cow.Addr, length int, prot cow.Prot) error {
	if err := checkProt(prot); err != nil {
		return err
	}
	if err := s.mappedRange(addr, length); err != nil {
		return err
	}
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		s.entries[p].prot = prot
	}
	return nil
}

// Remap moves the pages of [old, old+length) to new.
func (s *Space) Remap(old cow.Addr, length int, new cow.Addr) error {
	if err := s.checkRange(old, length); err != nil {
		return err
	}
	if err := s.checkRange(new, length); err != nil {
		return err
	}
	if old < new+cow.Addr(length) && new < old+cow.Addr(length) {
		return invalid("overlapping Remap")
	}
	if s.closed {
		return cow.ErrClosed
	}
	// One region: every page mapped, all with the same attributes (the
	// library merges equal neighbours, so regions are the maximal runs).
	first, end := s.pages(old, length)
	e0 := s.entries[first]
	for p := first; p < end; p++ {
		e := s.entries[p]
		if e == nil || e0 == nil || e.prot != e0.prot || e.flags != e0.flags {
			return cow.ErrFault
		}
	}
	s.zap(new, length)
	to := uint64(new) / s.ps
	for p := first; p < end; p++ {
		s.entries[to+p-first] = s.entries[p]
		delete(s.entries, p)
	}
	return nil
}

// WriteProtect changes nothing the model sees: the library's pages only
// become read-only, and their next write faults and reuses them.
func (s *Space) WriteProtect(addr cow.Addr, length int) error {
	return s.mappedRange(addr, length)
}

// mappedRange checks a range argument that must be mapped, with the
// library's errors in its order: ErrInvalid, ErrClosed, then ErrFault.
func (s *Space) mappedRange(addr cow.Addr, length int) error {
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	if s.closed {
		return cow.ErrClosed
	}
	if !s.covered(addr, length) {
		return cow.ErrFault
	}
	return nil
}

// Advise applies advice to a mapped range. Collapse changes no contents.
func (s *Space) Advise(addr cow.Addr, length int, advice cow.Advice) error {
	var set, clear uint8
	switch advice {
	case cow.DontNeed:
	case cow.DontFork:
		set = dontFork
	case cow.DoFork:
		clear = dontFork
	case cow.WipeOnFork:
		set = wipeOnFork
	case cow.KeepOnFork:
		clear = wipeOnFork
	case cow.Collapse:
	case cow.PopulateRead, cow.PopulateWrite:
		// No contents change; every page must allow the access.
		if err := s.mappedRange(addr, length); err != nil {
			return err
		}
		first, end := s.pages(addr, length)
		for p := first; p < end; p++ {
			if prot := s.entries[p].prot; prot == cow.ProtNone || advice == cow.PopulateWrite && prot&cow.ProtWrite == 0 {
				return cow.ErrProtection
			}
		}
		return nil
	default:
		return invalid("advice %d", int(advice)) // ErrInvalid, as a bad range would be
	}
	if err := s.mappedRange(addr, length); err != nil {
		return err
	}
	first, end := s.pages(addr, length)
	for p := first; p < end; p++ {
		e := s.entries[p]
		switch advice {
		case cow.DontNeed:
			e.page = nil
			continue
		case cow.Collapse:
			continue
		}
		e.flags = e.flags&^clear | set
	}
	return nil
}

// access finds the entry of the page at addr if it allows the access.
func (s *Space) access(addr uint64, write bool) (*entry, error) {
	e := s.entries[addr/s.ps]
	switch {
	case e == nil:
		return nil, cow.ErrFault
	case e.prot == cow.ProtNone, write && e.prot&cow.ProtWrite == 0:
		return nil, cow.ErrProtection
	}
	return e, nil
}

// rw is ReadAt and WriteAt: page by page, stopping at the first page that
// refuses the access.
func (s *Space) rw(p []byte, off int64, write bool) (int, error) {
	switch {
	case off < 0:
		return 0, invalid("negative address")
	case len(p) == 0:
		return 0, nil
	case uint64(off) >= vaLimit || uint64(len(p)) > vaLimit-uint64(off):
		return 0, cow.ErrFault
	case s.closed:
		return 0, cow.ErrClosed
	}
	n := 0
	for addr := uint64(off); n < len(p); {
		e, err := s.access(addr, write)
		if err != nil {
			return n, err
		}
		o := addr % s.ps
		k := min(len(p)-n, int(s.ps-o))
		if write {
			if e.page == nil {
				e.page = &Page{}
			}
			e.page.write(p[n:n+k], int(o), int(s.ps))
		} else {
			e.page.read(p[n:n+k], int(o))
		}
		n += k
		addr += uint64(k)
	}
	return n, nil
}

// ReadAt reads as the library's ReadAt does.
func (s *Space) ReadAt(p []byte, off int64) (int, error) { return s.rw(p, off, false) }

// WriteAt writes as the library's WriteAt does.
func (s *Space) WriteAt(p []byte, off int64) (int, error) { return s.rw(p, off, true) }

func (pg *Page) read(b []byte, off int) {
	if pg == nil || pg.data == nil {
		clear(b)
		return
	}
	copy(b, pg.data[off:])
}

func (pg *Page) write(b []byte, off, ps int) {
	if pg.data == nil {
		pg.data = make([]byte, ps)
	}
	copy(pg.data[off:], b)
}

// Fork returns the child: a copy of every page but DontFork ones, with
// WipeOnFork ones zero.
func (s *Space) Fork() (*Space, error) {
	if s.closed {
		return nil, cow.ErrClosed
	}
	c := NewSpace(int(s.ps))
	c.based = s.based
	for p, e := range s.entries {
		if e.flags&dontFork != 0 {
			continue
		}
		ce := &entry{prot: e.prot, flags: e.flags}
		if e.flags&wipeOnFork == 0 && e.page != nil && e.page.data != nil {
			ce.page = &Page{data: append([]byte(nil), e.page.data...)}
		}
		c.entries[p] = ce
	}
	return c, nil
}

// Close unmaps everything; pins keep their pages. Closing twice is no
// error.
func (s *Space) Close() error {
	s.closed = true
	clear(s.entries)
	return nil
}

// Pins are the model of pin.Pages: the pages held, and the range of each
// that Bytes covers, in address order.
type Pins struct {
	segs []seg
	ps   int
	size int
}

type seg struct {
	page *Page
	off  int
	n    int
}

// Take predicts pin.Pin (pin true) or pin.Get of the range. Pin makes every
// page exclusive, so the pages it holds are the ones the space maps, now
// and until they are unmapped; a Get, or a read-only Get of an unpopulated
// page (the shared zero page), holds what is mapped now but may see later
// writes of the space or not, so its Pins are only good for reading at
// once. FastOnly is the caller's business: the fast path may fail where
// the model succeeds, never the other way round.
func (s *Space) Take(addr cow.Addr, length int, flags pin.Flags, pinned bool) (*Pins, error) {
	switch {
	case length <= 0:
		return nil, invalid("length %d", length)
	case flags&^(pin.Write|pin.Longterm|pin.FastOnly) != 0:
		return nil, invalid("flags %#x", uint(flags))
	case uint64(addr) >= vaLimit || uint64(length) > vaLimit-uint64(addr):
		return nil, cow.ErrFault
	case s.closed:
		return nil, cow.ErrClosed
	}
	write := flags&pin.Write != 0
	first := uint64(addr) &^ (s.ps - 1)
	end := uint64(addr) + uint64(length)
	for a := first; a < end; a += s.ps {
		if _, err := s.access(a, write); err != nil {
			return nil, err
		}
	}
	p := &Pins{ps: int(s.ps), size: length}
	for a := uint64(addr); a < end; {
		e := s.entries[a/s.ps]
		if e.page == nil && (pinned || write) {
			e.page = &Page{} // a pin or a write fault populates the page
		}
		o := a % s.ps
		k := min(end-a, s.ps-o)
		p.segs = append(p.segs, seg{page: e.page, off: int(o), n: int(k)})
		a += k
	}
	return p, nil
}

// Len returns the length of the range.
func (p *Pins) Len() int { return p.size }

// Bytes returns the contents of the range the pages hold.
func (p *Pins) Bytes() []byte {
	b := make([]byte, 0, p.size)
	for _, sg := range p.segs {
		n := len(b)
		b = b[:n+sg.n]
		sg.page.read(b[n:], sg.off)
	}
	return b
}

// WriteAt writes b at offset off of the range, through the pins.
func (p *Pins) WriteAt(b []byte, off int) {
	for _, sg := range p.segs {
		if len(b) == 0 {
			return
		}
		if off >= sg.n {
			off -= sg.n
			continue
		}
		k := min(len(b), sg.n-off)
		sg.page.write(b[:k], sg.off+off, p.ps)
		b = b[k:]
		off = 0
	}
}

// Populated returns the addresses of the mapped pages that were written or
// pinned (the rest read zero), in order.
func (s *Space) Populated() []cow.Addr {
	var out []cow.Addr
	for p, e := range s.entries {
		if e.page != nil {
			out = append(out, cow.Addr(p*s.ps))
		}
	}
	slices.Sort(out)
	return out
}
