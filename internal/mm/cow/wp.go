package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// doWPPage handles a write or unshare fault on a present read-only entry
// (do_wp_page). An AnonExclusive page is always reused, never copied: that
// is what keeps pins coherent. A page that is not exclusive is reused when
// its folio is mapped only by this space and nobody else holds a reference
// (wp_can_reuse_anon_folio; large folios by the v6.15 rule); reuse makes it
// exclusive. Otherwise the page is copied (wp_page_copy). An unshare leaves
// the entry read-only either way.
//
// Preconditions: mapLock is held for reading; the PTL of l is held, and is
// released on return.
// +checklocksread:s.mapLock
// +checklocksrelease:l.mu
func (s *Space) doWPPage(d *pte.Dir, di int, l *pte.Leaf, i int, e pte.PTE, f *fault) (bool, error) {
	flags := f.flags
	write := flags&faultWrite != 0
	if e.Zero() {
		l.Unlock()
		if write {
			if done, err, tried := s.zeroPageUpgrade(d, di, l, i, f); tried {
				return done, err
			}
		}
		return s.wpPageCopy(d, di, l, i, e, 0, f)
	}
	pfn := e.PFN()
	head, order := s.pageFolio(pfn)
	if s.a.PageAnonExclusive(pfn) || s.mayReuse(head, order) {
		s.a.SetPageAnonExclusive(pfn, 1)
		if !write {
			l.Unlock()
			return true, nil
		}
		// wp_page_reuse: only the faulting entry becomes writable; that
		// unfolds its block, which folds again once it is uniform.
		l.SetAccessFlags(i, e.MkWrite().MkDirty().MkYoung().MkSoftDirty())
		l.TryFold(i)
		l.Unlock()
		f.r.hint.recordOne(&f.r.hint.cow, f.addr, s.ps) // a scan that reuses some pages goes on
		s.cnt.wpReuse.Add(1)
		return true, nil
	}
	if s.copyUnit == CopyFolio && order > 0 {
		if start, ok := s.wholeFolioMapped(l, i, e, head, order, f.r); ok {
			return s.wpFolioCopy(d, di, l, i, start, e, head, order, f)
		}
	}
	if streak, up := f.r.hint.next(&f.r.hint.cow, f.addr, s.ps); write && streak > 0 {
		return s.copyAround(d, di, l, i, e, head, f, streak, up)
	}
	s.a.FolioGet(head, 1)
	s.copyStart(head)
	l.Unlock()
	return s.wpPageCopy(d, di, l, i, e, head, f)
}

// mayReuse is the reuse test for a page that is not exclusive: the folio is
// mapped only by this space and every reference beyond its mappings is one
// of this space's own copies in flight. The copies are only counted when
// the mappings alone allow it (most COW faults find the folio mapped by two
// spaces and stop at the first test), and only those in flight from before
// the refcount was read until after: a copy that ended meanwhile may have
// dropped its reference before the read while another reference (a Get)
// was taken, and counting it would reuse the page under that reference.
//
// Preconditions: the PTL of a mapping of the folio is held.
func (s *Space) mayReuse(head folio.PFN, order int) bool {
	if order == 0 {
		if s.a.FolioMapcount(head) != 1 {
			return false
		}
	} else if s.a.FolioMaybeMappedShared(head) {
		return false
	}
	if s.a.FolioExclusiveTo(head, s.mm, 0) {
		return true
	}
	inflight := s.copies.snap(head)
	return inflight.n > 0 && s.a.FolioExclusiveTo(head, s.mm, inflight.n) && s.copies.unchanged(&inflight)
}

// pageFolio returns the folio of a page that a present entry maps. A mapped
// page always belongs to an allocated folio: anything else is corruption.
func (s *Space) pageFolio(pfn folio.PFN) (folio.PFN, int) {
	head, order, ok := s.a.PageFolio(pfn)
	if !ok {
		panic("cow: a present entry maps a page that belongs to no folio")
	}
	return head, order
}

