package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// On-demand fork (Zhao, Gong and Fonseca, EuroSys '21): Fork does not copy
// the PTEs of a leaf that lies wholly inside forkable regions; it installs
// the same leaf in the child, O(1) per leaf. A shared leaf is read-only to
// every space that uses it, whatever its entries say: no entry of it changes
// until a space takes a private copy (unshareLeaf), which is the eager
// fork's work for that one leaf, paid on the first write into it. Reads go
// through it untouched, so streaming a snapshot out copies nothing.
//
// Accounting: the folio mappings of a shared leaf are counted once, to its
// first user (pte.Leaf.Users()[0]), exactly as if only that space mapped
// them. The pages are mapped by every user, so no decision that depends on
// AnonExclusive or on "mapped only by this space" is ever taken through a
// shared leaf: writes, unshares, pins, mprotect upgrades and the deferred
// split all go through a private copy first. When the accounting user
// leaves (unshares or unmaps), the accounting moves to the next user, so
// that once a leaf is private again its user's owner tracking is exact.
//
// A leaf through which a page may be pinned (pte.Leaf.MaybePinned) is
// shared only after a check that none of its folios is pinned; otherwise
// Fork copies it eagerly, copying the pinned exclusive pages for the child.

// relock locks l and reports whether it is still slot di's leaf in d: not
// freed, and not replaced by an unshare of this space. The caller unlocks
// it either way.
//
// +checklocksacquire:l.mu
func relock(d *pte.Dir, di int, l *pte.Leaf) bool {
	l.Lock()
	return !l.Dead() && d.Leaf(di) == l
}

// unshareLeaf gives this space a private copy of slot di's leaf l if l is
// shared: the copy maps the same pages, each folio batch gaining one
// mapping and one reference per page, all pages losing AnonExclusive and
// both sides write-protected (a COW fork of one leaf, copy_pte_range). If
// this space was l's accounting user, the accounting of l's mappings moves
// to its next user. It does nothing if l is no longer in the slot or no
// longer shared.
//
// It is the first write into a leaf after a Fork, paid by a writer, so it
// is kept tight: each folio batch (folio_pte_batch; one entry for an order-0
// folio) costs one reference and one mapcount update, AnonExclusive is
// cleared a run of consecutive pages at a time, and when the accounting
// moves, the batch's new mappings are counted to the next user at once
// instead of to this space and then moved: the outcome is the same (this
// space's count unchanged, the next user's up by the batch), one update
// instead of three. Then one pass write-protects and copies the entries.
//
// Preconditions: mapLock is held (reading suffices); no PTL is held.
// +checklocksread:s.mapLock
func (s *Space) unshareLeaf(d *pte.Dir, di int, l *pte.Leaf) {
	d.Lock()
	defer d.Unlock()
	if d.Leaf(di) != l {
		return
	}
	l.Lock()
	defer l.Unlock()
	if !l.Shared() {
		return
	}
	cp := d.NewLeaf(di)
	cp.Lock()
	// Whose count the new mappings raise: this space's, unless it hands
	// the accounting of l's mappings on (ReplaceLeafLocked below).
	acct := s.mm
	moving := folio.MMID(l.Users()[0]) == s.mm
	if moving {
		acct = folio.MMID(l.Users()[1])
	}
	// Account the folio batches, then write-protect and copy the whole
	// leaf in one pass (its blocks stay folded): the pages are now mapped
	// twice.
	n := l.Len()
	var pae pageRun
	for i := 0; i < n; {
		e := l.GetRaw(i)
		if e.None() || e.Zero() {
			i++
			continue
		}
		head, order := s.pageFolio(e.PFN())
		k := 1
		if order > 0 {
			left := int(head + folio.PFN(1)<<order - e.PFN())
			k, _ = l.Batch(i, min(n-i, left), pte.Dirty|pte.Young)
		}
		s.a.FolioGet(head, k)
		s.a.FolioAddMapcount(head, k, acct)
		pae.add(s.a, e.PFN(), k)
		i += k
	}
	pae.flush(s.a)
	l.CopyPTEs(cp, 0, n, true)
	if d.ReplaceLeafLocked(di, l, cp) != moving {
		panic("cow: the accounting user of a shared leaf changed under its PTL")
	}
	cp.Unlock()
	s.cnt.leafUnshares.Add(1)
}

// pageRun gathers consecutive pages whose AnonExclusive is to be cleared,
// so that a leaf of order-0 folios allocated together (fault-around hands
// out consecutive pages) costs one bitmap update per run, not per page.
type pageRun struct {
	pfn folio.PFN
	n   int
}

// add appends n pages from pfn, clearing the run so far if they do not
// continue it.
func (r *pageRun) add(a *folio.Arena, pfn folio.PFN, n int) {
	if r.n > 0 && pfn == r.pfn+folio.PFN(r.n) {
		r.n += n
		return
	}
	r.flush(a)
	r.pfn, r.n = pfn, n
}

// flush clears AnonExclusive on the pages of the run, if any is set.
func (r *pageRun) flush(a *folio.Arena) {
	if r.n > 0 && a.AnyPageAnonExclusive(r.pfn, r.n) {
		a.ClearPageAnonExclusive(r.pfn, r.n)
	}
	r.n = 0
}

