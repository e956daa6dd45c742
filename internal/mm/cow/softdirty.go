package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// The written mark (soft-dirty, fs/proc/task_mmu.c): an entry bit
// (pte.SoftDirty) that says the page may differ from the space's baseline
// image (baseline.go). A snapshot's delta carries exactly the pages so
// marked.
//
// Who marks: every path that makes an entry writable, so that a writable
// entry is always marked (Check verifies it). That is the invariant the
// rest depends on, because the writes that take no fault (WriteAt's and the
// Accessor's lockless stores, writes through a R/W pin) never touch an
// entry: they land only in pages mapped writable. A write fault marks the
// entry it serves (a new folio, a reuse, a copy); an unshare's copy keeps
// the old entry's mark; Protect's upgrade to writable leaves an unmarked
// page read-only (can_change_pte_writable's soft-dirty rule), so its next
// write faults and marks it; Remap marks what it moves (move_soft_dirty_pte).
// A contpte block and a huge entry are marked as a unit.
//
// Who clears: a snapshot's Fork (takeWrittenLocked), with the map lock held
// for writing and the space quiesced, so atomically with the snapshot's
// instant; and a Load, on the space it built (clearWrittenLocked). Clearing
// write-protects the entry (clear_soft_dirty), so the next write faults and
// marks it again, except on a pinned folio, whose entries keep their marks
// as clear_refs leaves a pinned page soft-dirty (pte_is_pinned): the pin may
// be writing it, with no fault to see. So a R/W pin counts as written for
// as long as it is held; a R/O pin keeps a mark the page already had.
//
// A leaf shared after a fork holds the marks of every space that uses it.
// Clearing them in place would clear them for those spaces too, so a space
// that clears a shared leaf first takes its own copy of it, unless the only
// other user is the snapshot being taken, which does not need them (the
// Fork returns the runs it found).

// appendSpan adds the n pages at addr to out, extending its last span if
// it ends there.
func (s *Space) appendSpan(out []Span, addr Addr, n int) []Span {
	if k := len(out) - 1; k >= 0 && out[k].Addr+Addr(uint64(out[k].Pages)*s.ps) == addr {
		out[k].Pages += n
		return out
	}
	return append(out, Span{addr, n})
}

// takeWrittenLocked appends the runs of pages marked written to out, in
// address order, and clears their marks (except on pinned folios).
// snapshot, if not nil, is the space being forked from s at this instant:
// a leaf it shares with s alone is cleared in place.
//
// Preconditions: mapLock is held for writing and the space is quiesced (no
// fault and no lockless write runs, so nothing marks meanwhile).
// +checklocks:s.mapLock
func (s *Space) takeWrittenLocked(snapshot *Space, out []Span) []Span {
	for it := s.slots(0, vaLimit); it.next(); {
		d, di := it.d, it.di
		if d.Huge(di).Present() {
			out = s.takeWrittenHuge(d, di, out)
			continue
		}
		if l := d.Leaf(di); l != nil && l.MaybeWritten() {
			out = s.takeWrittenLeaf(d, di, l, snapshot, out)
		}
	}
	return out
}

// takeWrittenHuge takes the mark of slot di's huge entry.
//
// +checklocks:s.mapLock
func (s *Space) takeWrittenHuge(d *pte.Dir, di int, out []Span) []Span {
	d.Lock()
	defer d.Unlock()
	h := d.Huge(di)
	if !h.Present() || !h.SoftDirty() {
		return out
	}
	out = s.appendSpan(out, Addr(d.Addr(di)), s.geo.TableEntries)
	if !s.a.FolioMaybeDMAPinned(h.PFN()) {
		d.ClearSoftDirtyHugeLocked(di)
	}
	return out
}

