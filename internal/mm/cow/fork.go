package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// Fork returns a COW snapshot of the space: a full, writable child that
// starts with the same contents (copy_page_range). The map lock is held for
// writing and wpSeq is odd for the duration, so no fault, no slow-path pin
// and no lockless write runs meanwhile. Each folio batch is shared with one
// metadata update: a reference and a mapcount per page, AnonExclusive
// cleared, both sides write-protected (whole contpte blocks and huge entries
// stay as they are). A batch with an exclusive page of a pinned folio is not
// shared: the child gets copies of its exclusive pages now (ForkCopies) and
// the parent keeps them writable, so the pin stays coherent with the parent
// and the child is isolated. Regions advised DontFork are left out,
// WipeOnFork ones come out empty.
func (s *Space) Fork() (*Space, error) {
	child, err := s.fork()
	if errors.Is(err, folio.ErrNoMemory) {
		err = s.noMemory(err, "Fork, copying the pages of a pinned folio for the child")
	}
	if err != nil {
		if child != nil {
			// Only now, with the parent's map lock dropped: a deferred
			// split that owns the child's lock may be waiting for the
			// parent's (it locks owners in mm id order).
			child.Close()
		}
		return nil, err
	}
	s.cnt.forks.Add(1)
	return child, nil
}

// fork does Fork's work under the map lock. On error it returns the child
// half built, or nil. The child is made before the lock is taken: its
// allocations (and the garbage collector's assists they may pay for) would
// otherwise stall this space's writers for tens of microseconds.
func (s *Space) fork() (*Space, error) {
	child, err := newSpace(s.a, s.orders, s.copyUnit)
	if err != nil {
		return nil, err
	}
	err = s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return child, err
	}
	s.quiesceLocked()
	testhook.Run(testhook.ForkBeforeCopy)
	err = s.copyRegionsLocked(child, false)
	s.unquiesce()
	return child, err
}

// copyRegionsLocked gives child the regions and their mappings, and the
// baseline state (baseline.go); with all, every region whatever its advice
// (a snapshot's Fork).
//
// Preconditions: s.mapLock is held for writing; child is not yet visible
// to anyone.
// +checklocks:s.mapLock
func (s *Space) copyRegionsLocked(child *Space, all bool) error {
	child.mapLock.Lock()
	defer child.mapLock.Unlock()
	child.mapHint = s.mapHint
	s.inheritTracking(child)
	for _, r := range s.regions {
		if r.flags&(dontFork|wipeOnFork) != 0 && !all {
			child.noteReset(r.start, r.end) // the child does not have the base's contents there
		}
		if r.flags&dontFork != 0 && !all {
			continue
		}
		r.hint = new(faultHint) // the child's faults are its own
		child.regions = append(child.regions, r)
		if r.flags&wipeOnFork != 0 && !all {
			continue
		}
		if err := s.copyRange(child, r); err != nil {
			return err
		}
	}
	return nil
}

// copyRange copies the mappings of region r into child.
//
// +checklocks:s.mapLock
// +checklocks:child.mapLock
func (s *Space) copyRange(child *Space, r region) error {
	for it := s.slots(r.start, r.end); it.next(); {
		if it.d.Huge(it.di).Present() && s.copyHuge(child, it.d, it.di) {
			continue
		}
		l := it.d.Leaf(it.di)
		if l == nil {
			continue
		}
		// A leaf inside one forkable region is shared, not copied.
		if s.wholeSlot(it.d, it.di, it.lo, it.hi) && s.shareLeaf(child, l) {
			s.cnt.leafShares.Add(1)
			continue
		}
		if err := s.copyLeaf(child, l, l.Index(it.lo), l.Index(it.hi-1)+1, r); err != nil {
			return err
		}
	}
	return nil
}

