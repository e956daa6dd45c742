package pte

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// The entry operations of a leaf, with contiguous-PTE blocks handled as
// arm64 does (arch/arm64/mm/contpte.c). A block is ContPTEs aligned entries
// that map consecutive pages of one folio from a block-aligned PFN with the
// same permissions; every entry of such a block carries Cont, and the
// block's Dirty and Young are the OR of its entries'. Whole-block operations
// keep Cont; changing one entry's permission unfolds the block first.
//
// Every function here except GetLockless is called with the PTL held.

// entry returns entry i's word. Entries are read with and without the PTL
// (GetLockless) and written with it; the lock discipline is stated on each
// operation, not on the field.
//
// +checklocksignore
func (l *Leaf) entry(i int) *atomic.Uint64 { return &l.ptes[i] }

func (l *Leaf) raw(i int) PTE { return PTE(l.entry(i).Load()) }

func (l *Leaf) contPTEs() int { return l.t.geo.ContPTEs }

// blockStart returns the first entry of i's block.
func (l *Leaf) blockStart(i int) int { return i &^ (l.contPTEs() - 1) }

// GetRaw returns entry i as stored (__ptep_get): for a Cont entry its own
// access bits, not the block's.
//
// Preconditions: the PTL is held (or the caller tolerates a racy value).
func (l *Leaf) GetRaw(i int) PTE { return l.raw(i) }

// Get returns entry i (ptep_get); for a Cont entry, with Dirty and Young
// gathered over its block.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Get(i int) PTE {
	p := l.raw(i)
	if !p.Cont() {
		return p
	}
	s, n := l.blockStart(i), l.contPTEs()
	for k := s; k < s+n; k++ {
		p |= l.raw(k) & accessBits
	}
	return p
}

// GetLockless returns entry i without the PTL (ptep_get_lockless). A Cont
// entry is returned only once every entry of its block was read valid,
// Cont, with consecutive PFNs and the same permissions, with the access bits
// gathered: never a torn block. While the PTL holder is folding, unfolding
// or write-protecting the block it retries; during a fold or unfold the
// entry may read none (break-before-make), which sends the caller to its
// locked slow path.
func (l *Leaf) GetLockless(i int) PTE {
	n := l.contPTEs()
	for spin := 0; ; spin++ {
		orig := l.raw(i)
		if !orig.Cont() {
			return orig
		}
		s := l.blockStart(i)
		want := orig.Advance(s-i) &^ accessBits
		p := orig
		k := s
		for ; k < s+n; k++ {
			e := l.raw(k)
			if e&^accessBits != want || !e.Cont() {
				break
			}
			p |= e & accessBits
			want = want.Advance(1)
		}
		if k == s+n {
			return p
		}
		if spin&15 == 15 {
			runtime.Gosched()
		}
	}
}

// RunLockless returns how many entries from i on, at most max, map alike
// the consecutive pages that continue e, the entry GetLockless(i) returned
// (so at least 1). Without the PTL, like GetLockless: a contpte block is
// read once, whole, not once per entry.
func (l *Leaf) RunLockless(i, max int, e PTE) int {
	n := 1
	if e.Cont() {
		n = l.blockStart(i) + l.contPTEs() - i
	}
	for n < max && i+n < len(l.ptes) {
		f := l.GetLockless(i + n)
		if !SameMapping(f, e.Advance(n)) {
			break
		}
		if f.Cont() {
			n = l.blockStart(i+n) + l.contPTEs() - i
		} else {
			n++
		}
	}
	return min(n, max)
}

// RunRaw returns how many entries from i on, at most max, map the pages
// that continue e's with e's permission (SameMapping: access bits and Cont
// aside), each entry read once as stored, without the PTL: the run a
// lockless walker rechecks entry by entry after it grabbed the folio, as
// gup_fast rechecks each pte. 0 if entry i itself does not.
func (l *Leaf) RunRaw(i, max int, e PTE) int {
	ptes := l.ptes[i:min(i+max, len(l.ptes))]
	const ignore = accessBits | Cont
	want := e &^ ignore
	for n := range ptes {
		if PTE(ptes[n].Load())&^ignore != want {
			return n
		}
		want = want.Advance(1)
	}
	return len(ptes)
}

