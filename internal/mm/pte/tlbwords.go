package pte

import "sync/atomic"

// The words a software TLB loads directly on its fast path (cow's
// Accessor): a translation keeps pointers to its generation word and to
// its entries, so that a hit costs loads through them and no walk. They
// are for loading only: every store goes through the primitives, which
// keep the entries, the counts and the generations consistent.

// TLBGenWord returns the leaf's TLB generation word (see TLBGen).
func (l *Leaf) TLBGenWord() *atomic.Uint64 { return &l.tlbGen }

// EntryWords returns the leaf's entry words, indexed as Get is: entry i is
// EntryWords()[i], as GetRaw returns it.
//
// +checklocksignore: loads only, which tolerate a racy value (GetRaw).
func (l *Leaf) EntryWords() []atomic.Uint64 { return l.ptes }

// TLBGenWord returns slot i's TLB generation word (see TLBGen).
func (d *Dir) TLBGenWord(i int) *atomic.Uint64 { return &d.tlbGen[i] }

// HugeWord returns slot i's huge-entry word (see Huge).
func (d *Dir) HugeWord(i int) *atomic.Uint64 { return d.hugeEntry(i) }
