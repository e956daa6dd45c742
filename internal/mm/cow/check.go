package cow

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// Check verifies the invariants of DESIGN.md over the given spaces, which
// must be every live space of one arena (closed spaces may be passed too):
//
//   - every entry lies in a region and allows no more than it does; the
//     zero page is never writable; every folded block is aligned, uniform
//     and inside one folio; every leaf's count matches its entries;
//   - a writable entry maps an AnonExclusive page, and an AnonExclusive
//     page is mapped at most once across the spaces (so no write can be
//     seen in two spaces: snapshot isolation);
//   - a writable entry is marked written (SoftDirty): the writes that take
//     no fault land only in such pages, so a snapshot's delta sees them;
//   - every mapped page belongs to an allocated folio, and every folio's
//     mapcount, entire mapcount and owner tracking equal what the tables
//     hold, and its refcount is at least its mappings plus its pins; in
//     race and invariants builds (folio.ExactLedger), where the pin package
//     counts what it holds, the refcounts equal the mappings plus the pins
//     plus the plain references taken through the pin package, summed over
//     the arena, and the pins those it holds: a folio nobody maps or
//     references is a leak (the default build keeps a pin at its floor
//     cost and cannot tell a leaked reference from a held one);
//   - each space's Resident equals the pages its tables map;
//   - a leaf shared after a fork lists exactly the spaces whose tables
//     point to it, and its mappings are counted once, to its first user;
//   - in race and invariants builds, where the pin package registers every
//     pinned page: a leaf that maps a pinned page carries the "maybe
//     pinned" hint (or a Fork would share it) and is shared by no one (or
//     another space would see what is written through the pin: pin
//     coherence and isolation);
//   - regions are sorted, page-aligned and disjoint; no detached leaf is
//     still installed; no COW copy is recorded in flight (none can be, with
//     the map lock held); every folio marked for the deferred split is on
//     its queue;
//   - the arena's allocator is consistent (folio.Arena.Check).
//
// It locks every space, waits for their lockless accesses and for releases
// of pins and Gets in flight, and holds off the deferred split, so it may be
// called while other goroutines use the spaces and their pins (they wait). It returns the first violation, naming the address,
// the folio and the counts.
//
// +checklocksignore: it locks every space in a loop, in mm id order.
func Check(spaces ...*Space) error {
	if len(spaces) == 0 {
		return nil
	}
	a := spaces[0].a
	set := map[*Space]bool{}
	var list []*Space
	for _, s := range spaces {
		if s == nil {
			return invalid("nil space")
		}
		if s.a != a {
			return invalid("spaces of different arenas")
		}
		if !set[s] {
			set[s] = true
			list = append(list, s)
		}
	}
	// In mm id order, as the deferred split locks them; a closed space's id
	// may be reused, so the serial number breaks ties.
	slices.SortFunc(list, func(x, y *Space) int {
		if x.mm != y.mm {
			return int(x.mm) - int(y.mm)
		}
		return cmp.Compare(x.serial, y.serial)
	})
	// The deferred split first, then the spaces, then the registry: a split
	// in progress holds a reference that no table or ledger accounts for,
	// and a space being created would allocate behind Check's back.
	as := stateOf(a)
	as.splitMu.Lock()
	defer as.splitMu.Unlock()
	for _, s := range list {
		s.mapLock.Lock()
		s.quiesceLocked()
	}
	defer func() {
		for _, s := range list {
			s.unquiesce()
			s.mapLock.Unlock()
		}
	}()
	as.regGate.Lock()
	defer as.regGate.Unlock()
	// Last, the releases of pins and Gets, which need no lock of a space.
	a.LedgerFreeze()
	defer a.LedgerThaw()
	for _, s := range as.liveSpaces() {
		if !set[s] {
			return invalid("Check needs every live space of the arena: space %d was not passed", s.mm)
		}
	}
	c := &checker{a: a, geo: a.Geometry(), pageMaps: make([]int32, a.NrPages()),
		folios: map[folio.PFN]*folioUse{}, leaves: map[*pte.Leaf][]folio.MMID{}, queued: map[folio.PFN]bool{}}
	as.queuedFolios(c.queued)
	if f := pinnedPagesSource.Load(); f != nil {
		c.pinned = (*f)(a)
	}
	for _, s := range list {
		if s.closed.Load() {
			continue
		}
		if err := c.space(s); err != nil {
			return fmt.Errorf("cow.Check: space %d: %w", s.mm, err)
		}
	}
	if err := c.sharedLeaves(); err != nil {
		return fmt.Errorf("cow.Check: %w", err)
	}
	if err := c.folios2(); err != nil {
		return fmt.Errorf("cow.Check: %w", err)
	}
	if err := a.Check(); err != nil {
		return fmt.Errorf("cow.Check: arena: %w", err)
	}
	checkersMu.Lock()
	extra := append([]Checker(nil), checkers...)
	checkersMu.Unlock()
	for _, check := range extra {
		if err := check(a); err != nil {
			return fmt.Errorf("cow.Check: %w", err)
		}
	}
	return nil
}