// SetPTEs maps nr consecutive pages of one folio at entries [i, i+nr),
// starting with p (set_ptes). The entries must be none. Blocks that the
// range covers whole, at a block-aligned PFN, are set with Cont; the
// caller guarantees the pages belong to one folio. A single entry (nr == 1)
// unfolds the block it lands in and then tries to fold it again if it is the
// block's last entry (contpte_try_fold's heuristic: the core fills blocks
// upwards).
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) SetPTEs(i int, p PTE, nr int) {
	l.changed()
	p = p.mkNonCont()
	l.noteWritten(p)
	if nr == 1 || p.Zero() {
		for k := range nr {
			l.Set(i+k, p)
		}
		return
	}
	n := l.contPTEs()
	for end := i + nr; i < end; {
		next := min(l.blockStart(i)+n, end)
		q := p
		if i == l.blockStart(i) && next-i == n && int(p.PFN())&(n-1) == 0 {
			q = p.mkCont()
		}
		for ; i < next; i++ {
			if old := l.raw(i); !old.None() {
				panic(fmt.Sprintf("pte: SetPTEs over entry %d that maps %v", i, old))
			}
			l.entry(i).Store(uint64(q))
			q = q.Advance(1)
			p = p.Advance(1)
			l.nr++
		}
	}
}

// Set sets entry i to p, which maps one page (set_ptes with nr == 1): the
// block around i is unfolded first if needed, and folded afterwards if i is
// its last entry and the block qualifies. p may be none to clear the entry.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Set(i int, p PTE) {
	l.changed()
	p = p.mkNonCont()
	l.noteWritten(p)
	old := l.raw(i)
	if old.Cont() {
		l.unfold(i)
	}
	l.entry(i).Store(uint64(p))
	if takesAwayEntry(old, p) {
		l.flushTLB()
	}
	switch {
	case old.None() && !p.None():
		l.nr++
	case !old.None() && p.None():
		l.nr--
	}
	if old.Zero() {
		l.zero--
	}
	if p.Zero() {
		l.zero++
	}
	l.tryFoldLast(i, p)
}

// tryFoldLast is contpte_try_fold: only attempt a fold when both the entry
// and its PFN are the last of a block.
// +checklocks:l.mu
func (l *Leaf) tryFoldLast(i int, p PTE) {
	n := l.contPTEs()
	if i&(n-1) == n-1 && int(p.PFN())&(n-1) == n-1 && p.Present() && !p.Zero() {
		l.TryFold(i)
	}
}

// TryFold folds the block around entry i if it qualifies
// (__contpte_try_fold): every entry valid, consecutive PFNs from a
// block-aligned PFN, the same permissions ignoring Dirty and Young, not the
// zero page, and all the pages in one folio. It reports whether the block is
// folded afterwards.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) TryFold(i int) bool {
	s, n := l.blockStart(i), l.contPTEs()
	first := l.raw(s)
	if first.Cont() {
		return true
	}
	if !first.Present() || first.Zero() || int(first.PFN())&(n-1) != 0 || l.t.folios == nil {
		return false
	}
	head, order, ok := l.t.folios.PageFolio(first.PFN())
	if !ok || order < l.t.geo.ContOrder || first.PFN() < head {
		return false // the block would span folios
	}
	want := first &^ accessBits
	for k := s + 1; k < s+n; k++ {
		want = want.Advance(1)
		if l.raw(k)&^accessBits != want {
			return false
		}
	}
	l.convert(s, true)
	return true
}

// Unfold unfolds the block around entry i if it is folded
// (contpte_try_unfold): before the folio under it is split, say.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Unfold(i int) {
	if l.raw(i).Cont() {
		l.unfold(i)
	}
}

// unfold turns the block around entry i back into n independent entries
// (contpte_try_unfold). Each keeps the block's gathered access bits.
// +checklocks:l.mu
func (l *Leaf) unfold(i int) { l.convert(l.blockStart(i), false) }