// copyHuge shares slot di's huge entry with child (copy_huge_pmd) and
// reports true, or splits it in the parent (a pinned folio with exclusive
// pages: the PTE path copies them) and reports false.
//
// +checklocks:s.mapLock
func (s *Space) copyHuge(child *Space, d *pte.Dir, di int) bool {
	d.Lock()
	defer d.Unlock()
	h := d.Huge(di)
	head, n := h.PFN(), s.geo.TableEntries
	if s.a.FolioMaybeDMAPinned(head) && s.a.AnyPageAnonExclusive(head, n) {
		s.splitHugeLocked(d, di)
		return false
	}
	testhook.Run(testhook.ForkAfterPinCheck)
	s.a.FolioGet(head, 1)
	s.a.FolioAddEntireMapcount(head, child.mm)
	s.a.ClearPageAnonExclusive(head, n)
	d.WrProtectHugeLocked(di)
	cd := child.table.DirAlloc(d.Addr(di))
	cd.Lock()
	cd.SetHugeLocked(cd.Index(d.Addr(di)), h.WrProtect().MkOld())
	cd.Unlock()
	child.cnt.resident.Add(int64(n))
	return true
}

// copyLeaf copies entries [lo, hi) of the parent's leaf src into child
// (copy_pte_range), one folio batch at a time (copy_present_ptes).
//
// +checklocks:s.mapLock
// +checklocks:child.mapLock
func (s *Space) copyLeaf(child *Space, src *pte.Leaf, lo, hi int, r region) error {
	cd := child.table.DirAlloc(src.Base())
	dst := cd.LeafAlloc(cd.Index(src.Base()))
	src.Lock()
	defer src.Unlock()
	dst.Lock()
	defer dst.Unlock()
	for i := lo; i < hi; {
		e := src.GetRaw(i)
		switch {
		case e.None():
			i++
			continue
		case e.Zero():
			dst.Set(i, e.MkOld())
			i++
			continue
		}
		head, n := s.batchAt(src, i, hi, e, pte.Dirty|pte.Young)
		if !s.a.FolioMaybeDMAPinned(head) || !s.a.AnyPageAnonExclusive(e.PFN(), n) {
			s.shareBatch(child, src, dst, i, n, head, e.PFN())
			i += n
			continue
		}
		// A pinned folio: exclusive pages are copied for the child,
		// the others (already shared once) are shared as usual.
		for k := 0; k < n; k++ {
			pfn := e.PFN() + folio.PFN(k)
			if !s.a.PageAnonExclusive(pfn) {
				s.shareBatch(child, src, dst, i+k, 1, head, pfn)
				continue
			}
			if err := s.copyPinnedPage(child, dst, i+k, pfn, src.Get(i+k).SoftDirty(), r); err != nil {
				return err
			}
		}
		i += n
	}
	return nil
}

// shareBatch shares n entries of one folio from entry i with child: one
// reference and one mapcount update for the batch, AnonExclusive cleared,
// both sides read-only (__folio_try_dup_anon_rmap, __copy_present_ptes).
//
// +checklocks:src.mu
// +checklocks:dst.mu
func (s *Space) shareBatch(child *Space, src, dst *pte.Leaf, i, n int, head, pfn folio.PFN) {
	testhook.Run(testhook.ForkAfterPinCheck)
	s.a.FolioGet(head, n)
	s.a.FolioAddMapcount(head, n, child.mm)
	s.a.ClearPageAnonExclusive(pfn, n)
	src.CopyPTEs(dst, i, n, true)
	child.cnt.resident.Add(int64(n))
}

// copyPinnedPage gives the child its own copy of an exclusive page of a
// pinned folio (copy_present_page); the parent's entry is left as it is,
// writable and exclusive, so the pin stays coherent with the parent. The
// copy is marked written if the parent's page is, and writable only then
// (a writable entry is always marked written: see softdirty.go).
//
// +checklocks:dst.mu
// +checklocks:child.mapLock
func (s *Space) copyPinnedPage(child *Space, dst *pte.Leaf, i int, pfn folio.PFN, written bool, r region) error {
	newPage, err := child.allocCopy()
	if err != nil {
		return err
	}
	copyPage(s.a.PageBytes(newPage, 1), s.a.PageBytes(pfn, 1), -1)
	flags := pte.Present | pte.Dirty | pte.Young
	if written {
		flags |= pte.SoftDirty
		if r.prot.writable() {
			flags |= pte.Write
		}
	}
	if !r.prot.readable() {
		flags |= pte.ProtNone
	}
	s.a.FolioAddMapcount(newPage, 1, child.mm)
	s.a.SetPageAnonExclusive(newPage, 1)
	dst.Set(i, pte.Mk(newPage, flags))
	child.cnt.resident.Add(1)
	s.cnt.forkCopies.Add(1)
	return nil
}
