package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// anyFlags are the entry bits a zap or a move does not care about when it
// batches the entries of one folio.
const anyFlags = pte.Write | pte.Dirty | pte.Young | pte.ProtNone | pte.SoftDirty

// slots iterates over the directory slots that exist and overlap a range,
// with the part of each slot's range that falls inside:
//
//	for it := s.slots(start, end); it.next(); {
//		use(it.d, it.di, it.lo, it.hi)
//	}
//
// An iterator rather than a callback, so that checklocks sees the locks the
// loop body runs under.
type slots struct {
	t        *pte.Table
	end      uint64
	d        *pte.Dir
	di       int
	lo, hi   uint64
	nextAddr uint64
}

func (s *Space) slots(start, end Addr) slots {
	return slots{t: s.table, end: uint64(end), nextAddr: uint64(start)}
}

func (it *slots) next() bool {
	if it.nextAddr >= it.end {
		return false
	}
	if it.d == nil || it.nextAddr >= it.d.Base()+it.t.DirSize() {
		if it.d = it.t.NextDir(it.nextAddr, it.end); it.d == nil {
			return false
		}
		it.nextAddr = max(it.nextAddr, it.d.Base())
	}
	it.lo = it.nextAddr
	it.di = it.d.Index(it.lo)
	it.hi = min(it.d.Addr(it.di)+it.t.LeafSize(), it.end)
	it.nextAddr = it.hi
	return true
}

// wholeSlot reports whether [lo, hi) is all of slot di.
func (s *Space) wholeSlot(d *pte.Dir, di int, lo, hi uint64) bool {
	return lo == d.Addr(di) && hi == d.Addr(di)+s.table.LeafSize()
}

// zapRange unmaps [start, end) (unmap_page_range): every entry is cleared,
// folios lose the mappings and references, a huge entry only partly in the
// range is split first, leaves left empty are freed, and large folios left
// partly mapped are queued for deferred split.
//
// Preconditions: mapLock is held (for reading suffices: the PTLs serialise
// with faults).
// +checklocksread:s.mapLock
func (s *Space) zapRange(start, end Addr) {
	for it := s.slots(start, end); it.next(); {
		s.zapSlot(it.d, it.di, it.lo, it.hi)
	}
}

// zapSlot unmaps [lo, hi) of slot di.
//
// +checklocksread:s.mapLock
// +checklocksignore: privateLeaf returns the leaf locked.
func (s *Space) zapSlot(d *pte.Dir, di int, lo, hi uint64) {
	if d.Huge(di).Present() {
		d.Lock()
		if h := d.Huge(di); h.Present() {
			if s.wholeSlot(d, di, lo, hi) {
				d.ClearHugeLocked(di)
				s.synchronizeWriters() // a lockless writer may be in the folio: see tlb.go
				s.deferIfPartial(h.PFN(), s.a.FolioSubEntireMapcount(h.PFN(), s.mm), Addr(d.Addr(di)))
				s.a.FolioPut(h.PFN(), 1)
				s.cnt.resident.Add(-int64(s.geo.TableEntries))
				d.Unlock()
				return
			}
			s.splitHugeLocked(d, di)
		}
		d.Unlock()
	}
	l := s.privateLeaf(d, di, lo, hi, true)
	if l == nil {
		return
	}
	s.zapLeafLocked(l, l.Index(lo), l.Index(hi-1)+1)
	empty := l.Nr() == 0
	l.Unlock()
	if empty {
		d.Lock()
		d.FreeLeafLocked(di)
		d.Unlock()
	}
}

// privateLeaf returns slot di's leaf locked and private to this space, ready
// for its entries in [lo, hi) to change: a shared leaf is copied first, or,
// for a zap of the whole slot, dropped (then it returns nil). It returns nil
// if the slot has no leaf.
//
// Preconditions: mapLock is held; the caller unlocks the leaf.
// +checklocksread:s.mapLock
// +checklocksignore: the leaf it returns is locked (checklocks cannot say so).
func (s *Space) privateLeaf(d *pte.Dir, di int, lo, hi uint64, zap bool) *pte.Leaf {
	for {
		l := d.Leaf(di)
		if l == nil {
			return nil
		}
		if l.Shared() {
			if zap && s.wholeSlot(d, di, lo, hi) && s.dropSharedLeaf(d, di, l) {
				return nil
			}
			s.unshareLeaf(d, di, l)
			continue
		}
		if relock(d, di, l) && !l.Shared() {
			return l
		}
		l.Unlock()
	}
}

