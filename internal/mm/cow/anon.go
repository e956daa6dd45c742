package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// anonPTE is the entry of a page just allocated for a write fault: writable,
// dirty, young (pte_mkwrite(pte_mkdirty(...)) in do_anonymous_page), and
// marked written (pte_mkdirty sets soft-dirty too).
const anonPTE = pte.Present | pte.Write | pte.Dirty | pte.Young | pte.SoftDirty

// doAnonymousPage serves a write fault on a none entry (do_anonymous_page)
// with a folio of the highest enabled order whose naturally aligned range
// lies inside the region and maps nothing yet (alloc_anon_folio), falling
// back order by order when the arena has no block of that order, and maps
// every page of it writable and AnonExclusive.
//
// Preconditions: mapLock is held for reading; the PTL is not.
// +checklocksread:s.mapLock
func (s *Space) doAnonymousPage(d *pte.Dir, di int, l *pte.Leaf, f *fault) (bool, error) {
	addr := f.addr
	r, _ := s.regionAt(addr)
	i := l.Index(uint64(addr))
	best := s.anonOrder(r, l, i)
	f.order = max(f.order, best)
	var head folio.PFN
	order := best
	for ; ; order = s.lowerOrder(order) {
		var err error
		head, err = s.a.AllocFolio(order, f.allocFlags(Addr(l.Addr(i&^(1<<order-1))), 1<<order, s.ps))
		if err == nil {
			break
		}
		if !errors.Is(err, folio.ErrNoMemory) || order == 0 {
			return false, err
		}
		s.cnt.faultFallback[order].Add(1)
	}
	n := 1 << order
	start := i &^ (n - 1)
	f.store(s.a.PageBytes(head+folio.PFN(i-start), 1), s.ps) // the folio is still ours alone
	if !relock(d, di, l) || l.Shared() || !rangeNone(l, start, n) {
		// Lost a race with another fault in the range (theirs stands), or
		// the leaf changed under us: try again.
		l.Unlock()
		s.a.FolioPut(head, 1)
		return false, nil
	}
	// One reference per mapped page, references before mapcounts.
	if n > 1 {
		s.a.FolioGet(head, n-1)
	}
	s.a.FolioAddMapcount(head, n, s.mm)
	s.a.SetPageAnonExclusive(head, n)
	l.SetPTEs(start, pte.Mk(head, anonPTE), n)
	l.Unlock()
	f.applied = f.data != nil
	s.cnt.faultAlloc[order].Add(1)
	s.cnt.resident.Add(int64(n))
	return true, nil
}

// anonOrder returns the highest enabled order below the PMD order (which a
// huge entry serves) whose aligned range around entry i fits the region and
// whose entries are all none, read locklessly as the kernel does; the choice
// is rechecked under the PTL.
func (s *Space) anonOrder(r region, l *pte.Leaf, i int) int {
	for o := s.orders.Highest(); o > 0; o-- {
		if !s.orders.Has(o) || o >= s.geo.PMDOrder {
			continue
		}
		n := 1 << o
		start := i &^ (n - 1)
		first := Addr(l.Addr(start))
		if first < r.start || first+Addr(n)*Addr(s.ps) > r.end {
			continue
		}
		if rangeNoneLockless(l, start, n) {
			return o
		}
	}
	return 0
}

// lowerOrder returns the next enabled order below o (0 at the bottom).
func (s *Space) lowerOrder(o int) int {
	for o--; o > 0; o-- {
		if s.orders.Has(o) && o < s.geo.PMDOrder {
			return o
		}
	}
	return 0
}

func rangeNoneLockless(l *pte.Leaf, start, n int) bool {
	for k := start; k < start+n; k++ {
		if !l.GetLockless(k).None() {
			return false
		}
	}
	return true
}

// rangeNone is pte_range_none under the PTL.
//
// +checklocks:l.mu
func rangeNone(l *pte.Leaf, start, n int) bool {
	for k := start; k < start+n; k++ {
		if !l.GetRaw(k).None() {
			return false
		}
	}
	return true
}

// doHugePMDAnonymousPage serves a write fault in an empty directory slot with
// a PMD-order folio mapped by one huge entry (do_huge_pmd_anonymous_page).
// done false with no error means fall back to PTEs: no PMD-order block was
// free (counted), or the slot filled meanwhile.
//
// +checklocksread:s.mapLock
func (s *Space) doHugePMDAnonymousPage(d *pte.Dir, di int, af folio.AllocFlags) (bool, error) {
	order := s.geo.PMDOrder
	head, err := s.a.AllocFolio(order, af)
	if err != nil {
		if errors.Is(err, folio.ErrNoMemory) {
			s.cnt.faultFallback[order].Add(1)
			return false, nil
		}
		return false, err
	}
	n := 1 << order
	d.Lock()
	if !d.Huge(di).None() || d.Leaf(di) != nil {
		d.Unlock()
		s.a.FolioPut(head, 1)
		return false, nil
	}
	s.a.FolioAddEntireMapcount(head, s.mm) // the allocation's reference is the mapping's
	s.a.SetPageAnonExclusive(head, n)
	d.SetHugeLocked(di, pte.Mk(head, anonPTE))
	d.Unlock()
	s.cnt.faultAlloc[order].Add(1)
	s.cnt.resident.Add(int64(n))
	return true, nil
}

// splitHugeLocked replaces slot di's huge entry by a leaf of PTEs in this
// space (__split_huge_pmd): one entire mapping becomes TableEntries PTE
// mappings, references first.
//
// Preconditions: d's lock is held; slot di holds a huge entry.
// +checklocks:d.mu
func (s *Space) splitHugeLocked(d *pte.Dir, di int) {
	head := d.Huge(di).PFN()
	n := s.geo.TableEntries
	s.a.FolioGet(head, n-1)
	s.a.FolioAddMapcount(head, n, s.mm)
	s.a.FolioSubEntireMapcount(head, s.mm)
	l := d.SplitHugeLocked(di)
	if s.a.FolioMaybeDMAPinned(head) {
		// Pinned through the huge entry, which has no leaf to carry the
		// hint: the leaf must, or a fork would share it.
		l.SetMaybePinned()
	}
	if s.a.FolioRef(head) > s.a.FolioMapcount(head) {
		// Referenced beyond its mappings (a Get through the huge entry,
		// counted as it was grabbed): the leaf carries that hint too.
		l.SetMaybeHeld()
	}
}
