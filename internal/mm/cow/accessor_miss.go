package cow

import (
	"errors"
	"sync/atomic"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/seqlock"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// The 8-byte operations' miss path, out of line from their fast path
// (accessor_word.go): check the call, refill the TLB entry and try once
// more without a lock, then do the operation under the map lock, faulting
// (wordSlow).

// word checks an 8-byte operation's address.
func (a *Accessor) word(addr Addr) error {
	switch {
	case !a.usable():
		return a.unusable()
	case addr&7 != 0:
		return invalid("address %#x of an 8-byte operation is not 8-byte aligned", uint64(addr))
	case addr >= vaLimit:
		return faultErr(addr)
	}
	return nil
}

func (a *Accessor) loadMiss(addr Addr) (uint64, error) {
	if err := a.word(addr); err != nil {
		return 0, err
	}
	if v, ok := a.loadRefill(addr); ok {
		return v, nil
	}
	var v uint64
	err := a.s.wordSlow(addr, false, func(p *uint64) { v = atomic.LoadUint64(p) })
	return v, err
}

// loadRefill is LoadUint64's seqlock read with the TLB entry validated (and
// refilled) first, in a read section; ok is false if the slow path must
// do it.
func (a *Accessor) loadRefill(addr Addr) (v uint64, ok bool) {
	a.sec.rd.enter()
	if !a.s.closed.Load() {
		v, ok = a.loadTranslated(addr)
	}
	a.sec.rd.exit()
	return v, ok
}

// loadTranslated is loadRefill's part inside the section: two tries, for a
// translation that moved under the first.
func (a *Accessor) loadTranslated(addr Addr) (uint64, bool) {
	for range 2 {
		t := a.s.tlbEntry(a.tlb[:], addr)
		if t == nil {
			return 0, false
		}
		e := t.pteAt(a.pageIndex(addr))
		switch {
		case !e.Accessible():
			return 0, false // none, or PROT_NONE: the fault says which
		case e.Zero():
			return 0, true // the zero page: nothing to validate
		}
		testhook.Run(testhook.LocklessAfterGrab)
		if debugRefReads {
			return 0, false // the locked path holds a reference: see debug_on.go
		}
		v := seqlock.ReadWord(a.wordPtr(e, addr))
		if t.genp.Load() == t.gen {
			return v, true
		}
	}
	return 0, false
}

// writableRefill is writableHit with the TLB entry validated (and refilled)
// first.
func (a *Accessor) writableRefill(addr Addr) unsafe.Pointer {
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
	e := t.pteAt(a.pageIndex(addr))
	// The generation again after the entry: the leaf may have left the
	// slot since the translation (the parent took its own copy of a leaf
	// it shared with a child), and the entry read be the child's.
	if e.Accessible() && e.Write() && !e.Zero() && (t.leaf == nil || !t.leaf.Shared()) && t.genNow() == t.gen {
		testhook.Run(testhook.LocklessAfterRecheck)
		return a.wordPtr(e, addr)
	}
	a.sec.wr.exit()
	return nil
}

func (a *Accessor) storeMiss(addr Addr, v uint64) error {
	if err := a.word(addr); err != nil {
		return err
	}
	if p := a.writableRefill(addr); p != nil {
		atomic.StoreUint64((*uint64)(p), v)
		a.sec.wr.exit()
		return nil
	}
	return a.s.wordSlow(addr, true, func(p *uint64) { atomic.StoreUint64(p, v) })
}

func (a *Accessor) addMiss(addr Addr, delta uint64) (uint64, error) {
	if err := a.word(addr); err != nil {
		return 0, err
	}
	if p := a.writableRefill(addr); p != nil {
		v := atomic.AddUint64((*uint64)(p), delta)
		a.sec.wr.exit()
		return v, nil
	}
	var v uint64
	err := a.s.wordSlow(addr, true, func(p *uint64) { v = atomic.AddUint64(p, delta) })
	return v, err
}

func (a *Accessor) casMiss(addr Addr, old, new uint64) (bool, error) {
	if err := a.word(addr); err != nil {
		return false, err
	}
	if p := a.writableRefill(addr); p != nil {
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
