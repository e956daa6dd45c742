package pte

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

func TestHugeEntries(t *testing.T) {
	tb := New(geometry(t, 4096), uniformFolios(9), 1)
	d := tb.DirAlloc(3 << 21)
	i := d.Index(3 << 21)
	d.Lock()
	defer d.Unlock()
	h := Mk(0x400, Present|Write|Dirty)
	if !d.SetHugeLocked(i, h) || d.Huge(i) != h {
		t.Fatalf("SetHugeLocked: slot holds %v", d.Huge(i))
	}
	if d.SetHugeLocked(i, h) {
		t.Fatal("installed a huge entry over another")
	}
	if d.Leaf(i) != nil {
		t.Fatal("a huge slot has a leaf")
	}
	d.WrProtectHugeLocked(i)
	if d.Huge(i).Write() || !d.Huge(i).Dirty() {
		t.Fatalf("WrProtectHugeLocked: %v", d.Huge(i))
	}
	if !d.SetHugeAccessLocked(i, Write|Young) || !d.Huge(i).Write() || d.SetHugeAccessLocked(i, Write) {
		t.Fatalf("SetHugeAccessLocked: %v", d.Huge(i))
	}
	// Split: a leaf of 512 entries, every block folded, access bits kept.
	l := d.SplitHugeLocked(i)
	if d.Huge(i) != 0 || d.Leaf(i) != l {
		t.Fatal("split did not replace the huge entry by the leaf")
	}
	l.Lock()
	if l.Nr() != 512 {
		t.Fatalf("split leaf maps %d entries", l.Nr())
	}
	for k := range 512 {
		e := l.GetRaw(k)
		if e.PFN() != 0x400+folio.PFN(k) || !e.Write() || !e.Dirty() || !e.Young() || !e.Cont() {
			t.Fatalf("entry %d after split = %v", k, e)
		}
	}
	l.Clear(0, 512)
	l.Unlock()
	// An empty leaf gives way to a huge entry; a non-empty one does not.
	if !d.SetHugeLocked(i, h) || d.Leaf(i) != nil {
		t.Fatal("huge entry over an empty leaf")
	}
	if got := d.ClearHugeLocked(i); got != h || d.Huge(i) != 0 {
		t.Fatalf("ClearHugeLocked = %v", got)
	}
	d.Unlock()
	l2 := d.LeafAlloc(i)
	l2.Lock()
	l2.Set(0, Mk(0x600, Present))
	l2.Unlock()
	d.Lock()
	if d.SetHugeLocked(i, h) {
		t.Fatal("huge entry over a leaf that maps a page")
	}
	d.Unlock()
	if d.LeafAlloc(i) != l2 {
		t.Fatal("LeafAlloc replaced a live leaf")
	}
	d.Lock()
	d.hugeEntry(i).Store(uint64(h)) // force: LeafAlloc must refuse a huge slot
	d.leaf[i].Store(nil)
	d.Unlock()
	if d.LeafAlloc(i) != nil {
		t.Fatal("LeafAlloc on a huge slot")
	}
	d.Lock()
	d.hugeEntry(i).Store(0)
}

// +checklocksignore: the lock is released by a deferred call after a panic.
func TestMisalignedHugePanics(t *testing.T) {
	tb := New(geometry(t, 4096), nil, 1)
	d := tb.DirAlloc(0)
	d.Lock()
	defer d.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("a huge entry at an unaligned PFN was accepted")
		}
	}()
	d.SetHugeLocked(0, Mk(0x401, Present))
}
