package pte

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// The soft-dirty bit: a modifier pair, an access bit (gathered over a
// block, ignored by SameMapping), and the leaf's maybe-written hint that
// every store of a marked entry sets.

func TestSoftDirtyBit(t *testing.T) {
	p := Mk(7, Present|Write)
	if p.SoftDirty() || !p.MkSoftDirty().SoftDirty() || p.MkSoftDirty().ClearSoftDirty() != p {
		t.Fatal("SoftDirty modifiers do not round-trip")
	}
	if !SameMapping(p, p.MkSoftDirty()) {
		t.Fatal("SameMapping must ignore SoftDirty: it does not change what is mapped")
	}
	if s := p.MkSoftDirty().String(); s != "pfn 0x7 P W S" {
		t.Fatalf("String() = %q", s)
	}
}

func TestSoftDirtyGatheredOverBlock(t *testing.T) {
	l := testLeaf(t, 4096, 4)
	n := l.contPTEs()
	l.Lock()
	defer l.Unlock()
	l.SetPTEs(0, Mk(0, Present), n)
	if !l.raw(0).Cont() {
		t.Fatal("block not folded")
	}
	if l.MaybeWritten() {
		t.Fatal("hint set by a store of entries not marked written")
	}
	// One entry marked: the block reads marked through every entry.
	l.entry(3).Or(uint64(SoftDirty))
	for k := range n {
		if !l.Get(k).SoftDirty() || !l.GetLockless(k).SoftDirty() {
			t.Fatalf("entry %d does not read the block's SoftDirty", k)
		}
	}
	l.ClearSoftDirty(0, n)
	for k := range n {
		if e := l.Get(k); e.SoftDirty() || e.Write() || !e.Cont() {
			t.Fatalf("after ClearSoftDirty entry %d is %v: want read-only, clean, still folded", k, e)
		}
	}
}

func TestMaybeWrittenHint(t *testing.T) {
	for _, c := range []struct {
		name  string
		store func(l *Leaf)
	}{
		{"Set", func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			l.Set(5, Mk(5, Present|Write|SoftDirty))
		}},
		{"SetPTEs", func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			l.SetPTEs(16, Mk(16, Present|Write|SoftDirty), 16)
		}},
		{"SetAccessFlags", func(l *Leaf) {
			l.Lock()
			defer l.Unlock()
			l.Set(5, Mk(5, Present))
			l.SetAccessFlags(5, Mk(5, Present|Write|SoftDirty))
		}},
		{"CopyPTEs", func(l *Leaf) {
			src := testLeaf(t, 4096, 4)
			src.Lock()
			defer src.Unlock()
			l.Lock()
			defer l.Unlock()
			src.Set(9, Mk(9, Present|SoftDirty))
			src.CopyPTEs(l, 0, l.Len(), false)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := testLeaf(t, 4096, 4)
			c.store(l) // locks the leaf itself
			if !l.MaybeWritten() {
				t.Fatal("a store of a marked entry left the hint clear")
			}
			l.Lock()
			l.ClearMaybeWritten()
			l.Unlock()
			if l.MaybeWritten() {
				t.Fatal("ClearMaybeWritten")
			}
		})
	}
}

func TestClearSoftDirtyHuge(t *testing.T) {
	tb := New(geometry(t, 4096), uniformFolios(9), 1)
	d := tb.DirAlloc(0)
	d.Lock()
	defer d.Unlock()
	if !d.SetHugeLocked(0, Mk(folio.PFN(512), Present|Write|SoftDirty)) {
		t.Fatal("SetHugeLocked")
	}
	g := d.TLBGen(0)
	d.ClearSoftDirtyHugeLocked(0)
	if h := d.Huge(0); h.SoftDirty() || h.Write() || !h.Present() {
		t.Fatalf("huge entry after ClearSoftDirtyHugeLocked: %v", h)
	}
	if d.TLBGen(0) == g {
		t.Fatal("taking Write away did not flush the slot's TLB generation")
	}
	if !d.SetHugeAccessLocked(0, SoftDirty) || !d.Huge(0).SoftDirty() {
		t.Fatal("SetHugeAccessLocked does not mark a huge entry written")
	}
}

// TestModsCountsEveryChange: every primitive that stores an entry moves
// the leaf's modification count, which ResetTo relies on to skip a leaf
// nothing changed.
// +checklocksignore: the cases' closures run with both leaves locked.
func TestModsCountsEveryChange(t *testing.T) {
	l := testLeaf(t, 4096, 4)
	other := testLeaf(t, 4096, 4)
	l.Lock()
	defer l.Unlock()
	other.Lock()
	defer other.Unlock()
	n := l.contPTEs()
	for _, c := range []struct {
		name string
		op   func()
		leaf *Leaf
	}{
		{"SetPTEs", func() { l.SetPTEs(0, Mk(0, Present|Write), n) }, l},
		{"Set", func() { l.Set(2*n, Mk(100, Present)) }, l},
		{"SetAccessFlags", func() { l.SetAccessFlags(2*n, Mk(100, Present|Write)) }, l},
		{"ClearAccessFlags", func() { l.ClearAccessFlags(0, n, Young) }, l},
		{"ChangeProt", func() { l.ChangeProt(0, n, 0, Write) }, l},
		{"ClearSoftDirty", func() { l.ClearSoftDirty(0, n) }, l},
		{"Unfold", func() { l.Unfold(0) }, l},
		{"TryFold", func() { l.TryFold(0) }, l},
		{"CopyPTEs (destination)", func() { l.CopyPTEs(other, 0, n, false) }, other},
		{"CopyPTEs (source, write-protecting)", func() { l.CopyPTEs(other, 2*n, 1, true) }, l},
		{"Clear", func() { l.Clear(0, n) }, l},
	} {
		before := c.leaf.Mods()
		c.op()
		if c.leaf.Mods() == before {
			t.Errorf("%s did not move the modification count", c.name)
		}
	}
}
