package cow

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// ResetTo makes a space what a snapshot of it is: the snapshot fuzzer's and
// the per-request sandbox's reset (fork once, run, reset, run...). It works
// slot by slot (2 MiB with 4 KiB pages): a slot whose leaf s still shares
// with snap (on-demand fork), or whose huge entry maps the same folio alike,
// is kept as it is; any other slot of s is zapped and takes snap's as a Fork
// would give it: the leaf shared (pte.Dir.InstallLeafLocked), the huge
// entry's folio mapped again, read-only. No page is copied, but those of a
// pinned folio, which a Fork copies too (they stay the pinner's). So the
// cost grows with the slots s changed since it shared snap's, not with the
// size of the space.
//
// A slot where s has a private leaf that differs from snap's in a few
// entries only (s wrote a few pages there since the leaf was unshared) is
// mended entry by entry instead: each run of differing entries is zapped
// (zapRange) and takes snap's entries as Fork's copy of a leaf gives them
// (copyLeaf: the pages shared, not copied). That costs a scan of the leaf
// and the runs, where re-sharing the leaf costs a zap of every entry; and
// the next write in the slot then copies a page only, not the leaf. A slot
// mended so is remembered with both leaves' modification counts
// (pte.Leaf.Mods): the next ResetTo to the same leaves skips it if neither
// count moved, so that a loop's resets cost what each run changed, not every
// leaf a run ever touched.

// ResetTo makes s have snap's regions and read exactly what snap reads;
// snap's contents do not change. Both must allocate from the same arena
// (ErrInvalid otherwise). s also takes snap's baseline (what a snapshot
// delta of s is relative to). s.ResetTo(s) changes nothing.
func (s *Space) ResetTo(snap *Space) error { return s.resetToWrapped(snap, nil) }

// ResetToAt is ResetTo if s is at baseline want (AtBaseline), which it
// checks atomically with the reset: a Load's commit.
func (s *Space) ResetToAt(snap *Space, want Baseline) error { return s.resetToWrapped(snap, &want) }

// resetToWrapped is resetTo with ErrNoMemory explained, once the map locks
// are dropped (noMemory reads every space's counters).
func (s *Space) resetToWrapped(snap *Space, want *Baseline) error {
	err := s.resetTo(snap, want)
	if errors.Is(err, folio.ErrNoMemory) {
		err = s.noMemory(err, "ResetTo, copying the pages of a pinned folio of the snapshot")
	}
	return err
}

// +checklocksignore: it locks two spaces, in mm id order.
func (s *Space) resetTo(snap *Space, want *Baseline) error {
	if !snap.Valid() {
		return invalid("ResetTo: a nil snapshot, or one not made by NewSpace or Fork")
	}
	if snap == s {
		s.mapLock.RLock()
		defer s.mapLock.RUnlock()
		if s.closed.Load() {
			return closedErr()
		}
		if want != nil {
			return s.atBaselineLocked(*want)
		}
		return nil
	}
	if snap.a != s.a {
		return invalid("ResetTo: the snapshot allocates from another arena")
	}
	first, second := s, snap
	if spaceOrder(second, first) < 0 {
		first, second = second, first
	}
	first.mapLock.Lock()
	defer first.mapLock.Unlock()
	second.mapLock.Lock()
	defer second.mapLock.Unlock()
	switch {
	case s.closed.Load():
		return closedErr()
	case snap.closed.Load():
		return fmt.Errorf("%w: ResetTo a closed snapshot", closedErr())
	}
	if want != nil {
		if err := s.atBaselineLocked(*want); err != nil {
			return err
		}
	}
	s.quiesceLocked()
	defer s.unquiesce()
	snap.quiesceLocked()
	defer snap.unquiesce()
	return s.resetLocked(snap)
}

// spaceOrder is the order two spaces' map locks are taken in: mm id, then
// serial (a closed space's id may be reused).
func spaceOrder(x, y *Space) int {
	if x.mm != y.mm {
		return cmp.Compare(x.mm, y.mm)
	}
	return cmp.Compare(x.serial, y.serial)
}

// resetLocked does ResetTo's work. It reserves the pages it may have to
// copy before it changes anything, so that running out of memory leaves s
// as it was.
//
// Preconditions: both map locks are held for writing and both spaces are
// quiesced.
// +checklocksignore: both map locks are held.
func (s *Space) resetLocked(snap *Space) error {
	mended := map[uint64]mendedLeaf{}
	slots := s.differingSlots(snap, mended)
	need := 0
	for _, addr := range slots {
		need += snap.pinnedCopies(addr)
	}
	if err := s.reserveCopies(need); err != nil {
		return err
	}
	defer s.releaseReserve()
	leaf := s.table.LeafSize()
	for _, addr := range slots {
		if s.resetEntries(snap, addr) {
			mended[addr] = s.mendedAt(snap, addr)
			continue
		}
		s.zapRange(Addr(addr), Addr(addr+leaf))
		if err := snap.copySlot(s, addr); err != nil {
			panic(fmt.Sprintf("cow: ResetTo at %#x failed after its pages were reserved: %v", addr, err))
		}
	}
	s.regions = slices.Clone(snap.regions)
	s.mapHint = snap.mapHint
	s.mended = mended
	snap.inheritTracking(s)
	return nil
}