// convert repaints the block at s with or without Cont (contpte_convert):
// break-before-make, as the hardware requires; a lockless reader sees the
// block, or none, or the repainted block, never a mix that it would accept.
// +checklocks:l.mu
func (l *Leaf) convert(s int, fold bool) {
	l.changed()
	n := l.contPTEs()
	var access PTE
	var first PTE
	for k := s; k < s+n; k++ {
		old := PTE(l.entry(k).Swap(0))
		if k == s {
			first = old
		}
		access |= old & accessBits
	}
	p := (first | access).mkNonCont()
	if fold {
		p = p.mkCont()
	}
	for k := s; k < s+n; k++ {
		l.entry(k).Store(uint64(p))
		p = p.Advance(1)
	}
}

// unfoldPartial unfolds the blocks that [i, i+nr) covers only partly: the
// ragged first and last block (contpte_try_unfold_partial).
// +checklocks:l.mu
func (l *Leaf) unfoldPartial(i, nr int) {
	n := l.contPTEs()
	if s := l.blockStart(i); s != i && l.raw(i).Cont() {
		l.unfold(i)
	}
	if end := i + nr; end&(n-1) != 0 && l.raw(end-1).Cont() {
		l.unfold(end - 1)
	}
}

// takesAwayEntry reports whether replacing entry old by p removes a
// mapping, changes the page or takes a permission away: what a TLB must be
// flushed for.
func takesAwayEntry(old, p PTE) bool {
	return !old.None() && (p.None() || p.PFN() != old.PFN() || p.Zero() != old.Zero() ||
		old.Write() && !p.Write() || p.ProtNone() && !old.ProtNone())
}

// Clear clears entries [i, i+nr) (get_and_clear_full_ptes) and returns the
// first entry as it was, with the access bits of all of them gathered.
// Blocks the range covers whole are cleared without unfolding; partly
// covered ones are unfolded first.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) Clear(i, nr int) PTE {
	l.changed()
	l.unfoldPartial(i, nr)
	var first, access PTE
	for k := i; k < i+nr; k++ {
		old := PTE(l.entry(k).Swap(0))
		if k == i {
			first = old
		}
		if !old.None() {
			l.nr--
		}
		if old.Zero() {
			l.zero--
		}
		access |= old & accessBits
	}
	l.flushTLB()
	return first | access
}

// WrProtect makes entries [i, i+nr) read-only (wrprotect_ptes). Whole blocks
// keep Cont: their permission stays uniform; partly covered blocks are
// unfolded first.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) WrProtect(i, nr int) { l.ChangeProt(i, nr, 0, Write) }

// ChangeProt sets the permission bits in set and clears those in clear
// (Write and ProtNone only) on the entries of [i, i+nr) that map something
// (change_pte_range). Whole blocks keep Cont, since they change uniformly;
// partly covered blocks are unfolded first. A lockless writer may be setting
// Dirty at the same time, hence the CAS.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) ChangeProt(i, nr int, set, clear PTE) {
	l.changed()
	set &= Write | ProtNone
	clear &= Write | ProtNone
	l.unfoldPartial(i, nr)
	for k := i; k < i+nr; k++ {
		e := l.entry(k)
		for {
			old := e.Load()
			if old == 0 || e.CompareAndSwap(old, old&^uint64(clear)|uint64(set)) {
				break
			}
		}
	}
	if takesAway(set, clear) {
		l.flushTLB()
	}
}