// folioUse is what the tables say about one folio.
type folioUse struct {
	maps   int                // PTE mappings plus huge entries
	entire int                // huge entries
	perMM  map[folio.MMID]int // maps by space
}

type checker struct {
	a        *folio.Arena
	queued   map[folio.PFN]bool // on the deferred-split queue
	pinned   map[folio.PFN]int  // pins per page, where the pin package tells
	geo      folio.Geometry
	pageMaps []int32 // per page: entries that map it
	folios   map[folio.PFN]*folioUse
	leaves   map[*pte.Leaf][]folio.MMID // the spaces whose tables point to each leaf
}

func (c *checker) use(head folio.PFN, mm folio.MMID, n int, entire bool) {
	u := c.folios[head]
	if u == nil {
		u = &folioUse{perMM: map[folio.MMID]int{}}
		c.folios[head] = u
	}
	u.maps += n
	u.perMM[mm] += n
	if entire {
		u.entire++
	}
}

// space walks one space's table.
//
// +checklocks:s.mapLock
func (c *checker) space(s *Space) error {
	if err := checkRegions(s.regions, s.ps); err != nil {
		return err
	}
	if err := s.copies.checkIdle(); err != nil {
		return err
	}
	var resident int64
	leafSize := s.table.LeafSize()
	for d := s.table.NextDir(0, uint64(vaLimit)); d != nil; d = s.table.NextDir(d.Base()+s.table.DirSize(), uint64(vaLimit)) {
		for di := 0; di < c.geo.TableEntries; di++ {
			slot := Addr(d.Addr(di))
			if h := d.Huge(di); h.Present() {
				resident += int64(c.geo.TableEntries)
				if err := c.huge(s, d, di, slot, leafSize, h); err != nil {
					return err
				}
			} else if l := d.Leaf(di); l != nil {
				_, seen := c.leaves[l]
				c.leaves[l] = append(c.leaves[l], s.mm)
				n, err := c.leaf(s, l, !seen)
				if err != nil {
					return err
				}
				resident += n
			}
		}
	}
	if r := s.cnt.resident.Load(); r != resident {
		return fmt.Errorf("Resident is %d, the tables map %d pages", r, resident)
	}
	return nil
}

// +checklocks:s.mapLock
func (c *checker) huge(s *Space, d *pte.Dir, di int, slot Addr, leafSize uint64, h pte.PTE) error {
	if d.Leaf(di) != nil {
		return fmt.Errorf("slot %#x has a huge entry and a leaf", uint64(slot))
	}
	r, ok := s.regionAt(slot)
	if !ok || r.end < slot+Addr(leafSize) {
		return fmt.Errorf("huge entry at %#x (%v) is not inside one region", uint64(slot), h)
	}
	if err := checkProtOf(r, h, slot); err != nil {
		return err
	}
	head, order, ok := c.a.PageFolio(h.PFN())
	if !ok || head != h.PFN() || order != c.geo.PMDOrder {
		return fmt.Errorf("huge entry at %#x maps pfn %#x, not the head of a PMD-order folio", uint64(slot), uint64(h.PFN()))
	}
	n := c.geo.TableEntries
	if h.Write() && !c.a.PagesAnonExclusive(head, n) {
		return fmt.Errorf("writable huge entry at %#x maps folio %#x whose pages are not all AnonExclusive", uint64(slot), uint64(head))
	}
	if h.Write() && !h.SoftDirty() {
		return fmt.Errorf("writable huge entry at %#x (%v) is not marked written: writes through it escape a snapshot's delta", uint64(slot), h)
	}
	for k := range n {
		c.pageMaps[int(head)+k]++
	}
	c.use(head, s.mm, 1, true)
	return nil
}