// zapLeafLocked clears entries [lo, hi) of l, one folio batch at a time
// (zap_present_ptes): one Clear, one mapcount and one refcount update per
// batch. The references go only once the lockless writers that may still
// be writing the pages through a translation read before the Clear are
// done (Synchronize: the kernel flushes the TLB before it frees, in
// tlb_finish_mmu).
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) zapLeafLocked(l *pte.Leaf, lo, hi int) {
	type batch struct {
		i         int
		pfn, head folio.PFN
		n         int
	}
	var small [8]batch
	zapped := small[:0]
	for i := lo; i < hi; {
		e := l.GetRaw(i)
		switch {
		case e.None():
			i++
			continue
		case e.Zero():
			l.Clear(i, 1)
			i++
			continue
		}
		head, n := s.batchAt(l, i, hi, e, anyFlags)
		l.Clear(i, n)
		zapped = append(zapped, batch{i, e.PFN(), head, n})
		i += n
	}
	if len(zapped) == 0 {
		return
	}
	s.synchronizeWriters()
	for _, b := range zapped {
		s.removeMapping(l, b.i, b.pfn, b.head, b.n)
		s.a.FolioPut(b.head, b.n)
		s.cnt.resident.Add(-int64(b.n))
	}
}

// batchAt returns the folio of entry i (which maps e) and how many entries
// from i on, before hi, map consecutive pages of it with flags equal but for
// ignore.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) batchAt(l *pte.Leaf, i, hi int, e pte.PTE, ignore pte.PTE) (folio.PFN, int) {
	head, order := s.pageFolio(e.PFN())
	left := int(head + folio.PFN(1)<<order - e.PFN()) // pages of the folio from e's on
	n, _ := l.Batch(i, min(hi-i, left), ignore)
	return head, n
}

// deferSplit queues a large folio left partly mapped for the deferred split
// (deferred_split_folio); addr is where this space would map its first page.
func (s *Space) deferSplit(head folio.PFN, order int, addr Addr) {
	if s.a.FolioTestSetDeferred(head) {
		return
	}
	s.as.mu.Lock()
	s.as.deferred = append(s.as.deferred, deferredFolio{head: head, mm: s.mm, addr: addr})
	s.as.mu.Unlock()
	s.cnt.splitDeferred[order].Add(1)
}

// changeProtRange applies prot to the entries of [start, end)
// (change_protection). Read-only and PROT_NONE are applied to everything;
// a writable protection makes AnonExclusive pages writable at once
// (can_change_pte_writable) and leaves shared pages and the zero page
// read-only.
//
// Preconditions: mapLock is held for writing.
// +checklocks:s.mapLock
func (s *Space) changeProtRange(start, end Addr, prot Prot) {
	set, clear := pte.PTE(0), pte.Write|pte.ProtNone
	if !prot.readable() {
		set, clear = pte.ProtNone, pte.Write
	}
	for it := s.slots(start, end); it.next(); {
		s.changeProtSlot(it.d, it.di, it.lo, it.hi, prot, set, clear)
	}
}

// changeProtSlot applies the change to [lo, hi) of slot di.
//
// +checklocks:s.mapLock
// +checklocksignore: privateLeaf returns the leaf locked.
func (s *Space) changeProtSlot(d *pte.Dir, di int, lo, hi uint64, prot Prot, set, clear pte.PTE) {
	if d.Huge(di).Present() {
		d.Lock()
		if h := d.Huge(di); h.Present() {
			if s.wholeSlot(d, di, lo, hi) {
				d.ChangeProtHugeLocked(di, set, clear)
				if prot.writable() && h.SoftDirty() && s.a.PagesAnonExclusive(h.PFN(), s.geo.TableEntries) {
					d.ChangeProtHugeLocked(di, pte.Write, 0)
				}
				d.Unlock()
				return
			}
			s.splitHugeLocked(d, di)
		}
		d.Unlock()
	}
	l := s.privateLeaf(d, di, lo, hi, false)
	if l == nil {
		return
	}
	i, j := l.Index(lo), l.Index(hi-1)+1
	l.ChangeProt(i, j-i, set, clear)
	if prot.writable() {
		s.mkWritableLocked(l, i, j)
	}
	l.Unlock()
}

// mkWritableLocked makes the AnonExclusive pages among entries [lo, hi)
// that are marked written writable: a whole exclusive batch at once (its
// blocks stay folded), a mixed batch page by page; then it refolds the
// blocks that became uniform. A page not marked written stays read-only, as
// can_change_pte_writable refuses under soft-dirty tracking: its next write
// faults, reuses it and marks it.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) mkWritableLocked(l *pte.Leaf, lo, hi int) {
	for i := lo; i < hi; {
		e := l.GetRaw(i)
		if e.None() || e.Zero() || e.Write() || !e.SoftDirty() {
			i++
			continue
		}
		_, n := s.batchAt(l, i, hi, e, pte.Dirty|pte.Young)
		if s.a.PagesAnonExclusive(e.PFN(), n) {
			l.ChangeProt(i, n, pte.Write, 0)
		} else {
			for k := range n {
				if s.a.PageAnonExclusive(e.PFN() + folio.PFN(k)) {
					l.SetAccessFlags(i+k, pte.Write)
				}
			}
		}
		i += n
	}
	cont := s.geo.ContPTEs
	for b := lo &^ (cont - 1); b < hi; b += cont {
		l.TryFold(b)
	}
}