// mendedLeaf is a slot ResetTo mended: s's leaf and snap's, with their
// modification counts right after. While both leaves are in the slot with
// the same counts, their entries are still equal.
type mendedLeaf struct {
	mine, theirs         *pte.Leaf
	mineMods, theirsMods uint64
}

// mendedAt returns the record of slot addr, just mended.
//
// +checklocksignore: both map locks are held.
func (s *Space) mendedAt(snap *Space, addr uint64) mendedLeaf {
	ds, dp := s.table.Dir(addr), snap.table.Dir(addr)
	di := ds.Index(addr)
	m := mendedLeaf{mine: ds.Leaf(di), theirs: dp.Leaf(di)}
	if m.mine != nil {
		m.mineMods = m.mine.Mods()
	}
	m.theirsMods = m.theirs.Mods()
	return m
}

// stillMended reports whether slot addr is as the last ResetTo left it,
// equal to snap's, and adds it to the record of this ResetTo.
//
// +checklocksignore: both map locks are held.
func (s *Space) stillMended(addr uint64, mine, theirs *pte.Leaf, mended map[uint64]mendedLeaf) bool {
	m, ok := s.mended[addr]
	if !ok || m.mine != mine || m.theirs != theirs || mine.Mods() != m.mineMods || theirs.Mods() != m.theirsMods {
		return false
	}
	mended[addr] = m
	return true
}

// resetEntries mends slot addr of s entry by entry to snap's, if both are
// leaves, s's is private, snap's may hold no pinned page, and few entries
// differ; it reports whether it did.
//
// Preconditions: as resetLocked.
// +checklocksignore: both map locks are held.
func (s *Space) resetEntries(snap *Space, addr uint64) bool {
	ds, dp := s.table.Dir(addr), snap.table.Dir(addr)
	if ds == nil || dp == nil {
		return false
	}
	di := ds.Index(addr)
	ls, lp := ds.Leaf(di), dp.Leaf(di)
	if ls == nil || lp == nil || ls.Shared() || lp.MaybePinned() {
		return false
	}
	runs := differingRuns(ls, lp, ls.Len()/4)
	if runs == nil {
		return false
	}
	for _, r := range runs {
		lo, hi := Addr(ls.Addr(r[0])), Addr(ls.Addr(r[1]-1))+Addr(s.ps)
		s.zapRange(lo, hi)
		// Region by region: copyLeaf wants the region of its entries.
		for i := endAfter(snap.regions, lo); i < len(snap.regions) && snap.regions[i].start < hi; i++ {
			reg := snap.regions[i]
			a, b := max(reg.start, lo), min(reg.end, hi)
			if err := snap.copyLeaf(s, lp, lp.Index(uint64(a)), lp.Index(uint64(b-1))+1, reg); err != nil {
				panic(fmt.Sprintf("cow: ResetTo at %#x: copying a leaf with no pinned page failed: %v", uint64(a), err))
			}
		}
	}
	return true
}

// differingRuns returns the runs [i, j) of entries where ls and lp map
// differently (another page, or the same with another permission or
// written mark), or nil if more than max entries differ.
func differingRuns(ls, lp *pte.Leaf, max int) [][2]int {
	ls.Lock()
	defer ls.Unlock()
	lp.Lock()
	defer lp.Unlock()
	const ignore = pte.Dirty | pte.Young | pte.Cont
	runs := [][2]int{}
	n := 0
	for i := 0; i < ls.Len(); i++ {
		if ls.GetRaw(i)&^ignore == lp.GetRaw(i)&^ignore {
			continue
		}
		if n++; n > max {
			return nil
		}
		if k := len(runs) - 1; k >= 0 && runs[k][1] == i {
			runs[k][1]++
		} else {
			runs = append(runs, [2]int{i, i + 1})
		}
	}
	return runs
}

