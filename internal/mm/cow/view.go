package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// View calls fn with the memory of [addr, addr+n) in place, one physically
// contiguous piece at a time, in address order, and returns the first error
// fn returns (or the space's, as ReadAt or WriteAt would). With write, each
// piece is made writable first (a fault as a write would: allocate, or copy
// a page shared with a Fork) and what fn writes into it is the space's
// write; without, fn must only read it.
//
// A piece is valid only while fn runs. Meanwhile its pages stay mapped as
// they are: fn runs in a writer section, which Fork, Close, Protect,
// WriteProtect and Collapse wait for, and a zap (Unmap, DontNeed, MapFixed,
// Remap) before it frees anything. So each piece lands wholly before or
// after a concurrent Fork, fn must be short, and fn must not call those
// methods on this space (they would wait for fn: the anonfolio_debug
// build panics after 10 s of such a wait, and hands fn a copy that it
// makes inaccessible when fn returns, so that a piece used afterwards
// faults at the culprit). The Accessor's own methods called from fn report
// ErrInvalid: their section would end fn's early, and a fault of theirs
// would wait for a Fork that waits for fn.
func (a *Accessor) View(addr Addr, n int, write bool, fn func(p []byte) error) error {
	if !a.usable() {
		return a.unusable()
	}
	if err := checkAccess(int64(addr), n); err != nil {
		return err
	}
	s := a.s
	for n > 0 {
		k, err := a.viewPiece(addr, n, write, fn)
		if err != nil {
			return err
		}
		if k == 0 { // the page needs a fault first
			if err := s.faultIn(addr, write); err != nil {
				return err
			}
			s.tlbForget(a.tlb[:], addr)
			continue
		}
		addr += Addr(k)
		n -= k
	}
	return nil
}

// viewPiece calls fn with the run of pages at addr, in a writer section, if
// the TLB maps it as the view needs; it returns how many bytes the piece
// had (0: fault first).
func (a *Accessor) viewPiece(addr Addr, n int, write bool, fn func(p []byte) error) (int, error) {
	s := a.s
	a.sec.wr.enter()
	defer a.endPiece()
	if s.closed.Load() || s.wpSeq.Load()&1 != 0 {
		return 0, nil
	}
	t := s.tlbEntry(a.tlb[:], addr)
	if t == nil {
		return 0, nil
	}
	off := uint64(addr) % s.ps
	testhook.Run(testhook.LocklessBeforeEntry)
	e, run := s.entry(t, addr, int((off+uint64(n)+s.ps-1)/s.ps), write)
	if !e.Present() || !e.Accessible() || write && !e.Write() || t.genNow() != t.gen {
		return 0, nil // the generation as in writable: the entry may be another space's
	}
	var mem []byte
	if e.Zero() {
		mem = s.a.ZeroPage()[off:]
	} else {
		mem = s.a.PageBytes(e.PFN(), run)[off:]
	}
	mem = mem[:min(len(mem), n):min(len(mem), n)]
	a.inView = true // until endPiece: fn may not use the Accessor
	if !debugRefReads {
		return len(mem), fn(mem)
	}
	b := folio.BounceBuffer(len(mem)) // the debug build: see View
	copy(b, mem)
	err := fn(b)
	if write {
		copy(mem, b)
	}
	folio.RetireBounce(b)
	return len(mem), err
}

// endPiece ends viewPiece's section, and fn's hold on the Accessor.
func (a *Accessor) endPiece() {
	a.inView = false
	a.sec.wr.exit()
}

// faultIn faults the page at addr for a read or a write under the map
// lock, running the deferred split once if the arena is out of memory.
func (s *Space) faultIn(addr Addr, write bool) error {
	return s.retryAfterSplit(func() error { return s.faultInOnce(addr, write) })
}

func (s *Space) faultInOnce(addr Addr, write bool) error {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return closedErr()
	}
	f := fault{addr: addr}
	if write {
		f.flags = faultWrite
	}
	return s.handleFault(&f)
}