// movePTEs moves the entries of [old, old+length) to [new, new+length)
// (move_page_tables): whole huge entries move as they are when the target
// is PMD-aligned, others are split first; PTEs move one folio batch at a
// time and fold wherever the new address and the PFN line up. Mappings and
// references do not change: the pages stay in this space.
//
// Preconditions: mapLock is held for writing (so two PTLs may be held: no
// one else takes any); the target range maps nothing.
//
// +checklocksignore: it holds one or two directory locks and one or two
// PTLs, depending on whether source and target share them.
func (s *Space) movePTEs(old, new Addr, length uint64) {
	leafSize := s.table.LeafSize()
	for off := uint64(0); off < length; {
		src, dst := uint64(old)+off, uint64(new)+off
		sd := s.table.Dir(src)
		if sd == nil {
			off += min(length-off, sd0End(src, s.table.DirSize())-src)
			continue
		}
		sdi := sd.Index(src)
		chunk := min(sd.Addr(sdi)+leafSize-src, length-off, (dst|(leafSize-1))+1-dst)
		if sd.Huge(sdi).Present() {
			sd.Lock()
			h := sd.Huge(sdi)
			if src == sd.Addr(sdi) && length-off >= leafSize && dst%leafSize == 0 {
				dd := s.table.DirAlloc(dst)
				sd.ClearHugeLocked(sdi)
				if dd != sd {
					dd.Lock()
				}
				// Moved entries are marked written (move_soft_dirty_pte):
				// a snapshot's delta carries them to their new place.
				if !dd.SetHugeLocked(dd.Index(dst), h.MkSoftDirty()) {
					panic("cow: Remap target slot not empty after it was unmapped")
				}
				if dd != sd {
					dd.Unlock()
				}
				sd.Unlock()
				off += leafSize
				continue
			}
			s.splitHugeLocked(sd, sdi)
			sd.Unlock()
		}
		if sl := sd.Leaf(sdi); sl != nil {
			if sl.Shared() {
				s.unshareLeaf(sd, sdi, sl) // moving entries changes them
				continue
			}
			dd := s.table.DirAlloc(dst)
			dl := dd.LeafAlloc(dd.Index(dst))
			s.moveLeafRange(sl, sl.Index(src), dl, dl.Index(dst), int(chunk/s.ps))
			sl.Lock()
			empty := sl.Nr() == 0
			sl.Unlock()
			if empty {
				sd.Lock()
				sd.FreeLeafLocked(sdi)
				sd.Unlock()
			}
		}
		off += chunk
	}
}

// synchronizeWriters waits for the lockless writes that began before the
// call, all in Accessor sections (WriteAt's too: accpool.go); a zap calls
// it between clearing the entries and dropping their references.
func (s *Space) synchronizeWriters() { s.accs.wait(false) }

// sd0End returns the end of the directory range that contains addr.
func sd0End(addr, dirSize uint64) uint64 { return (addr | (dirSize - 1)) + 1 }

// moveLeafRange moves n entries from entry si of sl to entry di of dl.
//
// +checklocksignore: sl and dl may be the same leaf, locked once.
func (s *Space) moveLeafRange(sl *pte.Leaf, si int, dl *pte.Leaf, di, n int) {
	testhook.Run(testhook.RemapMoving)
	sl.Lock()
	if dl != sl {
		dl.Lock()
	}
	for k := 0; k < n; {
		e := sl.GetRaw(si + k)
		switch {
		case e.None():
			k++
		case e.Zero():
			sl.Clear(si+k, 1)
			dl.Set(di+k, e)
			k++
		default:
			_, m := s.batchAt(sl, si+k, si+n, e, pte.Dirty|pte.Young)
			g := sl.Clear(si+k, m)
			dl.SetPTEs(di+k, g.MkSoftDirty(), m) // move_soft_dirty_pte
			k += m
		}
	}
	// The pinned pages may have moved with the entries. The hint is read
	// after the entries were cleared, not before: a GUP-fast pin (which the
	// space is not quiesced against) sets it before it grabs and rechecks
	// its entry, so either its recheck found the entry cleared and it backs
	// out, or its hint is seen here (Dekker, as with Fork and wpSeq).
	if sl.MaybePinned() {
		dl.SetMaybePinned()
	}
	if sl.MaybeHeld() {
		dl.SetMaybeHeld()
	}
	if dl != sl {
		dl.Unlock()
	}
	sl.Unlock()
}
