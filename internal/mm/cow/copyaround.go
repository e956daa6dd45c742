package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// aroundCopy is one page a copy-around copies: entry j, which mapped orig,
// a page of the folio at head, and the copy made of it.
type aroundCopy struct {
	j    int
	orig pte.PTE
	head folio.PFN
	page folio.PFN // the copy; 0 once discarded
}

// copyAround is wp_page_copy for a write fault that continues its region's
// sequential COW faults (the streak-th in a row): besides page i it copies
// every other page of its window (aroundWindow) that a write would copy
// now, that is each
// present, read-only entry of a page that is not AnonExclusive and whose
// folio may not be reused, so that the writes that follow find their pages
// writable. One PTL round trip and one batch allocation serve the block.
// Each page is handled exactly as wpPageCopy handles one: a reference and a
// copy in flight recorded before the PTL is dropped, and, with the PTL
// retaken, installed only if its entry still maps the same page with the
// same permission and the page did not become AnonExclusive (a reuse or an
// unshare made it someone's; it may be pinned). A page that fails the
// recheck is discarded alone; if it is page i the fault retries. Short of
// memory it copies page i alone.
//
// Preconditions: mapLock is held for reading; the PTL of l is held, and is
// released on return; entry i is e, read-only, of page e.PFN() of the
// folio at head, which doWPPage decided to copy.
// +checklocksread:s.mapLock
// +checklocksrelease:l.mu
func (s *Space) copyAround(d *pte.Dir, di int, l *pte.Leaf, i int, e pte.PTE, head folio.PFN, f *fault, streak int, up bool) (bool, error) {
	var buf [maxAround]aroundCopy
	cs := buf[:0]
	lo, hi := s.aroundWindow(l, i, f.r, streak, up)
	for j := lo; j < hi; j++ {
		if j == i {
			cs = append(cs, aroundCopy{j: i, orig: e, head: head})
			continue
		}
		if ej := l.GetRaw(j); s.wouldCopy(ej) {
			h, _ := s.pageFolio(ej.PFN())
			cs = append(cs, aroundCopy{j: j, orig: ej, head: h})
		}
	}
	for _, c := range cs {
		s.a.FolioGet(c.head, 1)
		s.copyStart(c.head)
	}
	l.Unlock()
	if len(cs) == 1 {
		return s.wpPageCopy(d, di, l, i, e, head, f)
	}
	testhook.Run(testhook.WPCopyUnlocked)
	var pages [maxAround]folio.PFN
	if k := s.a.AllocPages(pages[:len(cs)], 0); k < len(cs) {
		putPages(s.a, pages[:k])
		for _, c := range cs {
			if c.j != i {
				s.copyDone(c.head, 1, false)
			}
		}
		return s.wpPageCopy(d, di, l, i, e, head, f) // keeps i's reference
	}
	hot := int(uint64(f.addr) % s.ps) // sequential writers tend to write each page at one offset
	overwrite := f.wholePage(s.ps)
	for k := range cs {
		c := &cs[k]
		c.page = pages[k]
		dst := s.a.PageBytes(c.page, 1)
		if c.j != i || !overwrite {
			copyPage(dst, s.a.PageBytes(c.orig.PFN(), 1), hot)
		}
		if c.j == i {
			f.store(dst, s.ps) // the copy is still ours alone
		}
	}
	testhook.Run(testhook.WPCopyBeforeInstall)

	live := relock(d, di, l) && !l.Shared()
	installed, faulting := 0, false
	for k := range cs {
		c := &cs[k]
		if !live || !pte.SameMapping(l.Get(c.j), c.orig) || s.a.PageAnonExclusive(c.orig.PFN()) {
			s.a.FolioPut(c.page, 1)
			c.page = 0
			continue
		}
		s.installCopy(l, c.j, c.page, anonPTE)
		installed++
		faulting = faulting || c.j == i
	}
	s.removeMappings(l, cs)
	l.Unlock()
	for _, c := range cs {
		refs := 1
		if c.page != 0 {
			refs = 2 // the old mapping's reference and ours
		}
		s.copyDone(c.head, refs, false)
	}
	s.cnt.wpCopy.Add(uint64(installed))
	s.cnt.wpCopyDiscarded.Add(uint64(len(cs) - installed))
	extra, copied := installed, installed
	if faulting {
		extra--
		if overwrite {
			copied--
		}
	}
	s.cnt.copyBytes.Add(uint64(copied) * s.ps)
	s.cnt.copyAroundPgs.Add(uint64(extra))
	if !faulting {
		return false, nil // page i's copy was discarded: fault again
	}
	s.cnt.copyAround.Add(1)
	f.r.hint.record(&f.r.hint.cow, Addr(l.Addr(lo)), hi-lo, streak)
	f.applied = f.data != nil
	return true, nil
}

// wouldCopy reports whether a write fault on entry e would copy its page
// now: present, accessible, read-only, not the zero page, and neither
// AnonExclusive nor of a folio this space may reuse.
//
// Preconditions: the PTL of the entry's leaf is held.
func (s *Space) wouldCopy(e pte.PTE) bool {
	if !e.Accessible() || e.Write() || e.Zero() || s.a.PageAnonExclusive(e.PFN()) {
		return false
	}
	head, order := s.pageFolio(e.PFN())
	return !s.mayReuse(head, order)
}

// removeMappings accounts the pages of cs that were replaced by copies as
// no longer mapped by this space: one update per run of consecutive pages
// of one folio at consecutive entries, as removeMapping would do for each.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) removeMappings(l *pte.Leaf, cs []aroundCopy) {
	for k := 0; k < len(cs); {
		c := cs[k]
		if c.page == 0 {
			k++
			continue
		}
		n := 1
		for k+n < len(cs) {
			x := cs[k+n]
			if x.page == 0 || x.head != c.head || x.j != c.j+n || x.orig.PFN() != c.orig.PFN()+folio.PFN(n) {
				break
			}
			n++
		}
		s.removeMapping(l, c.j, c.orig.PFN(), c.head, n)
		k += n
	}
}
