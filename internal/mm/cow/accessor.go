package cow

import (
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// Accessor is one goroutine's handle on a space: ReadAt and WriteAt, and
// atomic 8-byte loads and stores, through a software TLB of its own (see
// tlb.go). Not for concurrent use (hand it over with a lock or a channel);
// every method is safe against Fork, Unmap, Protect, Remap, Advise and
// copy-on-write in other goroutines.
//
// The 8-byte operations have a fast path for a TLB hit (accessor_word.go)
// that loads the entry and the word through pointers cached in the
// translation; everything else goes out of line (accessor_miss.go).
type Accessor struct {
	sec accSections // its lockless sections: see accsections.go

	// Set by NewAccessor; the fast path's constants.
	s         *Space
	base      unsafe.Pointer // the arena's memory: page p is at base + p<<pageShift
	pageShift uint
	leafShift uint
	pageMask  uint64 // page size - 1
	idxMask   uint64 // entries per leaf - 1

	closed bool // by Close; the TLB is empty from then on, so every call misses
	// inView is set while its View's fn runs, in a section of the
	// Accessor's: a method called from fn would end that section early
	// (the sequence is not nested) or fault under the map lock that a
	// waiting Fork holds, so it reports ErrInvalid instead. Every fast
	// path misses meanwhile (tlbSlot), and the misses say why.
	inView bool
	tlb    [tlbEntries]xlate
}

// NewAccessor returns a new Accessor on s. On a closed space it returns an
// Accessor whose methods report ErrClosed.
func (s *Space) NewAccessor() *Accessor {
	a := s.newAccessor()
	if s.closed.Load() {
		a.closed = true
		return a
	}
	s.accs.add(a)
	return a
}

// newAccessor returns an Accessor on s, not yet registered.
func (s *Space) newAccessor() *Accessor {
	return &Accessor{
		s:         s,
		base:      unsafe.Pointer(unsafe.SliceData(s.a.PageBytes(0, 1))),
		pageShift: s.geo.PageShift,
		leafShift: s.leafShift,
		pageMask:  s.ps - 1,
		idxMask:   uint64(s.geo.TableEntries - 1),
	}
}

// unusable returns why a method cannot run: closed, called from its
// View's fn, or not made by NewAccessor (the zero value).
func (a *Accessor) unusable() error {
	switch {
	case a.s == nil:
		return invalid("an Accessor not made by NewAccessor")
	case a.closed:
		return closedErr()
	}
	return invalid("an Accessor's methods cannot be called from its View's fn")
}

// usable reports whether a method may run (see unusable).
func (a *Accessor) usable() bool { return a.s != nil && !a.closed && !a.inView }

// Close releases the Accessor; its methods report ErrClosed afterwards. A
// second Close returns nil.
func (a *Accessor) Close() error {
	if a.inView || a.s == nil {
		return a.unusable()
	}
	if !a.closed {
		a.closed = true
		a.tlb = [tlbEntries]xlate{} // no hit from here on: the misses report ErrClosed
		a.s.accs.remove(a)
	}
	return nil
}

// accessMiss is ReadAt and WriteAt past their fast path (accessor_rw.go).
func (a *Accessor) accessMiss(p []byte, off int64, write bool) (int, error) {
	if !a.usable() {
		return 0, a.unusable()
	}
	return a.s.access(a.tlb[:], p, off, write, a)
}

// wordAt returns the address of the word at addr in the page e maps.
func (s *Space) wordAt(e pte.PTE, addr Addr) unsafe.Pointer {
	return unsafe.Pointer(&s.a.PageBytes(e.PFN(), 1)[uint64(addr)%s.ps])
}

// wordSlow does op on the word at addr under the map lock, faulting until
// the entry allows the access (a write fault for a write), with a
// reference on its folio meanwhile (follow_page_pte). Out of memory, it
// runs the deferred split and tries once more.
func (s *Space) wordSlow(addr Addr, write bool, op func(p *uint64)) error {
	return s.retryAfterSplit(func() error { return s.wordSlowOnce(addr, write, op) })
}

func (s *Space) wordSlowOnce(addr Addr, write bool, op func(p *uint64)) error {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return closedErr()
	}
	f := fault{addr: addr}
	if write {
		f.flags = faultWrite
	}
	for {
		if err := s.handleFault(&f); err != nil {
			return err
		}
		e, head, ok := s.followPage(addr, write)
		if !ok {
			continue
		}
		if e.Zero() {
			var zero uint64
			op(&zero)
			return nil
		}
		op((*uint64)(s.wordAt(e, addr)))
		s.a.FolioPut(head, 1)
		return nil
	}
}