// wpPageCopy copies the page that orig maps (or the zero page) into a new
// order-0 folio and installs it at entry i if the entry still maps what it
// did (wp_page_copy). With a folio behind orig, the caller took a reference
// on it and recorded the copy in flight; both are dropped here. The copy is
// made without the PTL; the install only happens if, with the PTL retaken,
// the entry is the same mapping and the old page did not become
// AnonExclusive meanwhile (a reuse or an unshare made it someone's: such a
// page, possibly pinned, is never replaced by a copy). Otherwise the copy is
// discarded and done is false: the caller faults again.
//
// Preconditions: mapLock is held for reading; the PTL is not held.
// +checklocksread:s.mapLock
func (s *Space) wpPageCopy(d *pte.Dir, di int, l *pte.Leaf, i int, orig pte.PTE, oldHead folio.PFN, f *fault) (bool, error) {
	flags := f.flags
	fromZero := orig.Zero()
	overwrite := f.wholePage(s.ps) // the old contents are not needed
	testhook.Run(testhook.WPCopyUnlocked)
	var af folio.AllocFlags
	if fromZero && !overwrite {
		af = folio.AllocZero
	}
	newPage, err := s.a.AllocFolio(0, af)
	if err != nil {
		s.copyDone(oldHead, 1, fromZero)
		return false, err
	}
	dst := s.a.PageBytes(newPage, 1)
	if !fromZero && !overwrite {
		copyPage(dst, s.a.PageBytes(orig.PFN(), 1), int(uint64(f.addr)%s.ps))
	}
	f.store(dst, s.ps) // the copy is still ours alone
	testhook.Run(testhook.WPCopyBeforeInstall)

	if !relock(d, di, l) || l.Shared() || !pte.SameMapping(l.Get(i), orig) || !fromZero && s.a.PageAnonExclusive(orig.PFN()) {
		l.Unlock()
		s.a.FolioPut(newPage, 1)
		s.copyDone(oldHead, 1, fromZero)
		s.cnt.wpCopyDiscarded.Add(1)
		return false, nil
	}
	s.installCopy(l, i, newPage, copiedPTE(flags))
	if !fromZero {
		s.removeMapping(l, i, orig.PFN(), oldHead, 1)
	}
	l.Unlock()
	if fromZero {
		s.cnt.resident.Add(1)
	}
	s.copyDone(oldHead, 2, fromZero) // the old mapping's reference and ours
	f.r.hint.recordOne(&f.r.hint.cow, f.addr, s.ps)
	f.applied = f.data != nil
	s.cnt.wpCopy.Add(1)
	if !overwrite {
		s.cnt.copyBytes.Add(s.ps)
	}
	return true, nil
}

// installCopy maps newPage, a copy just made, at entry i in place of what
// the entry maps, with flags: the new page's mapping and AnonExclusive
// first, then the entry replaced (break-before-make). The caller accounts
// for the old page's mapping (removeMapping) and drops its references.
//
// Preconditions: the PTL of l is held, and the entry was rechecked under it.
// +checklocks:l.mu
func (s *Space) installCopy(l *pte.Leaf, i int, newPage folio.PFN, flags pte.PTE) {
	s.a.FolioAddMapcount(newPage, 1, s.mm)
	s.a.SetPageAnonExclusive(newPage, 1)
	written := l.Clear(i, 1) & pte.SoftDirty // an unshare's copy keeps it
	l.Set(i, pte.Mk(newPage, flags|written))
}

// copyDone ends a copy of oldHead's folio in flight and drops n
// references on it; a copy of the zero page has neither.
func (s *Space) copyDone(oldHead folio.PFN, n int, fromZero bool) {
	if !fromZero {
		s.copyEnd(oldHead)
		s.a.FolioPut(oldHead, n)
	}
}

// copiedPTE is the entry of a page copied for a fault: writable and dirty
// for a write, read-only for an unshare.
func copiedPTE(flags faultFlags) pte.PTE {
	if flags&faultWrite != 0 {
		return anonPTE
	}
	return pte.Present | pte.Young
}

// removeMapping accounts nr pages of oldHead's folio, from pfn on, as no
// longer mapped at entry i of l by this space, and queues the folio for
// deferred split if that leaves it partly mapped. The kernel's test is the
// total mapcount below the folio's size, which misses a folio that another
// space still maps whole or in part; we also ask the owner tracking whether
// this space now maps only part of it. The caller drops the references.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) removeMapping(l *pte.Leaf, i int, pfn, oldHead folio.PFN, nr int) {
	m := s.a.FolioSubMapcount(oldHead, nr, s.mm)
	s.deferIfPartial(oldHead, m, Addr(l.Addr(i))-Addr(uint64(pfn-oldHead)*s.ps))
}