// leaf checks one leaf against s's regions and returns the pages it maps
// (not the zero page). The mappings of a shared leaf are counted on the
// first visit only, to its accounting user.
//
// +checklocks:s.mapLock
func (c *checker) leaf(s *Space, l *pte.Leaf, first bool) (int64, error) {
	l.Lock()
	defer l.Unlock()
	if l.Dead() {
		return 0, fmt.Errorf("leaf at %#x is installed but was freed", l.Base())
	}
	owner := folio.MMID(l.Users()[0])
	count, pages := 0, int64(0)

	cont := c.geo.ContPTEs
	for i := 0; i < l.Len(); i++ {
		e := l.GetRaw(i)
		if e.None() {
			continue
		}
		count++
		addr := Addr(l.Addr(i))
		r, ok := s.regionAt(addr)
		if !ok {
			return 0, fmt.Errorf("entry at %#x (%v) lies in no region", uint64(addr), e)
		}
		if err := checkProtOf(r, e, addr); err != nil {
			return 0, err
		}
		if e.Cont() && i%cont == 0 {
			if err := c.block(l, i, addr); err != nil {
				return 0, err
			}
		}
		if !first {
			if !e.Zero() {
				pages++
			}
			continue
		}
		if e.Zero() {
			if e.Write() || e.Cont() {
				return 0, fmt.Errorf("zero-page entry at %#x is %v", uint64(addr), e)
			}
			continue
		}
		head, _, ok := c.a.PageFolio(e.PFN())
		if !ok {
			return 0, fmt.Errorf("entry at %#x maps pfn %#x, which belongs to no folio (freed while mapped)", uint64(addr), uint64(e.PFN()))
		}
		if e.Write() && !c.a.PageAnonExclusive(e.PFN()) {
			return 0, fmt.Errorf("writable entry at %#x maps pfn %#x, which is not AnonExclusive", uint64(addr), uint64(e.PFN()))
		}
		if e.Write() && !l.Get(i).SoftDirty() {
			return 0, fmt.Errorf("writable entry at %#x (%v) is not marked written: writes through it escape a snapshot's delta", uint64(addr), e)
		}
		c.pageMaps[e.PFN()]++
		c.use(head, owner, 1, false)
		if c.pinned[e.PFN()] > 0 {
			if !l.MaybePinned() {
				return 0, fmt.Errorf("entry at %#x maps pinned page %#x through a leaf without the maybe-pinned hint: a Fork would share it", uint64(addr), uint64(e.PFN()))
			}
			if l.Shared() {
				return 0, fmt.Errorf("entry at %#x maps pinned page %#x through a leaf shared by spaces %v: writes through the pin reach them all", uint64(addr), uint64(e.PFN()), l.Users())
			}
		}
		pages++
	}
	if count != l.Nr() {
		return 0, fmt.Errorf("leaf at %#x counts %d entries, holds %d", l.Base(), l.Nr(), count)
	}
	return pages, nil
}

// sharedLeaves checks that each leaf's users are exactly the spaces whose
// tables point to it.
func (c *checker) sharedLeaves() error {
	for l, got := range c.leaves {
		l.Lock()
		users := append([]uint16(nil), l.Users()...)
		l.Unlock()
		if len(users) != len(got) {
			return fmt.Errorf("leaf at %#x lists users %v, but the tables of spaces %v point to it", l.Base(), users, got)
		}
		for _, mm := range got {
			if !slices.Contains(users, uint16(mm)) {
				return fmt.Errorf("leaf at %#x lists users %v, but space %d's table points to it", l.Base(), users, mm)
			}
		}
	}
	return nil
}

// block checks the folded block that starts at entry s.
//
// +checklocks:l.mu
func (c *checker) block(l *pte.Leaf, s int, addr Addr) error {
	first := l.GetRaw(s)
	head, order, ok := c.a.PageFolio(first.PFN())
	if !ok || order < c.geo.ContOrder || first.PFN()%folio.PFN(c.geo.ContPTEs) != 0 || first.PFN() < head {
		return fmt.Errorf("folded block at %#x maps pfn %#x: not aligned, or not inside one folio", uint64(addr), uint64(first.PFN()))
	}
	for k := 1; k < c.geo.ContPTEs; k++ {
		e := l.GetRaw(s + k)
		if !e.Cont() || !pte.SameMapping(e, first.Advance(k)) {
			return fmt.Errorf("folded block at %#x is not uniform: entry %d is %v after %v", uint64(addr), k, e, first)
		}
	}
	return nil
}

// checkProtOf checks an entry against its region's protection.
func checkProtOf(r region, e pte.PTE, addr Addr) error {
	switch {
	case !r.prot.readable() && !e.ProtNone():
		return fmt.Errorf("entry at %#x (%v) allows access in a PROT_NONE region", uint64(addr), e)
	case r.prot.readable() && e.ProtNone():
		return fmt.Errorf("entry at %#x (%v) is PROT_NONE in a %v region", uint64(addr), e, r.prot)
	case e.Write() && !r.prot.writable():
		return fmt.Errorf("entry at %#x (%v) is writable in a %v region", uint64(addr), e, r.prot)
	}
	return nil
}