// takeWrittenLeaf takes the marks of slot di's leaf l, first taking this
// space's own copy of l if other spaces than snapshot use it and it holds
// a mark.
//
// Preconditions: s.mapLock is held.
// +checklocksignore: l is re-read after an unshare and locked in a loop,
// which checklocks cannot follow; every path unlocks the leaf it locked.
func (s *Space) takeWrittenLeaf(d *pte.Dir, di int, l *pte.Leaf, snapshot *Space, out []Span) []Span {
	for {
		l.Lock()
		if !s.anyWrittenLocked(l) {
			l.ClearMaybeWritten()
			l.Unlock()
			return out
		}
		if !sharedBeyond(l, s, snapshot) {
			break
		}
		l.Unlock()
		s.unshareLeaf(d, di, l)
		l = d.Leaf(di)
	}
	defer l.Unlock()
	kept := false
	run := -1 // first entry of the run of marks being cleared, or -1
	flush := func(end int) {
		if run >= 0 {
			l.ClearSoftDirty(run, end-run)
			run = -1
		}
	}
	for i := 0; i < l.Len(); {
		e, k := s.unitAt(l, i)
		if !e.Present() || e.Zero() || !e.SoftDirty() {
			flush(i)
			i += k
			continue
		}
		out = s.appendSpan(out, Addr(l.Addr(i)), k)
		head, _ := s.pageFolio(e.PFN())
		if s.a.FolioMaybeDMAPinned(head) {
			flush(i)
			kept = true
		} else if run < 0 {
			run = i
		}
		i += k
	}
	flush(l.Len())
	if !kept {
		l.ClearMaybeWritten()
	}
	return out
}

// unitAt returns entry i of l and the entries from i on that are marked as
// one unit with it: the rest of its contpte block, gathered, or itself.
//
// +checklocks:l.mu
func (s *Space) unitAt(l *pte.Leaf, i int) (pte.PTE, int) {
	e := l.GetRaw(i)
	if !e.Cont() {
		return e, 1
	}
	cont := s.geo.ContPTEs
	return l.Get(i), i&^(cont-1) + cont - i
}

// anyWrittenLocked reports whether an entry of l is marked written.
//
// +checklocks:l.mu
func (s *Space) anyWrittenLocked(l *pte.Leaf) bool {
	for i := range l.Len() {
		if e := l.GetRaw(i); e.SoftDirty() && e.Present() {
			return true
		}
	}
	return false
}

// sharedBeyond reports whether a space other than s and snapshot uses l.
//
// +checklocks:l.mu
func sharedBeyond(l *pte.Leaf, s, snapshot *Space) bool {
	for _, u := range l.Users() {
		if folio.MMID(u) != s.mm && (snapshot == nil || folio.MMID(u) != snapshot.mm) {
			return true
		}
	}
	return false
}

// anyWrittenTableLocked reports whether any entry of the space is marked
// written.
//
// +checklocksread:s.mapLock
func (s *Space) anyWrittenTableLocked() bool {
	for it := s.slots(0, vaLimit); it.next(); {
		if h := it.d.Huge(it.di); h.Present() {
			if h.SoftDirty() {
				return true
			}
			continue
		}
		l := it.d.Leaf(it.di)
		if l == nil || !l.MaybeWritten() {
			continue
		}
		l.Lock()
		any := s.anyWrittenLocked(l)
		l.Unlock()
		if any {
			return true
		}
	}
	return false
}

// markWritten marks the pages mapped in [start, end) written again (a
// failed snapshot gives back what it took). A leaf shared with other spaces
// is marked for them too, which only makes their next delta larger.
//
// Preconditions: mapLock is held (for reading suffices).
// +checklocksread:s.mapLock
func (s *Space) markWritten(start, end Addr) {
	for it := s.slots(start, end); it.next(); {
		d, di := it.d, it.di
		if d.Huge(di).Present() {
			d.Lock()
			if d.Huge(di).Present() {
				d.SetHugeAccessLocked(di, pte.SoftDirty)
			}
			d.Unlock()
			continue
		}
		s.markWrittenLeaf(d, di, it.lo, it.hi)
	}
}

// markWrittenLeaf marks the pages slot di's leaf maps in [lo, hi).
//
// +checklocksread:s.mapLock
func (s *Space) markWrittenLeaf(d *pte.Dir, di int, lo, hi uint64) {
	for {
		l := d.Leaf(di)
		if l == nil {
			return
		}
		if !relock(d, di, l) {
			l.Unlock() // replaced by an unshare meanwhile: mark the new one
			continue
		}
		for i := l.Index(lo); i <= l.Index(hi-1); i++ {
			if e := l.GetRaw(i); e.Present() && !e.Zero() {
				l.SetAccessFlags(i, e.MkSoftDirty()) // the same Write bit: no unfold
			}
		}
		l.Unlock()
		return
	}
}