// deferIfPartial queues the folio at head for the deferred split if, with
// m mappings left after this space removed some, it may be mapped only in
// part: nothing maps it whole, and either fewer than all its pages are
// mapped or this space maps only some of them. addr is where this space
// maps (or mapped) its first page: a fork keeps addresses, so the split
// looks for every owner's mappings there. Every path that takes mappings
// away calls it (a zap, a COW copy of a page, of a folio, of a huge entry),
// or a folio another space maps in part is never queued.
//
// Preconditions: the caller holds a reference or a mapping of the folio.
func (s *Space) deferIfPartial(head folio.PFN, m int, addr Addr) {
	order := s.a.FolioOrder(head)
	if order == 0 || m == 0 || s.a.FolioEntireMapcount(head) != 0 {
		return
	}
	partial := m < 1<<order
	if !partial {
		mine, tracked := s.a.FolioMapcountOf(head, s.mm)
		partial = tracked && mine > 0 && mine < 1<<order
	}
	if partial {
		s.deferSplit(head, order, addr)
	}
}

// wholeFolioMapped reports whether l maps every page of the folio in order
// around entry i, inside the faulting region r, with equal flags, and no
// page of it is exclusive: then CopyFolio may copy it whole. It returns the
// entry of the folio's first page. Equal flags are not enough: after a fork
// every entry is read-only, and Protect may since have left part of the
// folio in a read-only region, which the copy would map writable.
//
// Preconditions: the PTL of l is held.
// +checklocks:l.mu
func (s *Space) wholeFolioMapped(l *pte.Leaf, i int, e pte.PTE, head folio.PFN, order int, r region) (int, bool) {
	n := 1 << order
	start := i - int(e.PFN()-head)
	if start < 0 || start+n > l.Len() || l.GetRaw(start).PFN() != head {
		return 0, false
	}
	if lo := Addr(l.Addr(start)); lo < r.start || lo+Addr(n)*Addr(s.ps) > r.end {
		return 0, false
	}
	if k, _ := l.Batch(start, n, pte.Dirty|pte.Young); k != n {
		return 0, false
	}
	return start, !s.a.AnyPageAnonExclusive(head, n)
}

// wpFolioCopy copies a whole shared folio that l maps from entry start on
// into a new folio of the same order and maps the new one in its place: the
// CopyFolio policy. Every entry of the range is rechecked after the copy, and
// no page of the old folio may have become exclusive (the large-folio COW
// lesson: after dropping the PTL, check every PTE, never replace a possibly
// pinned page). When no folio of that order is free it copies the one page
// instead.
//
// Preconditions: mapLock is held for reading; the PTL of l is held, and is
// released on return.
// +checklocksread:s.mapLock
// +checklocksrelease:l.mu
func (s *Space) wpFolioCopy(d *pte.Dir, di int, l *pte.Leaf, i, start int, e pte.PTE, head folio.PFN, order int, f *fault) (bool, error) {
	flags := f.flags
	n := 1 << order
	first := l.GetRaw(start)
	s.a.FolioGet(head, 1)
	s.copyStart(head)
	l.Unlock()
	testhook.Run(testhook.WPCopyUnlocked)
	newHead, err := s.a.AllocFolio(order, 0)
	if err != nil {
		if !errors.Is(err, folio.ErrNoMemory) {
			s.copyEnd(head)
			s.a.FolioPut(head, 1)
			return false, err
		}
		return s.wpPageCopy(d, di, l, i, e, head, f) // keeps our reference
	}
	hot := (i-start)*int(s.ps) + int(uint64(f.addr)%s.ps) // the retried write lands here
	copyPage(s.a.PageBytes(newHead, n), s.a.PageBytes(head, n), hot)
	testhook.Run(testhook.WPCopyBeforeInstall)

	ok := relock(d, di, l) && !l.Shared()
	for k := 0; ok && k < n; k++ {
		ok = pte.SameMapping(l.Get(start+k), first.Advance(k))
	}
	if !ok || s.a.AnyPageAnonExclusive(head, n) {
		l.Unlock()
		s.a.FolioPut(newHead, 1)
		s.copyEnd(head)
		s.a.FolioPut(head, 1)
		s.cnt.wpCopyDiscarded.Add(1)
		return false, nil
	}
	s.a.FolioGet(newHead, n-1)
	s.a.FolioAddMapcount(newHead, n, s.mm)
	s.a.SetPageAnonExclusive(newHead, n)
	written := l.Clear(start, n) & pte.SoftDirty // gathered: the copy is one unit
	l.SetPTEs(start, pte.Mk(newHead, copiedPTE(flags)|written), n)
	s.deferIfPartial(head, s.a.FolioSubMapcount(head, n, s.mm), Addr(l.Addr(start)))
	l.Unlock()
	s.copyEnd(head)
	s.a.FolioPut(head, n+1)
	s.cnt.wpCopy.Add(1)
	s.cnt.copyBytes.Add(uint64(n) * s.ps)
	return true, nil
}

