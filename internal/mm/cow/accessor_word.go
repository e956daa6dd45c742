package cow

import (
	"sync/atomic"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/seqlock"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// The 8-byte operations' fast path: a hit in the direct-mapped TLB, then
// loads through the pointers the translation caches (the entry, the
// generation word) and the arena's base, with no call that is not inlined,
// no defer and no allocation. Anything else (a miss, an entry that does
// not allow the access, a generation that moved, a misaligned address, a
// closed Accessor, whose TLB is empty) goes out of line to the miss path
// (accessor_miss.go), which refills, retries once and then faults.
//
// A load is a seqlock read (tlb.go): in a read section (which Close waits
// for), load the entry, then the word, then the generation; the word is
// good if the generation is still the one the translation was filled
// with, which was loaded before the entry. Each of these loads is ordered
// before the next: on arm64 by load-acquires (seqlock.ReadWord; LDAR),
// on x86-64 by the hardware.
//
// A store, add or CAS runs in a write section (which a zap waits for before
// it frees a page, and a quiesce before Fork write-protects): with wpSeq
// even, load the entry, then the generation again, which must not have
// moved (the leaf may have left the slot since the translation, and its
// entry be another space's: model/writerecheck_test.go), then do the
// atomic operation on the word.

// tlbSlot returns the TLB entry addr's slot would be cached in, and the key
// it would have.
// Inside its View's fn the key is one no entry holds, so that every fast
// path misses and the miss reports the misuse.
func (a *Accessor) tlbSlot(addr Addr) (*xlate, uint64) {
	slot := uint64(addr) >> (a.leafShift & 63) // & 63: no check of the shift's size
	key := slot + 1
	if a.inView {
		key = noKey
	}
	return &a.tlb[slot&(tlbEntries-1)], key
}

// noKey is a TLB key no translation has: slots are below 1<<(64-leafShift).
const noKey = ^uint64(0)

// wordPtr returns the address of the word at addr in the page e maps.
func (a *Accessor) wordPtr(e pte.PTE, addr Addr) unsafe.Pointer {
	return unsafe.Add(a.base, uint64(e.PFN())<<(a.pageShift&63)|uint64(addr)&a.pageMask)
}

// pageIndex returns addr's page's index in its slot.
func (a *Accessor) pageIndex(addr Addr) uint64 {
	return uint64(addr) >> (a.pageShift & 63) & a.idxMask
}

// LoadUint64 loads the 8 bytes at addr atomically, in native byte order.
func (a *Accessor) LoadUint64(addr Addr) (uint64, error) {
	t, key := a.tlbSlot(addr)
	if !debugRefReads && t.slot == key && addr&7 == 0 {
		a.sec.rd.enter()
		if !a.s.closed.Load() {
			e := t.pteAt(a.pageIndex(addr))
			if e&(pte.Present|pte.ProtNone|pte.Zero) == pte.Present {
				testhook.Run(testhook.LocklessAfterGrab)
				v := seqlock.ReadWord(a.wordPtr(e, addr))
				if t.genp.Load() == t.gen {
					a.sec.rd.exit()
					return v, nil
				}
			}
		}
		a.sec.rd.exit()
	}
	return a.loadMiss(addr)
}

// writableHit returns the address of the word at addr if the TLB holds its
// translation and the entry allows a write now, inside a write section that
// the caller exits once it has written; nil, outside any section, if not.
func (a *Accessor) writableHit(addr Addr) unsafe.Pointer {
	t, key := a.tlbSlot(addr)
	if t.slot != key || addr&7 != 0 {
		return nil
	}
	s := a.s
	a.sec.wr.enter()
	if !s.closed.Load() && s.wpSeq.Load()&1 == 0 {
		testhook.Run(testhook.LocklessBeforeEntry)
		e := t.pteAt(a.pageIndex(addr))
		// A shared leaf is read-only whatever its entries say; the
		// generation again after the entry: see the top of this file.
		if e&(pte.Present|pte.Write|pte.ProtNone|pte.Zero) == pte.Present|pte.Write &&
			(t.leaf == nil || !t.leaf.Shared()) && t.genp.Load() == t.gen {
			testhook.Run(testhook.LocklessAfterRecheck)
			return a.wordPtr(e, addr)
		}
	}
	a.sec.wr.exit()
	return nil
}

// StoreUint64 stores v at addr atomically (faulting as a write would).
func (a *Accessor) StoreUint64(addr Addr, v uint64) error {
	if p := a.writableHit(addr); p != nil {
		atomic.StoreUint64((*uint64)(p), v)
		a.sec.wr.exit()
		return nil
	}
	return a.storeMiss(addr, v)
}

// AddUint64 adds delta to the 8 bytes at addr atomically and returns the
// new value.
func (a *Accessor) AddUint64(addr Addr, delta uint64) (uint64, error) {
	if p := a.writableHit(addr); p != nil {
		v := atomic.AddUint64((*uint64)(p), delta)
		a.sec.wr.exit()
		return v, nil
	}
	return a.addMiss(addr, delta)
}

// CompareAndSwapUint64 stores new at addr if it holds old, atomically, and
// reports whether it did. In a read-only region a CAS whose old value
// matches is ErrProtection (it would write); one that does not match
// returns false.
func (a *Accessor) CompareAndSwapUint64(addr Addr, old, new uint64) (bool, error) {
	if p := a.writableHit(addr); p != nil {
		ok := atomic.CompareAndSwapUint64((*uint64)(p), old, new)
		a.sec.wr.exit()
		return ok, nil
	}
	return a.casMiss(addr, old, new)
}
