package cow

import (
	"fmt"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// collapse is Advise(Collapse) (madvise_collapse): every PMD-aligned,
// PMD-sized part of [start, end) that lies within one region and maps at
// least one page is copied into a new PMD-order folio that one huge entry
// maps, exclusive to this space (collapse_huge_page). Pages shared with
// other spaces stay theirs; holes read zero in the new folio.
//
// Preconditions: s.mapLock is held for writing.
// +checklocks:s.mapLock
func (s *Space) collapse(start, end Addr) error {
	if s.geo.MaxOrder < s.geo.PMDOrder {
		return invalid("Collapse: the arena's largest folio (order %d) is below the PMD order %d", s.geo.MaxOrder, s.geo.PMDOrder)
	}
	pmd := Addr(s.geo.FolioSize(s.geo.PMDOrder))
	// Nothing else of this space may touch the pages while they are copied
	// and their mappings replaced: the lockless paths wait (the kernel
	// clears the PMD and flushes the TLB before it copies).
	s.quiesceLocked()
	defer s.unquiesce()
	var busy int
	for va := (start + pmd - 1) &^ (pmd - 1); va+pmd <= end; va += pmd {
		r, ok := s.regionAt(va)
		if !ok || r.end < va+pmd {
			continue // straddles two regions (hugepage_vma_check)
		}
		ok, err := s.collapseSlot(va, r)
		if err != nil {
			return err
		}
		if !ok {
			busy++
		}
	}
	if busy > 0 {
		return fmt.Errorf("%w: Collapse of %#x+%#x left %d PMD ranges as they were", busyErr(), uint64(start), uint64(end-start), busy)
	}
	return nil
}

// collapseSlot collapses the directory slot that maps [va, va+PMD size).
// ok is false if a folio there is pinned or referenced.
//
// Preconditions: s.mapLock is held for writing; the space is quiesced.
// +checklocks:s.mapLock
// +checklocksignore: privateLeaf returns the leaf locked.
func (s *Space) collapseSlot(va Addr, r region) (ok bool, err error) {
	d := s.table.Dir(uint64(va))
	if d == nil {
		return true, nil
	}
	di := d.Index(uint64(va))
	if d.Huge(di).Present() || d.Leaf(di) == nil {
		return true, nil // already one folio, or nothing to collapse
	}
	n := s.geo.TableEntries
	l := s.privateLeaf(d, di, uint64(va), uint64(va)+uint64(n)*s.ps, false)
	if l == nil {
		return true, nil
	}
	if !s.collapsibleLocked(l) {
		l.Unlock()
		return false, nil
	}
	head, err := s.a.AllocFolio(s.geo.PMDOrder, 0)
	if err != nil {
		l.Unlock()
		return false, err
	}
	s.copyIntoFolioLocked(l, head)
	s.zapLeafLocked(l, 0, n)
	l.Unlock()

	d.Lock()
	// SetHugeLocked frees the leaf, empty now. It cannot find the slot
	// taken: the map lock is held for writing and the lockless paths are
	// quiesced, so nothing maps into it meanwhile. Were that ever broken,
	// the copy just made would be lost with the old pages: stop here.
	if !d.SetHugeLocked(di, pte.Mk(head, anonPTE)) {
		panic(fmt.Sprintf("cow: Collapse at %#x: the slot filled while the space was quiesced", uint64(va)))
	}
	s.a.FolioAddEntireMapcount(head, s.mm) // the allocation's reference is the mapping's
	s.a.SetPageAnonExclusive(head, n)
	if !r.prot.writable() {
		set, clear := pte.PTE(0), pte.Write
		if !r.prot.readable() {
			set = pte.ProtNone
		}
		d.ChangeProtHugeLocked(di, set, clear)
	}
	d.Unlock()
	s.cnt.collapsed.Add(1)
	s.cnt.resident.Add(int64(n))
	return true, nil
}

// collapsibleLocked reports whether every folio l maps may be copied away
// (hpage_collapse_scan_pmd's refcount test): not pinned, and no reference
// beyond the mappings of all spaces.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) collapsibleLocked(l *pte.Leaf) bool {
	return s.leafFolioBatches(l, func(_ int, _, head folio.PFN, _ int) bool {
		return !s.a.FolioMaybeDMAPinned(head) && s.a.FolioRef(head) == s.a.FolioMapcount(head)
	})
}

// copyIntoFolioLocked fills the PMD-order folio head with what l maps:
// each present page's contents, zeros for holes and the zero page.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) copyIntoFolioLocked(l *pte.Leaf, head folio.PFN) {
	for i := range s.geo.TableEntries {
		dst := s.a.PageBytes(head+folio.PFN(i), 1)
		if e := l.GetRaw(i); e.Present() && !e.Zero() {
			copyPage(dst, s.a.PageBytes(e.PFN(), 1), -1)
		} else {
			clear(dst)
		}
	}
}