// hugeFault handles a fault on a huge entry. Reads and writes to a writable
// entry need nothing. A write or unshare of a read-only one reuses the folio
// if it is exclusive to this space (do_huge_pmd_wp_page); otherwise, with
// CopyFolio, the whole PMD-order folio is copied, and with CopyPage the
// entry is split into PTEs and the PTE path copies the one page.
//
// Preconditions: mapLock is held for reading.
// +checklocksread:s.mapLock
func (s *Space) hugeFault(d *pte.Dir, di int, flags faultFlags) (bool, error) {
	write, unshare := flags&faultWrite != 0, flags&faultUnshare != 0
	d.Lock()
	h := d.Huge(di)
	switch {
	case !h.Present():
		d.Unlock()
		return false, nil
	case h.ProtNone():
		d.Unlock()
		return false, protErr(Addr(d.Addr(di)), write)
	case !write && (!unshare || h.Write()):
		d.Unlock()
		return true, nil
	case write && h.Write():
		d.SetHugeAccessLocked(di, pte.Dirty|pte.Young|pte.SoftDirty)
		d.Unlock()
		return true, nil
	}
	head, n := h.PFN(), s.geo.TableEntries
	if s.a.PagesAnonExclusive(head, n) || s.mayReuse(head, s.geo.PMDOrder) {
		s.a.SetPageAnonExclusive(head, n)
		if write {
			d.SetHugeAccessLocked(di, pte.Write|pte.Dirty|pte.Young|pte.SoftDirty)
			s.cnt.wpReuse.Add(1)
		}
		d.Unlock()
		return true, nil
	}
	if s.copyUnit == CopyFolio {
		return s.hugeCopy(d, di, h, flags)
	}
	s.splitHugeLocked(d, di)
	d.Unlock()
	return false, nil
}

// hugeCopy copies a shared PMD-order folio whole and maps the copy with a
// huge entry. Without a free PMD-order block it splits the entry and lets
// the PTE path copy one page.
//
// Preconditions: d's lock is held, and is released on return.
// +checklocksread:s.mapLock
// +checklocksrelease:d.mu
func (s *Space) hugeCopy(d *pte.Dir, di int, h pte.PTE, flags faultFlags) (bool, error) {
	head, n := h.PFN(), s.geo.TableEntries
	s.a.FolioGet(head, 1)
	s.copyStart(head)
	d.Unlock()
	testhook.Run(testhook.WPCopyUnlocked)
	newHead, err := s.a.AllocFolio(s.geo.PMDOrder, 0)
	if err != nil {
		s.copyDone(head, 1, false)
		if !errors.Is(err, folio.ErrNoMemory) {
			return false, err
		}
		d.Lock()
		if pte.SameMapping(d.Huge(di), h) {
			s.splitHugeLocked(d, di)
		}
		d.Unlock()
		return false, nil
	}
	copyPage(s.a.PageBytes(newHead, n), s.a.PageBytes(head, n), -1)
	testhook.Run(testhook.WPCopyBeforeInstall)
	d.Lock()
	if !pte.SameMapping(d.Huge(di), h) || s.a.AnyPageAnonExclusive(head, n) {
		d.Unlock()
		s.a.FolioPut(newHead, 1)
		s.copyDone(head, 1, false)
		s.cnt.wpCopyDiscarded.Add(1)
		return false, nil
	}
	s.a.FolioAddEntireMapcount(newHead, s.mm)
	s.a.SetPageAnonExclusive(newHead, n)
	written := d.ClearHugeLocked(di) & pte.SoftDirty
	d.SetHugeLocked(di, pte.Mk(newHead, copiedPTE(flags)|written))
	s.deferIfPartial(head, s.a.FolioSubEntireMapcount(head, s.mm), Addr(d.Addr(di)))
	d.Unlock()
	s.copyDone(head, 2, false)
	s.cnt.wpCopy.Add(1)
	s.cnt.copyBytes.Add(uint64(n) * s.ps)
	return true, nil
}