// differingSlots returns the addresses of the slots where s's table differs
// from snap's, in address order: not the same leaf, huge entry or nothing,
// nor a leaf the last ResetTo mended and nothing changed since (which it
// records in mended).
//
// +checklocksignore: both map locks are held.
func (s *Space) differingSlots(snap *Space, mended map[uint64]mendedLeaf) []uint64 {
	var out []uint64
	end := uint64(vaLimit)
	for addr := uint64(0); addr < end; {
		ds, dp := s.table.NextDir(addr, end), snap.table.NextDir(addr, end)
		var base uint64
		switch {
		case ds == nil && dp == nil:
			return out
		case ds == nil:
			base = dp.Base()
		case dp == nil:
			base = ds.Base()
		default:
			base = min(ds.Base(), dp.Base())
		}
		ds, dp = s.table.Dir(base), snap.table.Dir(base)
		for di := range s.geo.TableEntries {
			addr := base + uint64(di)<<s.leafShift
			if sameSlot(ds, dp, di) {
				continue
			}
			if ds != nil && dp != nil {
				if mine, theirs := ds.Leaf(di), dp.Leaf(di); mine != nil && theirs != nil && s.stillMended(addr, mine, theirs, mended) {
					continue
				}
			}
			out = append(out, addr)
		}
		addr = base + s.table.DirSize()
	}
	return out
}

// sameSlot reports whether slot di maps the same in directories a and b
// (either may be nil): the same leaf, or huge entries that map the same
// folio with the same permission and written mark, or nothing.
func sameSlot(a, b *pte.Dir, di int) bool {
	var ha, hb pte.PTE
	var la, lb *pte.Leaf
	if a != nil {
		ha, la = a.Huge(di), a.Leaf(di)
	}
	if b != nil {
		hb, lb = b.Huge(di), b.Leaf(di)
	}
	if la != lb {
		return false
	}
	if la != nil {
		return true // one leaf, shared
	}
	const access = pte.Dirty | pte.Young
	return ha&^access == hb&^access
}

// pinnedCopies returns how many pages copySlot will copy for slot addr:
// the exclusive pages of pinned folios, which are not shared.
//
// +checklocksignore: the map lock is held.
func (snap *Space) pinnedCopies(addr uint64) int {
	d := snap.table.Dir(addr)
	if d == nil {
		return 0
	}
	di := d.Index(addr)
	n := 0
	count := func(pfn, head folio.PFN, pages int) {
		if snap.a.FolioMaybeDMAPinned(head) {
			for k := range pages {
				if snap.a.PageAnonExclusive(pfn + folio.PFN(k)) {
					n++
				}
			}
		}
	}
	if h := d.Huge(di); h.Present() {
		count(h.PFN(), h.PFN(), snap.geo.TableEntries)
		return n
	}
	if l := d.Leaf(di); l != nil && l.MaybePinned() {
		l.Lock()
		snap.leafFolioBatches(l, func(_ int, pfn, head folio.PFN, pages int) bool {
			count(pfn, head, pages)
			return true
		})
		l.Unlock()
	}
	return n
}

// copySlot gives s what slot addr of snap maps, as Fork gives a child:
// the huge entry's folio, or the leaf shared, or (a leaf that may hold a
// pinned page) the entries copied region by region.
//
// Preconditions: as resetLocked; s's slot is empty.
// +checklocksignore: both map locks are held.
func (snap *Space) copySlot(s *Space, addr uint64) error {
	d := snap.table.Dir(addr)
	if d == nil {
		return nil
	}
	di := d.Index(addr)
	if d.Huge(di).Present() && snap.copyHuge(s, d, di) {
		return nil
	}
	l := d.Leaf(di)
	if l == nil || snap.shareLeaf(s, l) {
		return nil
	}
	end := Addr(addr + snap.table.LeafSize())
	for i := endAfter(snap.regions, Addr(addr)); i < len(snap.regions) && snap.regions[i].start < end; i++ {
		r := snap.regions[i]
		lo, hi := max(r.start, Addr(addr)), min(r.end, end)
		if err := snap.copyLeaf(s, l, l.Index(uint64(lo)), l.Index(uint64(hi-1))+1, r); err != nil {
			return err
		}
	}
	return nil
}

// reserveCopies allocates n order-0 folios for the copies of pinned pages
// that s is about to receive; the copies take them (allocCopy) in place of
// a fresh allocation that could fail half-way.
//
// +checklocks:s.mapLock
func (s *Space) reserveCopies(n int) error {
	for range n {
		pfn, err := s.a.AllocFolio(0, 0)
		if err != nil {
			s.releaseReserve()
			return err
		}
		s.reserve = append(s.reserve, pfn)
	}
	return nil
}

// releaseReserve frees what the copies did not take.
//
// +checklocks:s.mapLock
func (s *Space) releaseReserve() {
	for _, pfn := range s.reserve {
		s.a.FolioPut(pfn, 1)
	}
	s.reserve = nil
}

// allocCopy returns a page for a copy s receives: a reserved one, or a new
// one.
//
// +checklocks:s.mapLock
func (s *Space) allocCopy() (folio.PFN, error) {
	if n := len(s.reserve); n > 0 {
		pfn := s.reserve[n-1]
		s.reserve = s.reserve[:n-1]
		return pfn, nil
	}
	return s.a.AllocFolio(0, 0)
}