// CopyPTEs maps entries [i, i+nr) of dst as they are mapped in l, entry by
// entry: fork's copy (copy_present_ptes). dst's entries must be none. With
// wrprotect both sides end up read-only: a COW mapping. The child's entries
// are old, as the kernel makes them. Blocks that are folded in l and lie
// wholly in the range are copied folded and stay folded in l; only the
// ragged ends of the source are unfolded by the write-protect.
//
// It is the loop of Fork and of a shared leaf's unshare, one pass and one
// atomic per source entry: each is write-protected with an atomic AND that
// returns what it was (a lockless setter of access bits is not lost), and
// dst, a leaf no other goroutine can reach yet (Fork's child, an unshare's
// private copy, published afterwards by the store of the leaf pointer), is
// written with plain stores.
//
// +checklocks:l.mu
// +checklocks:dst.mu
func (l *Leaf) CopyPTEs(dst *Leaf, i, nr int, wrprotect bool) {
	dst.changed()
	if wrprotect {
		l.changed()
		l.unfoldPartial(i, nr)
	}
	n := l.contPTEs()
	for k := i; k < i+nr; k++ {
		var e PTE
		if wrprotect {
			e = PTE(l.entry(k).And(^uint64(Write))) &^ Write
		} else {
			e = l.raw(k)
		}
		if e.None() {
			continue
		}
		s := l.blockStart(k)
		if e.Cont() && (s < i || s+n > i+nr) {
			e = e.mkNonCont() // a block only partly copied is not a block in dst
		}
		if old := dst.raw(k); !old.None() {
			panic(fmt.Sprintf("pte: CopyPTEs over entry %d that maps %v", k, old))
		}
		dst.setUnpublished(k, e.MkOld())
		dst.noteWritten(e)
		dst.nr++
		if e.Zero() {
			dst.zero++
		}
	}
	if wrprotect {
		l.flushTLB()
	}
}

// setUnpublished stores entry k of a leaf no other goroutine can reach yet
// without an atomic (on amd64 an atomic store is a locked XCHG): the store
// that publishes the leaf orders it before any reader's loads.
func (l *Leaf) setUnpublished(k int, p PTE) {
	*(*uint64)(unsafe.Pointer(l.entry(k))) = uint64(p)
}

// SetAccessFlags adds entry's Write, Dirty and Young bits to entry i
// (ptep_set_access_flags) and reports whether anything changed. In a block,
// a change of the write bit unfolds it; access bits alone are set on every
// entry of the block (so that none of them faults again) without unfolding.
// Whether there is anything to do is decided per raw entry, not on the
// gathered view (the lesson of arm64 commit 97c5550b7631: a dirty sibling
// must not hide a still read-only entry).
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) SetAccessFlags(i int, entry PTE) bool {
	l.changed()
	add := uint64(entry & (Write | accessBits))
	l.noteWritten(entry)
	old := l.raw(i)
	if !old.Cont() {
		return l.entry(i).Or(add)&add != add
	}
	if old.Write() == entry.Write() {
		changed := false
		s, n := l.blockStart(i), l.contPTEs()
		for k := s; k < s+n; k++ {
			if l.entry(k).Or(add)&add != add {
				changed = true
			}
		}
		return changed
	}
	l.unfold(i)
	return l.entry(i).Or(add)&add != add
}

// ClearSoftDirty write-protects entries [i, i+nr) and clears their
// SoftDirty (clear_refs' clear_soft_dirty): the next write to each faults
// and marks it again. On a block SoftDirty is cleared on all its entries;
// the range is expected to cover whole blocks, as a walk that reads the
// gathered bits does.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) ClearSoftDirty(i, nr int) {
	l.ChangeProt(i, nr, 0, Write)
	l.ClearAccessFlags(i, nr, SoftDirty)
}

// ClearAccessFlags clears Dirty, Young and/or SoftDirty (as given in bits) on entries
// [i, i+nr); on a block they are cleared on all its entries, since they are
// the block's (contpte_clear_young_dirty_ptes). It reports whether any was
// set.
//
// Preconditions: the PTL is held.
// +checklocks:l.mu
func (l *Leaf) ClearAccessFlags(i, nr int, bits PTE) bool {
	l.changed()
	bits &= accessBits
	lo, hi := i, i+nr
	if l.raw(i).Cont() {
		lo = l.blockStart(i)
	}
	if l.raw(hi - 1).Cont() {
		hi = l.blockStart(hi-1) + l.contPTEs()
	}
	any := false
	for k := lo; k < hi; k++ {
		if l.entry(k).And(^uint64(bits))&uint64(bits) != 0 {
			any = true
		}
	}
	return any
}
