package folio

import (
	"slices"
	"testing"
)

// TestAllocPages: a batch comes out as AllocFolio(0) would give each page
// (refcount 1, order 0, zeroed when asked, counted), with one refill of the
// page cache at most, and short when memory is.
func TestAllocPages(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096, RetainFree: -1})
	// Dirty every page so that AllocZero has something to clear.
	var all []PFN
	for {
		pfn, err := a.AllocFolio(0, 0)
		if err != nil {
			break
		}
		for i := range a.PageBytes(pfn, 1) {
			a.PageBytes(pfn, 1)[i] = 0xa5
		}
		all = append(all, pfn)
	}
	for _, pfn := range all {
		a.FolioPut(pfn, 1)
	}
	before := a.Stats()
	out := make([]PFN, 16)
	n := a.AllocPages(out, AllocZero)
	if n != len(out) {
		t.Fatalf("AllocPages gave %d of %d pages from an arena of %d free", n, len(out), before.FreePages)
	}
	seen := map[PFN]bool{}
	for _, pfn := range out {
		if seen[pfn] {
			t.Fatalf("page %d handed out twice in one batch", pfn)
		}
		seen[pfn] = true
		if h, o, ok := a.PageFolio(pfn); !ok || h != pfn || o != 0 || a.FolioRef(pfn) != 1 || a.FolioMapcount(pfn) != 0 {
			t.Fatalf("page %d: folio (%d, %d, %v), ref %d, mapcount %d", pfn, h, o, ok, a.FolioRef(pfn), a.FolioMapcount(pfn))
		}
		if a.PageAnonExclusive(pfn) {
			t.Fatalf("page %d is AnonExclusive when allocated", pfn)
		}
		if i := slices.IndexFunc(a.PageBytes(pfn, 1), func(b byte) bool { return b != 0 }); i >= 0 {
			t.Fatalf("page %d not zeroed: byte %d", pfn, i)
		}
	}
	after := a.Stats()
	if after.Alloc[0]-before.Alloc[0] != 16 || after.FreePages != before.FreePages-16 || after.BytesZeroed-before.BytesZeroed != 16*4096 {
		t.Fatalf("16 pages: Alloc[0] +%d, FreePages %d → %d, BytesZeroed +%d",
			after.Alloc[0]-before.Alloc[0], before.FreePages, after.FreePages, after.BytesZeroed-before.BytesZeroed)
	}
	for _, pfn := range out {
		a.FolioPut(pfn, 1)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}

	// Short of memory: whatever is left, then nothing; the arena stays exact.
	big := make([]PFN, 48)
	var held []PFN
	for {
		k := a.AllocPages(big, 0)
		if k == 0 {
			break
		}
		held = append(held, big[:k]...)
	}
	if int64(len(held)) != before.TotalPages {
		// The caches may keep a few pages in other shards; AllocFolio drains them.
		for {
			pfn, err := a.AllocFolio(0, 0)
			if err != nil {
				break
			}
			held = append(held, pfn)
		}
	}
	if st := a.Stats(); st.FreePages != 0 || int64(len(held)) != st.TotalPages {
		t.Fatalf("after exhausting the arena: %d held, %d free of %d", len(held), st.FreePages, st.TotalPages)
	}
	for _, pfn := range held {
		a.FolioPut(pfn, 1)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAllocPagesClosed: a closed arena hands out nothing.
func TestAllocPagesClosed(t *testing.T) {
	a, err := NewArena(Config{Size: 2 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := a.AllocPages(make([]PFN, 4), 0); n != 0 {
		t.Fatalf("a closed arena gave %d pages", n)
	}
}

// TestTryGetN: one grab takes n references (and n pins), through any page
// of the folio, and fails on a page that belongs to no folio.
func TestTryGetN(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	for _, order := range []int{0, 4} {
		head, err := a.AllocFolio(order, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := head + PFN(1)<<order - 1
		if h, ok := a.FolioTryGetN(last, 5); !ok || h != head || a.FolioRef(head) != 6 || a.FolioPincount(head) != 0 {
			t.Fatalf("order %d: FolioTryGetN(5) = %d, %v: ref %d, pins %d", order, h, ok, a.FolioRef(head), a.FolioPincount(head))
		}
		if h, ok := a.FolioTryPinN(last, 3); !ok || h != head || a.FolioRef(head) != 9 || a.FolioPincount(head) != 3 {
			t.Fatalf("order %d: FolioTryPinN(3) = %d, %v: ref %d, pins %d", order, h, ok, a.FolioRef(head), a.FolioPincount(head))
		}
		a.FolioUnpin(head, 3)
		a.FolioPut(head, 5)
		a.FolioPut(head, 1) // freed
		if _, ok := a.FolioTryGetN(last, 2); ok {
			t.Fatalf("order %d: FolioTryGetN grabbed a freed folio", order)
		}
		if _, ok := a.FolioTryPinN(head, 2); ok {
			t.Fatalf("order %d: FolioTryPinN grabbed a freed folio", order)
		}
	}
}
