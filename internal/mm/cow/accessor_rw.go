package cow

import (
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/seqlock"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// ReadAt and WriteAt of a range within one page, when the TLB holds its
// slot's translation: the 8-byte operations' fast path (accessor_word.go)
// with a copy for the load or the store. Everything else takes access's
// general path (rw.go), which also begins with a TLB lookup but then loops
// over runs of pages.

// inPage returns the TLB entry of addr's slot if it holds the slot's
// translation and the n bytes at addr lie within one page, else nil. (A
// negative or out-of-range address has no translation.)
func (a *Accessor) inPage(addr Addr, n int) *xlate {
	t, key := a.tlbSlot(addr)
	if t.slot != key || addr >= vaLimit || uint64(addr)&a.pageMask+uint64(n) > a.pageMask+1 {
		return nil
	}
	return t
}

// ReadAt reads len(p) bytes at address off, as Space.ReadAt does, by
// seqlock reads through the TLB: no reference and no shared write.
func (a *Accessor) ReadAt(p []byte, off int64) (int, error) {
	defer a.sec.rd.endIfOpen() // a copy into p that faulted: see endIfOpen
	t := a.inPage(Addr(off), len(p))
	if debugRefReads || t == nil {
		return a.accessMiss(p, off, false)
	}
	ok := false
	a.sec.rd.enter()
	if !a.s.closed.Load() {
		e := t.pteAt(a.pageIndex(Addr(off)))
		if e&(pte.Present|pte.ProtNone|pte.Zero) == pte.Present {
			testhook.Run(testhook.LocklessAfterGrab)
			seqlock.Copy(p, unsafe.Slice((*byte)(a.wordPtr(e, Addr(off))), len(p)))
			seqlock.Fence()
			if ok = t.genp.Load() == t.gen; !ok {
				clear(p) // another space's bytes, maybe: leave none behind
			}
		}
	}
	a.sec.rd.exit()
	if !ok {
		return a.accessMiss(p, off, false)
	}
	return len(p), nil
}

// WriteAt writes p at address off, as Space.WriteAt does. The fast path's
// checks are writableHit's.
func (a *Accessor) WriteAt(p []byte, off int64) (int, error) {
	defer a.sec.wr.endIfOpen()
	t := a.inPage(Addr(off), len(p))
	if t == nil {
		return a.accessMiss(p, off, true)
	}
	s := a.s
	ok := false
	a.sec.wr.enter()
	if !s.closed.Load() && s.wpSeq.Load()&1 == 0 {
		testhook.Run(testhook.LocklessBeforeEntry)
		e := t.pteAt(a.pageIndex(Addr(off)))
		if e&(pte.Present|pte.Write|pte.ProtNone|pte.Zero) == pte.Present|pte.Write &&
			(t.leaf == nil || !t.leaf.Shared()) && t.genp.Load() == t.gen {
			testhook.Run(testhook.LocklessAfterGrab)
			testhook.Run(testhook.LocklessAfterRecheck)
			copy(unsafe.Slice((*byte)(a.wordPtr(e, Addr(off))), len(p)), p)
			ok = true
		}
	}
	a.sec.wr.exit()
	if !ok {
		return a.accessMiss(p, off, true)
	}
	return len(p), nil
}
