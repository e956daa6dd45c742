package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// PageRun is a run of pages that a space maps at consecutive addresses to
// consecutive page frames, all marked written or none: PAGEMAP_SCAN's
// page_region, with the frames. Their bytes are Arena().PageBytes(PFN,
// Pages), contiguous even across folios.
type PageRun struct {
	Addr    Addr
	PFN     folio.PFN
	Pages   int
	Written bool // marked written (soft-dirty: PAGE_IS_WRITTEN)
}

// ScanPages appends to out the runs of pages of [start, end) that map a
// folio's page (the zero page and unpopulated pages are left out: they read
// zero), in address order, as PAGEMAP_SCAN does for PAGE_IS_PRESENT without
// PAGE_IS_PFNZERO. Each run is read under its page-table lock, but the
// space may change right after: a caller that uses the frames makes sure
// nothing unmaps them (a snapshot's Fork, which only its owner touches).
func (s *Space) ScanPages(start, end Addr, out []PageRun) ([]PageRun, error) {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return out, closedErr()
	}
	for it := s.slots(start, end); it.next(); {
		d, di := it.d, it.di
		if d.Huge(di).Present() {
			d.Lock()
			if h := d.Huge(di); h.Present() {
				k := int((it.lo - d.Addr(di)) / s.ps)
				out = appendRun(out, s.ps, Addr(it.lo), h.Advance(k), int((it.hi-it.lo)/s.ps))
			}
			d.Unlock()
			continue
		}
		out = s.scanLeaf(d, di, it.lo, it.hi, out)
	}
	return out, nil
}

// NextPopulated returns the address of the first slot at or after start's
// that holds a leaf or a huge entry (start itself if its slot does), or
// end if none before it does: a walker of a large, sparsely used range
// (a Save of a space whose allocator reserved terabytes) skips the rest
// without visiting it slot by slot. Directories that do not exist are
// skipped whole.
func (s *Space) NextPopulated(start, end Addr) Addr {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	for it := s.slots(start, end); it.next(); {
		if it.d.Huge(it.di).Present() || it.d.Leaf(it.di) != nil {
			return Addr(it.lo)
		}
	}
	return end
}

// scanLeaf appends the runs of slot di's leaf in [lo, hi).
//
// +checklocksread:s.mapLock
func (s *Space) scanLeaf(d *pte.Dir, di int, lo, hi uint64, out []PageRun) []PageRun {
	l := d.Leaf(di)
	if l == nil {
		return out
	}
	if !relock(d, di, l) {
		l.Unlock()
		return s.scanLeaf(d, di, lo, hi, out) // replaced meanwhile
	}
	defer l.Unlock()
	for i, end := l.Index(lo), l.Index(hi-1)+1; i < end; {
		e, k := s.unitAt(l, i)
		k = min(k, end-i)
		if e.Present() && !e.Zero() {
			out = appendRun(out, s.ps, Addr(l.Addr(i)), e, k)
		}
		i += k
	}
	return out
}

// appendRun adds n pages mapped from addr on by entries that continue e
// (its frame and its mark) to out, extending the last run if they continue
// it.
func appendRun(out []PageRun, ps uint64, addr Addr, e pte.PTE, n int) []PageRun {
	if k := len(out) - 1; k >= 0 {
		r := &out[k]
		if r.Written == e.SoftDirty() && r.Addr+Addr(uint64(r.Pages)*ps) == addr && r.PFN+folio.PFN(r.Pages) == e.PFN() {
			r.Pages += n
			return out
		}
	}
	return append(out, PageRun{Addr: addr, PFN: e.PFN(), Pages: n, Written: e.SoftDirty()})
}
