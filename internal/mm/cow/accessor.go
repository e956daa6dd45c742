package cow

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/seqlock"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// Accessor is one goroutine's handle on a space: ReadAt and WriteAt, and
// atomic 8-byte loads and stores, through a software TLB of its own (see
// tlb.go). Not for concurrent use (hand it over with a lock or a channel);
// every method is safe against Fork, Unmap, Protect, Remap, Advise and
// copy-on-write in other goroutines.
type Accessor struct {
	sec    accSections // its lockless sections: see accsections.go
	s      *Space
	closed bool
	// inView is set while its View's fn runs, in a section of the
	// Accessor's: a method called from fn would end that section early
	// (the sequence is not nested) or fault under the map lock that a
	// waiting Fork holds, so it reports ErrInvalid instead.
	inView bool
	tlb    [tlbEntries]xlate
}

// unusable returns why a method cannot run: closed, or called from its
// View's fn.
func (a *Accessor) unusable() error {
	if a.closed {
		return closedErr()
	}
	return invalid("an Accessor's methods cannot be called from its View's fn")
}

// NewAccessor returns a new Accessor on s. On a closed space it returns an
// Accessor whose methods report ErrClosed.
func (s *Space) NewAccessor() *Accessor {
	a := &Accessor{s: s}
	if s.closed.Load() {
		a.closed = true
		return a
	}
	s.accs.add(a)
	return a
}

// Close releases the Accessor; its methods report ErrClosed afterwards. A
// second Close returns nil.
func (a *Accessor) Close() error {
	if a.inView {
		return a.unusable()
	}
	if !a.closed {
		a.closed = true
		a.s.accs.remove(a)
	}
	return nil
}

// ReadAt reads len(p) bytes at address off, as Space.ReadAt does, by
// seqlock reads through the TLB: no reference and no shared write.
func (a *Accessor) ReadAt(p []byte, off int64) (int, error) {
	if a.closed || a.inView {
		return 0, a.unusable()
	}
	return a.s.access(a.tlb[:], p, off, false, a)
}

// WriteAt writes p at address off, as Space.WriteAt does.
func (a *Accessor) WriteAt(p []byte, off int64) (int, error) {
	if a.closed || a.inView {
		return 0, a.unusable()
	}
	return a.s.access(a.tlb[:], p, off, true, a)
}

// word checks an 8-byte operation's address.
func (a *Accessor) word(addr Addr) error {
	switch {
	case a.closed || a.inView:
		return a.unusable()
	case addr&7 != 0:
		return invalid("address %#x of an 8-byte operation is not 8-byte aligned", uint64(addr))
	case addr >= vaLimit:
		return faultErr(addr)
	}
	return nil
}

// LoadUint64 loads the 8 bytes at addr atomically, in native byte order.
func (a *Accessor) LoadUint64(addr Addr) (uint64, error) {
	if err := a.word(addr); err != nil {
		return 0, err
	}
	if v, ok := a.loadFast(addr); ok {
		return v, nil
	}
	var v uint64
	err := a.s.wordSlow(addr, false, func(p *uint64) { v = atomic.LoadUint64(p) })
	return v, err
}

// loadFast is LoadUint64's seqlock read through the TLB, in a section that
// Close waits for; ok is false if the slow path must do it.
func (a *Accessor) loadFast(addr Addr) (uint64, bool) {
	s := a.s
	a.sec.rd.enter()
	defer a.sec.rd.exit()
	if s.closed.Load() {
		return 0, false
	}
	for range 4 {
		t := s.tlbEntry(a.tlb[:], addr)
		if t == nil {
			return 0, false
		}
		g := t.gen
		e, _ := s.entry(t, addr, 1, false)
		if !e.Present() || !e.Accessible() {
			return 0, false
		}
		if e.Zero() {
			return 0, true
		}
		testhook.Run(testhook.LocklessAfterGrab)
		if debugRefReads {
			return 0, false // the locked path holds a reference: see debug_on.go
		}
		v := seqlock.Load64(s.wordAt(e, addr))
		seqlock.Fence()
		if t.genNow() == g {
			return v, true
		}
	}
	return 0, false
}

// StoreUint64 stores v at addr atomically (faulting as a write would).
func (a *Accessor) StoreUint64(addr Addr, v uint64) error {
	if err := a.word(addr); err != nil {
		return err
	}
	if p := a.writable(addr); p != nil {
		atomic.StoreUint64((*uint64)(p), v)
		a.sec.wr.exit()
		return nil
	}
	return a.s.wordSlow(addr, true, func(p *uint64) { atomic.StoreUint64(p, v) })
}

// AddUint64 adds delta to the 8 bytes at addr atomically and returns the
// new value.
func (a *Accessor) AddUint64(addr Addr, delta uint64) (uint64, error) {
	if err := a.word(addr); err != nil {
		return 0, err
	}
	if p := a.writable(addr); p != nil {
		v := atomic.AddUint64((*uint64)(p), delta)
		a.sec.wr.exit()
		return v, nil
	}
	var v uint64
	err := a.s.wordSlow(addr, true, func(p *uint64) { v = atomic.AddUint64(p, delta) })
	return v, err
}

// CompareAndSwapUint64 stores new at addr if it holds old, atomically, and
// reports whether it did. In a read-only region a CAS whose old value
// matches is ErrProtection (it would write); one that does not match
// returns false.
func (a *Accessor) CompareAndSwapUint64(addr Addr, old, new uint64) (bool, error) {
	if err := a.word(addr); err != nil {
		return false, err
	}
	if p := a.writable(addr); p != nil {
		ok := atomic.CompareAndSwapUint64((*uint64)(p), old, new)
		a.sec.wr.exit()
		return ok, nil
	}
	var swapped bool
	err := a.s.wordSlow(addr, true, func(p *uint64) { swapped = atomic.CompareAndSwapUint64(p, old, new) })
	if errors.Is(err, ErrProtection) {
		if v, rerr := a.LoadUint64(addr); rerr == nil && v != old {
			return false, nil // nothing would have been written
		}
	}
	return swapped, err
}

// writable returns the address of the word at addr if the TLB maps it
// writable now, inside a section of the Accessor's that the caller exits
// once it has written (nothing frees or write-protects the page
// meanwhile); nil, outside any section, if the slow path must fault.
func (a *Accessor) writable(addr Addr) unsafe.Pointer {
	s := a.s
	a.sec.wr.enter()
	if s.closed.Load() || s.wpSeq.Load()&1 != 0 {
		a.sec.wr.exit()
		return nil
	}
	t := s.tlbEntry(a.tlb[:], addr)
	if t == nil {
		a.sec.wr.exit()
		return nil
	}
	testhook.Run(testhook.LocklessBeforeEntry)
	// The generation again after the entry: the leaf may have left the
	// slot since the translation (the parent took its own copy of a leaf
	// it shared with a child), and the entry read be the child's.
	if e, _ := s.entry(t, addr, 1, true); e.Present() && e.Write() && t.genNow() == t.gen {
		testhook.Run(testhook.LocklessAfterRecheck)
		return s.wordAt(e, addr)
	}
	a.sec.wr.exit()
	return nil
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
	err := s.wordSlowOnce(addr, write, op)
	if errors.Is(err, folio.ErrNoMemory) && s.as.splitDeferred() > 0 {
		err = s.wordSlowOnce(addr, write, op)
	}
	return err
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