// folios2 compares every folio's metadata with what the tables hold.
func (c *checker) folios2() error {
	var err error
	var extra, pinned int64 // references that are neither mappings nor pins; pins
	c.a.ForEachFolio(func(head folio.PFN, order int) bool {
		if order > 0 && c.a.FolioDeferred(head) && !c.queued[head] && c.a.FolioMapcount(head) > 0 {
			err = fmt.Errorf("folio %#x (order %d) is marked for the deferred split but not queued: it is never split", uint64(head), order)
			return false
		}
		u := c.folios[head]
		if u == nil {
			u = &folioUse{}
		}
		nr := 1 << order
		mapc, entire, ref, pins := c.a.FolioMapcount(head), c.a.FolioEntireMapcount(head), c.a.FolioRef(head), c.a.FolioPincount(head)
		switch {
		case mapc != u.maps:
			err = fmt.Errorf("folio %#x (order %d): mapcount %d, the tables map it %d times", uint64(head), order, mapc, u.maps)
		case entire != u.entire:
			err = fmt.Errorf("folio %#x (order %d): entire mapcount %d, %d huge entries map it", uint64(head), order, entire, u.entire)
		case ref < mapc+pins:
			err = fmt.Errorf("folio %#x (order %d): refcount %d below mapcount %d + pincount %d", uint64(head), order, ref, mapc, pins)
		}
		if err != nil {
			return false
		}
		extra += int64(ref - mapc - pins)
		pinned += int64(pins)
		if order > 0 {
			if err = checkOwners(c.a, head, order, u); err != nil {
				return false
			}
		}
		for k := range nr {
			if c.a.PageAnonExclusive(head+folio.PFN(k)) && c.pageMaps[int(head)+k] > 1 {
				err = fmt.Errorf("page %#x is AnonExclusive but mapped %d times", uint64(head)+uint64(k), c.pageMaps[int(head)+k])
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if !folio.ExactLedger {
		return nil // the ledger does not count them in this build: see folio.ExactLedger
	}
	pins, gets, _ := c.a.Ledger()
	if pinned != pins {
		return fmt.Errorf("folios hold %d pins; %d are outstanding (a leaked or lost pin)", pinned, pins)
	}
	if extra != gets {
		return fmt.Errorf("folios hold %d references that are neither mappings nor pins; %d plain references are outstanding (a leak or a lost reference)", extra, gets)
	}
	return nil
}

// checkOwners compares a large folio's owner tracking with the tables. The
// tracking (the kernel's CONFIG_MM_ID) may undercount a space, one that
// mapped pages while both slots were taken and then took a freed slot, but
// never overcounts; and "not shared" must be exact: one tracked space maps
// every mapping. Reuse and the deferred split rely on exactly these two.
func checkOwners(a *folio.Arena, head folio.PFN, order int, u *folioUse) error {
	ids, counts, shared := a.FolioOwners(head)
	for k := range 2 {
		if counts[k] > u.perMM[ids[k]] {
			return fmt.Errorf("folio %#x (order %d): owner tracking says space %d maps it %d times, its table only %d",
				uint64(head), order, ids[k], counts[k], u.perMM[ids[k]])
		}
	}
	if shared || u.maps == 0 {
		return nil
	}
	if len(u.perMM) > 1 {
		return fmt.Errorf("folio %#x (order %d): mapped by %d spaces but not marked maybe-shared", uint64(head), order, len(u.perMM))
	}
	for mm, n := range u.perMM {
		if !(ids[0] == mm && counts[0] == n) && !(ids[1] == mm && counts[1] == n) {
			return fmt.Errorf("folio %#x (order %d): not marked shared, but the owner tracking (%v, %v) does not give space %d its %d mappings",
				uint64(head), order, ids, counts, mm, n)
		}
	}
	return nil
}

// checkRegions checks that regions are non-empty, page-aligned, sorted and
// disjoint, with a valid protection.
func checkRegions(rs []region, ps uint64) error {
	for i, r := range rs {
		switch {
		case r.start == 0 || r.start >= r.end || r.end > vaLimit:
			return fmt.Errorf("region %v is empty or out of the address space", r)
		case uint64(r.start)%ps != 0 || uint64(r.end)%ps != 0:
			return fmt.Errorf("region %v is not page-aligned", r)
		case r.prot&^protMask != 0:
			return fmt.Errorf("region %v has protection bits %#x", r, uint8(r.prot))
		case i > 0 && rs[i-1].end > r.start:
			return fmt.Errorf("regions %v and %v overlap or are out of order", rs[i-1], r)
		}
	}
	return nil
}
