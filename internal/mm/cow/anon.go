package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// anonPTE is the entry of a page just allocated for a write fault: writable,
// dirty, young (pte_mkwrite(pte_mkdirty(...)) in do_anonymous_page), and
// marked written (pte_mkdirty sets soft-dirty too).
const anonPTE = pte.Present | pte.Write | pte.Dirty | pte.Young | pte.SoftDirty

// doAnonymousPage serves a write fault on a none entry (do_anonymous_page)
// with a folio of the highest enabled order whose naturally aligned range
// lies inside the region and maps nothing yet (alloc_anon_folio), falling
// back order by order when the arena has no block of that order, and maps
// every page of it writable and AnonExclusive. When that is order 0 and the
// fault continues the region's previous one, it maps the rest of the
// aligned block too (faultAround).
//
// Preconditions: mapLock is held for reading; the PTL is not.
// +checklocksread:s.mapLock
func (s *Space) doAnonymousPage(d *pte.Dir, di int, l *pte.Leaf, f *fault) (bool, error) {
	addr, r := f.addr, f.r
	i := l.Index(uint64(addr))
	best := s.anonOrder(f.folioBounds(), l, i)
	f.order = max(f.order, best)
	streak, up := r.hint.next(&r.hint.anon, addr, s.ps)
	if best == 0 && streak > 0 {
		if done, tried := s.faultAround(d, di, l, f, i, streak, up); tried {
			return done, nil
		}
	}
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
	if !relock(d, di, l) || l.Shared() || !rangeNoneOrZero(l, start, n) {
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
	if !rangeNone(l, start, n) {
		// A read mapped the zero page here first: the folio replaces it
		// (zero-page entries hold no reference).
		l.Clear(start, n)
		s.cnt.zeroUpgrades.Add(1)
	}
	l.SetPTEs(start, pte.Mk(head, anonPTE), n)
	l.Unlock()
	r.hint.record(&r.hint.anon, Addr(l.Addr(start)), n, streak)
	f.applied = f.data != nil
	s.cnt.faultAlloc[order].Add(1)
	s.cnt.resident.Add(int64(n))
	return true, nil
}

// faultAround serves a write fault on none entry i that continues a
// sequential scan (the streak-th fault in a row) with order-0 folios for
// every none entry of its window (aroundWindow): one batch allocation, one
// PTL round trip, each page writable and AnonExclusive as doAnonymousPage
// would map it. tried is false when it did nothing (nothing else to map in
// the window, or memory short: the caller faults the one page, which knows
// how to wait for memory); done false with tried means a race was lost
// and the fault retries, as doAnonymousPage's does.
//
// Preconditions: mapLock is held for reading; the PTL is not.
// +checklocksread:s.mapLock
func (s *Space) faultAround(d *pte.Dir, di int, l *pte.Leaf, f *fault, i, streak int, up bool) (done, tried bool) {
	lo, hi := s.aroundWindow(l, i, f.folioBounds(), streak, up)
	var idx [maxAround]int
	at := idx[:0]
	for j := lo; j < hi; j++ {
		if j == i || l.GetLockless(j).None() {
			at = append(at, j)
		}
	}
	n := len(at)
	if n < 2 {
		return false, false
	}
	var buf [maxAround]folio.PFN
	pages := buf[:n]
	if k := s.a.AllocPages(pages, folio.AllocZero); k < n {
		putPages(s.a, pages[:k])
		return false, false
	}
	for k, j := range at {
		if j == i {
			f.store(s.a.PageBytes(pages[k], 1), s.ps) // the pages are still ours alone
		}
	}
	testhook.Run(testhook.FaultAroundBeforeInstall)
	ok := relock(d, di, l) && !l.Shared()
	for _, j := range at {
		ok = ok && l.GetRaw(j).None()
	}
	if !ok {
		l.Unlock()
		putPages(s.a, pages)
		return false, true
	}
	for k, j := range at {
		s.a.FolioAddMapcount(pages[k], 1, s.mm)
		s.a.SetPageAnonExclusive(pages[k], 1)
		l.Set(j, pte.Mk(pages[k], anonPTE))
	}
	l.Unlock()
	f.r.hint.record(&f.r.hint.anon, Addr(l.Addr(lo)), hi-lo, streak)
	f.applied = f.data != nil
	s.cnt.faultAlloc[0].Add(uint64(n))
	s.cnt.resident.Add(int64(n))
	s.cnt.faultAround.Add(1)
	s.cnt.faultAroundPgs.Add(uint64(n - 1))
	return true, true
}

// putPages drops the one reference of each of pages, freshly allocated
// and never mapped.
func putPages(a *folio.Arena, pages []folio.PFN) {
	for _, pfn := range pages {
		a.FolioPut(pfn, 1)
	}
}

// anonOrder returns the highest enabled order below the PMD order (which a
// huge entry serves) whose aligned range around entry i fits the region and
// whose entries are all none or the zero page, read locklessly; the choice
// is rechecked under the PTL. The kernel's alloc_anon_folio wants them all
// none, so that a range a read touched first never gets a large folio (the
// read-then-write pattern of every hash table); here the folio replaces
// the zero page (counted in Stats.ZeroUpgrades).
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
		if rangeNoneOrZeroLockless(l, start, n) {
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

func rangeNoneOrZeroLockless(l *pte.Leaf, start, n int) bool {
	for k := start; k < start+n; k++ {
		if e := l.GetLockless(k); !e.None() && !e.Zero() {
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
