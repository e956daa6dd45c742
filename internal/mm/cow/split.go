package cow

import (
	"slices"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// SplitDeferred splits the large folios that were left partly mapped
// (queued by partial unmaps, DontNeed and COW) and frees their unmapped
// pages; it returns how many pages it freed (deferred_split_scan). The fault
// path runs it on its own when the arena is out of memory; call it when you
// know large folios were partly unmapped and want the memory back now. It
// works on the whole arena the space belongs to.
func (s *Space) SplitDeferred() int { return s.as.splitDeferred() }

// SplitDeferred is Space.SplitDeferred for an arena, whichever of its spaces
// queued the folios.
func SplitDeferred(a *folio.Arena) int { return stateOf(a).splitDeferred() }

// splitDeferred processes the queue. Folios that cannot be split now (pinned,
// referenced, shared by more spaces than the owner tracking names, mapped
// somewhere the recorded address does not lead) stay queued; folios that
// were freed, remapped whole, or are mapped by a huge entry leave it.
//
// Preconditions: the caller holds no map lock (it takes those of the spaces
// that map each folio, in mm id order).
func (as *arenaState) splitDeferred() (freed int) {
	as.splitMu.Lock()
	defer as.splitMu.Unlock()
	as.mu.Lock()
	queue := as.deferred
	as.deferred = nil
	as.mu.Unlock()
	var keep []deferredFolio
	moved := &movedIndex{queued: map[folio.PFN]bool{}}
	for _, q := range queue {
		moved.queued[q.head] = true
	}
	for _, q := range queue {
		n, retry := as.trySplit(q, moved)
		freed += n
		if retry {
			keep = append(keep, q)
		}
	}
	if len(keep) > 0 {
		as.mu.Lock()
		if len(as.spaces) > 0 {
			as.deferred = append(as.deferred, keep...)
		}
		as.mu.Unlock()
	}
	return freed
}

// owner is a space that maps a queued folio, with how many of its pages
// the owner tracking says it maps.
type owner struct {
	s     *Space
	count int
}

// trySplit splits one queued folio, returning the pages freed and whether to
// keep it queued.
//
// +checklocksignore: it locks the owners' map locks in a loop, in mm id order.
func (as *arenaState) trySplit(q deferredFolio, moved *movedIndex) (freed int, retry bool) {
	a := as.a
	// Take a reference before reading anything of the folio: a queued folio
	// may have been freed since (its metadata is then free-list links) or
	// freed and reallocated (it then lost its deferred mark).
	head, ok := a.FolioTryGet(q.head)
	if !ok {
		return 0, false
	}
	testhook.Run(testhook.SplitAfterGrab)
	held := true
	defer func() {
		if held {
			a.FolioPut(head, 1)
		}
	}()
	if head != q.head || !a.FolioDeferred(head) {
		return 0, false
	}
	if a.FolioEntireMapcount(q.head) > 0 {
		a.FolioClearDeferred(q.head) // mapped whole somewhere: not partly mapped
		return 0, false
	}
	ids, counts, _ := a.FolioOwners(q.head)
	if counts[0]+counts[1] != a.FolioMapcount(q.head) {
		return 0, true // spaces the owner tracking does not name: later
	}
	var owners []owner
	for k := range 2 {
		if counts[k] == 0 {
			continue
		}
		s := as.space(ids[k])
		if s == nil {
			return 0, true
		}
		owners = append(owners, owner{s, counts[k]})
	}
	if len(owners) == 0 {
		return 0, true // unmapped but still referenced (pinned): later
	}
	slices.SortFunc(owners, func(x, y owner) int { return int(x.s.mm) - int(y.s.mm) })
	for _, o := range owners {
		o.s.mapLock.Lock()
		o.s.quiesceLocked()
	}
	defer func() {
		for _, o := range owners {
			o.s.unquiesce()
			o.s.mapLock.Unlock()
		}
	}()
	order := a.FolioOrder(q.head)
	nr := 1 << order
	// Nothing can map or unmap the folio now: recheck it is still queued,
	// then find every mapping. Each owner maps it (where we can see) at the
	// recorded address: a fork keeps addresses.
	if !a.FolioDeferred(q.head) {
		return 0, false
	}
	mapped := make([]int, nr)
	var where []folioMapping
	total := 0
	for _, o := range owners {
		if o.s.closed.Load() {
			return 0, true
		}
		found, shared := o.s.findFolioMappings(q.head, nr, q.addr, mapped, &where)
		if !shared && found != o.count && a.FolioRef(q.head) == a.FolioMapcount(q.head)+1 {
			// Moved since it was queued (Remap), and nothing holds it
			// that would stop the split anyway: look everywhere, the
			// rmap walk we have no rmap for.
			where = where[:0]
			for k := range mapped {
				mapped[k] = 0
			}
			total = 0
			for _, o2 := range owners {
				n, sh := moved.lookup(o2.s, q.head, nr, mapped, &where)
				shared = shared || sh
				total += n
			}
			if shared || total != a.FolioMapcount(q.head) {
				return 0, true
			}
			break
		}
		if shared || found != o.count {
			return 0, true // mapped through a shared leaf, or held: later
		}
		total += found
	}
	if total != a.FolioMapcount(q.head) {
		return 0, true
	}
	if !slices.Contains(mapped, 0) {
		// Every page is still mapped by someone: a split would free nothing
		// and only cost the folio its contpte blocks. Unmark it, so that the
		// next partial unmap queues it again.
		a.FolioClearDeferred(q.head)
		return 0, false
	}
	// Our own reference is the one allowed beyond the mappings; the freeze
	// consumes it.
	if !a.FolioRefFreeze(q.head, total+1) {
		return 0, true // pinned, got, or a copy in flight: later
	}
	held = false
	for _, m := range where {
		m.s.unfoldAt(m.va, q.head, nr)
	}
	freed = a.FolioSplit(q.head, func(i int) int { return mapped[i] })
	if s := as.space(q.mm); s != nil {
		s.cnt.split[order].Add(1)
	}
	return freed, false
}

// folioMapping is where a space maps a page of a folio being split.
type folioMapping struct {
	s  *Space
	va uint64
}

// findFolioMappings counts, for each page of the folio at head, whether s
// maps it at its natural place relative to addr, adding to mapped and
// appending where to where, and returns how many it found, and whether one
// is in a shared leaf (other spaces see it too, and they are not locked:
// the split must wait).
//
// Preconditions: s.mapLock is held for writing.
// +checklocks:s.mapLock
func (s *Space) findFolioMappings(head folio.PFN, nr int, addr Addr, mapped []int, where *[]folioMapping) (found int, shared bool) {
	for k := range nr {
		va := uint64(addr) + uint64(k)*s.ps
		e, sh, ok := s.entryAt(va)
		if ok && e.Present() && !e.Zero() && e.PFN() == head+folio.PFN(k) {
			mapped[k]++
			*where = append(*where, folioMapping{s, va})
			found++
			shared = shared || sh
		}
	}
	return found, shared
}

// movedIndex finds the mappings of queued folios that moved (Remap) since
// they were queued, for one pass of the deferred split: the rmap walk we
// have no rmap for. The first folio that needs it in a space walks that
// space's whole table once and indexes every page of every queued folio it
// maps; the other folios of the pass look up the index, so a pass costs
// one walk per space, not one per folio.
type movedIndex struct {
	queued map[folio.PFN]bool // the heads of the pass's queue
	spaces map[*Space]map[folio.PFN][]movedPage
}

// movedPage is where a space maps a page of a queued folio.
type movedPage struct {
	va     uint64
	shared bool // through a leaf shared with other spaces
}

// lookup adds s's mappings of the folio at head (nr pages) to mapped and
// where, walking s's table if this pass has not yet, and returns how many
// it found and whether one is through a shared leaf.
//
// Preconditions: s.mapLock is held for writing.
// +checklocks:s.mapLock
func (m *movedIndex) lookup(s *Space, head folio.PFN, nr int, mapped []int, where *[]folioMapping) (found int, shared bool) {
	idx, ok := m.spaces[s]
	if !ok {
		idx = s.indexQueuedPages(m.queued)
		if m.spaces == nil {
			m.spaces = map[*Space]map[folio.PFN][]movedPage{}
		}
		m.spaces[s] = idx
	}
	for k := range nr {
		for _, p := range idx[head+folio.PFN(k)] {
			mapped[k]++
			*where = append(*where, folioMapping{s, p.va})
			found++
			shared = shared || p.shared
		}
	}
	return found, shared
}

// indexQueuedPages walks s's whole table and returns where it maps each
// page of the folios whose heads are in queued.
//
// Preconditions: s.mapLock is held for writing.
// +checklocks:s.mapLock
func (s *Space) indexQueuedPages(queued map[folio.PFN]bool) map[folio.PFN][]movedPage {
	idx := map[folio.PFN][]movedPage{}
	for it := s.slots(0, vaLimit); it.next(); {
		l := it.d.Leaf(it.di)
		if l == nil {
			continue
		}
		l.Lock()
		for i := 0; i < l.Len(); {
			e := l.GetRaw(i)
			if !e.Present() || e.Zero() {
				i++
				continue
			}
			head, n := s.batchAt(l, i, l.Len(), e, anyFlags)
			if queued[head] {
				for k := range n {
					idx[e.PFN()+folio.PFN(k)] = append(idx[e.PFN()+folio.PFN(k)], movedPage{l.Addr(i + k), l.Shared()})
				}
			}
			i += n
		}
		l.Unlock()
	}
	return idx
}

// entryAt returns the PTE that maps va (not a huge entry) and whether its
// leaf is shared.
//
// +checklocks:s.mapLock
func (s *Space) entryAt(va uint64) (e pte.PTE, shared, ok bool) {
	d := s.table.Dir(va)
	if d == nil {
		return 0, false, false
	}
	l := d.Leaf(d.Index(va))
	if l == nil {
		return 0, false, false
	}
	l.Lock()
	defer l.Unlock()
	return l.GetRaw(l.Index(va)), l.Shared(), true
}

// unfoldAt unfolds the contpte block that maps va in s if it maps a page of
// the folio: after the split it would span folios.
//
// Preconditions: s.mapLock is held for writing.
func (s *Space) unfoldAt(va uint64, head folio.PFN, nr int) {
	d := s.table.Dir(va)
	if d == nil {
		return
	}
	if l := d.Leaf(d.Index(va)); l != nil {
		l.Lock()
		if e := l.GetRaw(l.Index(va)); e.Cont() && e.PFN() >= head && e.PFN() < head+folio.PFN(nr) {
			l.Unfold(l.Index(va))
		}
		l.Unlock()
	}
}