// dropSharedLeaf takes shared leaf l out of slot di of this space, leaving
// it to its other users: a zap of a whole slot. It reports false, doing
// nothing, if l is not shared (the caller zaps it) or no longer in the slot.
//
// +checklocksread:s.mapLock
func (s *Space) dropSharedLeaf(d *pte.Dir, di int, l *pte.Leaf) bool {
	d.Lock()
	defer d.Unlock()
	l.Lock()
	defer l.Unlock()
	if d.Leaf(di) != l || !l.Shared() {
		return false
	}
	pages := l.Pages()
	// Quiesced (wpSeq odd: only the holder of the map lock for writing can
	// have made it so), no reader of this space is in flight, as in Close.
	s.wrProtectLeft(l, s.closed.Load() || s.wpSeq.Load()&1 != 0)
	if d.UnlinkLeafLocked(di, l) {
		s.moveAccounting(l, folio.MMID(l.Users()[0]))
	}
	s.cnt.resident.Add(-int64(pages))
	return true
}

// wrProtectLeft write-protects the leaf that this space is leaving to its
// other users and clears AnonExclusive on its pages, as an eager fork would
// have. Readers of this space (lockless, or locked and copying after the
// PTL is dropped) may hold references to pages they found through l: with
// the pages no longer exclusive, the next writer sees those references and
// copies, instead of writing under the reader.
//
// A Close (closing), or any zap of a space quiesced with its map lock held
// for writing (ResetTo, a snapshot's drop-behind), has no reader of its own
// in flight. What it must still protect is
// a reference that outlives it, a Get taken before the Fork (cow.c's
// "vmsplice() before fork(), unmap in parent", with exit for munmap): only
// the folios whose references exceed their mappings are write-protected, so
// that the remaining user's writes to the rest go on without a fault; and
// only leaves through which a Get was ever taken (pte.Leaf.MaybeHeld) are
// walked, so that a child that never handed out a Get closes in O(1) per
// leaf.
//
// Preconditions: l's PTL is held.
// +checklocks:l.mu
func (s *Space) wrProtectLeft(l *pte.Leaf, closing bool) {
	if closing && !l.MaybeHeld() {
		return // no Get was ever taken through it: nothing to find
	}
	for i := 0; i < l.Len(); {
		e := l.GetRaw(i)
		if e.None() || e.Zero() {
			i++
			continue
		}
		head, n := s.batchAt(l, i, l.Len(), e, anyFlags)
		if !closing || s.a.FolioRef(head) > s.a.FolioMapcount(head) {
			l.WrProtect(i, n)
			s.a.ClearPageAnonExclusive(e.PFN(), n)
		}
		i += n
	}
}

// leafFolioBatches calls fn for each batch of l's entries that map
// consecutive pages of one folio (none entries and the zero page left out),
// with the batch's first entry, its first page, its folio and its length,
// until fn returns false. It reports whether fn never did.
//
// Preconditions: l's PTL is held.
// +checklocks:l.mu
func (s *Space) leafFolioBatches(l *pte.Leaf, fn func(i int, pfn, head folio.PFN, n int) bool) bool {
	for i := 0; i < l.Len(); {
		e := l.GetRaw(i)
		if e.None() || e.Zero() {
			i++
			continue
		}
		head, n := s.batchAt(l, i, l.Len(), e, anyFlags)
		if !fn(i, e.PFN(), head, n) {
			return false
		}
		i += n
	}
	return true
}

// moveAccounting moves the accounting of l's folio mappings from this
// space to space to: one mapcount update per folio batch each way. An
// order-0 folio's mapcount names no space, so its batches have nothing to
// move.
//
// Preconditions: l's PTL is held.
// +checklocks:l.mu
func (s *Space) moveAccounting(l *pte.Leaf, to folio.MMID) {
	s.leafFolioBatches(l, func(_ int, _, head folio.PFN, n int) bool {
		if s.a.FolioOrder(head) == 0 {
			return true
		}
		s.a.FolioAddMapcount(head, n, to)
		s.a.FolioSubMapcount(head, n, s.mm)
		return true
	})
}

// shareLeaf installs the parent's leaf l in the child (on-demand fork) and
// reports true, or reports false if l may hold a pinned page, in which case
// the caller copies it eagerly.
//
// Preconditions: s.mapLock is held for writing and the space is quiesced
// (no pin can land meanwhile); child is not yet visible.
// +checklocks:s.mapLock
func (s *Space) shareLeaf(child *Space, l *pte.Leaf) bool {
	cd := child.table.DirAlloc(l.Base())
	cd.Lock()
	defer cd.Unlock()
	l.Lock()
	defer l.Unlock()
	if l.MaybePinned() {
		if s.leafHasPinned(l) {
			return false
		}
		l.ClearMaybePinned()
	}
	cd.InstallLeafLocked(cd.Index(l.Base()), l)
	child.cnt.resident.Add(int64(l.Pages()))
	return true
}

// leafHasPinned reports whether a folio l maps is pinned.
//
// +checklocks:l.mu
func (s *Space) leafHasPinned(l *pte.Leaf) bool {
	return !s.leafFolioBatches(l, func(_ int, _, head folio.PFN, _ int) bool {
		return !s.a.FolioMaybeDMAPinned(head)
	})
}
