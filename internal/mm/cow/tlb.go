package cow

import (
	"sync/atomic"
	"unsafe"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// A software TLB caches, per directory slot (2 MiB with 4 KiB pages), where
// the slot's translations are: the leaf that maps it, or the directory slot
// whose huge entry does, with the TLB generation read when it was filled
// (pte.Leaf.TLBGen, pte.Dir.TLBGen). The entries themselves are read live
// at each access, so adding a mapping or a permission needs no flush; every
// change that removes or replaces a mapping, takes a permission away, or
// detaches or shares a leaf bumps the generation after it (the pte
// primitives do it), and so invalidates the cached slot. The granularity is
// the slot: a copy-on-write fault in one 2 MiB range does not disturb any
// other range's translations.
//
// Reads through a translation take no reference and write nothing shared
// (a seqlock read, read_seqbegin/read_seqretry): load the generation, check
// it is the cached one, read the entry, copy the bytes, fence, load the
// generation again. The page may have been unmapped, freed and reused by
// someone else meanwhile; then the generation moved (the bump comes before
// any free) and the copy is thrown away. The memory stays mapped meanwhile
// because the arena cannot close while a reader may still read it
// (Accessors count as users of the arena; Space.ReadAt runs in a section
// that Close waits for).
//
// Writes take no reference either. They run in a lockless section of the
// space, entered before the generation is checked, and every event that
// could free a page a writer still writes waits for the sections that
// began before it: Fork, Close, Protect, WriteProtect and Collapse quiesce
// the space (wpSeq odd, drain); a zap calls Synchronize between clearing
// the entries and dropping their references (zapLeafLocked). Copy-on-write
// replaces read-only entries only, which no writer uses. So a write lands
// in a page this space maps writable and exclusive at some instant of the
// section, wholly before any Fork that follows (a section ends on a page
// boundary).

// xlate is one cached slot translation: a TLB entry. A hit loads the
// entry through ents and validates through genp, with no walk.
type xlate struct {
	slot uint64         // the slot's address >> leafShift, plus one; 0: empty
	gen  uint64         // the generation the translation is valid for
	genp *atomic.Uint64 // the generation word: the leaf's, or the directory slot's
	ents *atomic.Uint64 // the leaf's first entry word, or the slot's huge entry word
	leaf *pte.Leaf      // the leaf that maps the slot; nil: a huge entry maps it
}

// tlbEntries is the size of an Accessor's TLB: direct-mapped by slot, 128
// slots (256 MiB with 4 KiB pages) before two addresses collide.
const tlbEntries = 128

// slotOf returns the TLB key of addr's slot.
func (s *Space) slotOf(addr Addr) uint64 { return uint64(addr)>>s.leafShift + 1 }

// fill translates addr's slot into t (a TLB refill) and reports whether the
// slot maps anything; if not, the caller faults. The generation is read
// before what it covers: a flush comes after the change it is for, so if
// the walk sees the bump it sees the change.
func (s *Space) fill(t *xlate, addr Addr) bool {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return false
	}
	di := d.Index(uint64(addr))
	for {
		if d.Huge(di).Present() {
			g := d.TLBGen(di)
			if !d.Huge(di).Present() {
				continue // split or cleared meanwhile
			}
			*t = xlate{slot: s.slotOf(addr), gen: g, genp: d.TLBGenWord(di), ents: d.HugeWord(di)}
			return true
		}
		l := d.Leaf(di)
		if l == nil {
			return false
		}
		g := l.TLBGen()
		if d.Leaf(di) != l {
			continue // replaced meanwhile
		}
		*t = xlate{slot: s.slotOf(addr), gen: g, genp: l.TLBGenWord(), ents: &l.EntryWords()[0], leaf: l}
		return true
	}
}

// genNow loads the current generation of t's translation.
func (t *xlate) genNow() uint64 { return t.genp.Load() }

// pteAt loads the entry that maps page i of t's slot (i < TableEntries),
// live: a leaf's entry i, or the huge entry advanced to page i.
func (t *xlate) pteAt(i uint64) pte.PTE {
	if t.leaf == nil {
		return pte.PTE(t.ents.Load()).Advance(int(i))
	}
	return pte.PTE((*atomic.Uint64)(unsafe.Add(unsafe.Pointer(t.ents), i*8)).Load())
}

// entry returns the entry that maps addr through t, read live, and how many
// pages from it on are mapped alike as consecutive pages of one folio, at
// most max (a huge entry's rest of the slot, a leaf's run). It returns none
// when the caller must take the slow path. A shared leaf is read-only to
// every user, whatever its entries say: for a write it returns none.
func (s *Space) entry(t *xlate, addr Addr, max int, write bool) (pte.PTE, int) {
	i := int(uint64(addr)>>s.geo.PageShift) & (s.geo.TableEntries - 1)
	if t.leaf == nil {
		h := pte.PTE(t.ents.Load())
		if !h.Present() {
			return 0, 0
		}
		return h.Advance(i), min(max, s.geo.TableEntries-i)
	}
	l := t.leaf
	if write && l.Shared() {
		return 0, 0
	}
	e := l.GetRaw(i)
	if !e.Present() || e.Zero() {
		return e, 1
	}
	n := 1
	for n < max && i+n < l.Len() && pte.SameMapping(l.GetRaw(i+n), e.Advance(n)) {
		n++
	}
	return e, n
}
