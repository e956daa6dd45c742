package folio

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// waitFor polls cond until it holds; a background effect that never happens
// fails the test after a generous deadline (this is not a timing assertion).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFolioBytesAreNaturallyAligned(t *testing.T) {
	a := newTestArena(t, Config{Size: 8 << 20, PageSize: 4096})
	for order := 0; order <= a.MaxOrder(); order++ {
		pfn, err := a.AllocFolio(order, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := a.PageBytes(pfn, 1<<order)
		if len(b) != 4096<<order || cap(b) != len(b) {
			t.Errorf("order %d: %d bytes, cap %d", order, len(b), cap(b))
		}
		if addr := uintptr(unsafe.Pointer(&b[0])); addr%uintptr(len(b)) != 0 {
			t.Errorf("order %d folio at %#x is not aligned to its size", order, addr)
		}
		a.FolioPut(pfn, 1)
	}
}

func TestRefcountAndPins(t *testing.T) {
	for _, order := range []int{0, 1, 4, 9} {
		a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
		pfn, _ := a.AllocFolio(order, 0)
		tail := pfn + PFN(1)<<order - 1
		if h, ok := a.FolioTryGet(tail); !ok || h != pfn {
			t.Fatalf("order %d: FolioTryGet(tail) = %d, %v", order, h, ok)
		}
		a.FolioPin(pfn, 3)
		if r, p := a.FolioRef(pfn), a.FolioPincount(pfn); r != 5 || p != 3 || !a.FolioMaybeDMAPinned(pfn) {
			t.Fatalf("order %d: ref %d pins %d after get+3 pins", order, r, p)
		}
		a.FolioUnpin(pfn, 3)
		a.FolioPut(pfn, 1)
		if r, p := a.FolioRef(pfn), a.FolioPincount(pfn); r != 1 || p != 0 || a.FolioMaybeDMAPinned(pfn) {
			t.Fatalf("order %d: ref %d pins %d after unpin", order, r, p)
		}
		a.FolioPut(pfn, 1)
		if _, ok := a.FolioTryGet(tail); ok {
			t.Fatalf("order %d: FolioTryGet succeeded on a freed folio", order)
		}
		if st := a.Stats(); st.FreePages != st.TotalPages {
			t.Fatalf("order %d: folio not freed by its last put", order)
		}
	}
}

func TestRefcountUnderflowPanics(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	pfn, _ := a.AllocFolio(0, 0)
	a.FolioGet(pfn, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("dropping more references than held did not panic")
		}
		// Repair so that the arena can close: the panic left ref at -1.
		a.pages[pfn].ref.Store(1)
		a.FolioPut(pfn, 1)
	}()
	a.FolioPut(pfn, 3)
}

func TestFreeWhileMappedPanics(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	pfn, _ := a.AllocFolio(4, 0)
	a.FolioAddMapcount(pfn, 1, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("freeing a mapped folio did not panic")
		}
		a.pages[pfn].ref.Store(1)
		a.FolioSubMapcount(pfn, 1, 1)
		a.FolioPut(pfn, 1)
	}()
	a.FolioPut(pfn, 1)
}

// TestConcurrentMetadata hammers refcounts, pins, mapcounts and the
// AnonExclusive bits of neighbouring folios (whose bits share bitmap words)
// from many goroutines; every count must come out exact. Run with -race.
func TestConcurrentMetadata(t *testing.T) {
	a := newTestArena(t, Config{Size: 4 << 20, PageSize: 4096})
	var heads []PFN
	for _, order := range []int{0, 0, 1, 0, 2, 3, 4, 0} {
		pfn, err := a.AllocFolio(order, 0)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, pfn)
	}
	const workers, rounds = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			mm := MMID(w + 1)
			for range rounds {
				h := heads[rng.IntN(len(heads))]
				n := a.FolioNrPages(h)
				switch rng.IntN(4) {
				case 0:
					a.FolioGet(h, 2)
					a.FolioPut(h, 2)
				case 1:
					if g, ok := a.FolioTryPin(h + PFN(rng.IntN(n))); ok {
						a.FolioUnpin(g, 1)
					}
				case 2:
					nr := 1 + rng.IntN(n)
					a.FolioGet(h, nr)
					a.FolioAddMapcount(h, nr, mm)
					a.FolioSubMapcount(h, nr, mm)
					a.FolioPut(h, nr)
				case 3:
					// Each worker owns page w of the bitmap word's 64:
					// neighbouring bits change at once.
					p := PFN(w)
					a.SetPageAnonExclusive(p, 1)
					if !a.PageAnonExclusive(p) {
						panic("lost an AnonExclusive bit")
					}
					a.ClearPageAnonExclusive(p, 1)
				}
			}
		}()
	}
	wg.Wait()
	for _, h := range heads {
		if r, m, p := a.FolioRef(h), a.FolioMapcount(h), a.FolioPincount(h); r != 1 || m != 0 || p != 0 {
			t.Errorf("folio %d: ref %d mapcount %d pincount %d after balanced updates", h, r, m, p)
		}
		if _, _, shared := a.FolioOwners(h); shared {
			t.Errorf("folio %d still maybe-shared with no mapping", h)
		}
	}
	if a.AnyPageAnonExclusive(0, int(a.NrPages())) {
		t.Error("AnonExclusive bits left set")
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		a.FolioPut(h, 1)
	}
}

// TestTryGetRacesFreeAndRealloc grabs pages lockless while other goroutines
// free and reallocate folios of other orders over them: every successful
// grab must be of a live folio that contains the page, and no reference may
// be lost or invented.
func TestTryGetRacesFreeAndRealloc(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096, MaxOrder: 6, RetainFree: -1})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var grabs atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() { // churn: allocate and free folios of random orders
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var live []PFN
			for !stop.Load() {
				if len(live) > 0 && rng.IntN(2) == 0 {
					i := rng.IntN(len(live))
					a.FolioPut(live[i], 1)
					live = append(live[:i], live[i+1:]...)
					continue
				}
				if pfn, err := a.AllocFolio(rng.IntN(7), 0); err == nil {
					live = append(live, pfn)
				}
			}
			for _, pfn := range live {
				a.FolioPut(pfn, 1)
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() { // lockless grabbers
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for !stop.Load() {
				pfn := PFN(rng.IntN(int(a.NrPages())))
				head, ok := a.FolioTryGet(pfn)
				if !ok {
					continue
				}
				// Our reference keeps the folio alive: whoever allocated it
				// may drop theirs meanwhile, but it cannot be freed or
				// reused under us.
				if h, _, ok := a.PageFolio(pfn); !ok || h != head || a.FolioRef(head) < 1 {
					panic("grabbed a folio that does not hold the page")
				}
				grabs.Add(1)
				a.FolioPut(head, 1)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if grabs.Load() == 0 {
		t.Fatal("no lockless grab ever succeeded: the test did not test anything")
	}
	if st := a.Stats(); st.FreePages != st.TotalPages {
		t.Fatalf("%d pages leaked", st.TotalPages-st.FreePages)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestMMIDOwnerTracking(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	h, _ := a.AllocFolio(4, 0) // 16 pages
	const A, B, C = MMID(1), MMID(2), MMID(3)
	mapPages := func(mm MMID, nr int) { a.FolioGet(h, nr); a.FolioAddMapcount(h, nr, mm) }
	unmapPages := func(mm MMID, nr int) { a.FolioSubMapcount(h, nr, mm); a.FolioPut(h, nr) }
	a.FolioAddMapcount(h, 1, A) // the allocation's reference is the first mapping's
	mapPages(A, 15)

	step := func(name string, exclA, exclB, shared bool) {
		t.Helper()
		if got := a.FolioExclusiveTo(h, A, 0); got != exclA {
			t.Errorf("%s: FolioExclusiveTo(A) = %v, want %v", name, got, exclA)
		}
		if got := a.FolioExclusiveTo(h, B, 0); got != exclB {
			t.Errorf("%s: FolioExclusiveTo(B) = %v, want %v", name, got, exclB)
		}
		if got := a.FolioMaybeMappedShared(h); got != shared {
			t.Errorf("%s: FolioMaybeMappedShared = %v, want %v", name, got, shared)
		}
		if err := a.Check(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	step("A maps all", true, false, false)
	mapPages(B, 16) // fork: B maps the same pages
	step("A and B map all", false, false, true)
	unmapPages(B, 16) // B exits
	step("B gone", true, false, false)

	a.FolioGet(h, 1) // a plain reference (vmsplice)
	step("A with a plain reference", false, false, false)
	if !a.FolioExclusiveTo(h, A, 1) {
		t.Error("a reference the caller accounts for itself blocked exclusivity")
	}
	a.FolioPut(h, 1)

	a.FolioPin(h, 1)
	step("A with a pin", false, false, false)
	a.FolioUnpin(h, 1)

	mapPages(B, 4)
	mapPages(C, 2) // a third space: untracked
	step("A, B, C", false, false, true)
	unmapPages(C, 2) // C leaves; A and B still share
	step("A, B", false, false, true)
	unmapPages(A, 16) // A leaves: B owns every mapping
	step("B alone", false, true, false)
	unmapPages(B, 3)
	a.FolioAddMapcount(h, 0, B) // no-op update keeps the state
	step("B with one page", false, true, false)
	if a.FolioMapcount(h) != 1 || a.FolioRef(h) != 1 {
		t.Fatalf("mapcount %d ref %d, want 1 and 1", a.FolioMapcount(h), a.FolioRef(h))
	}
	unmapPages(B, 1) // last mapping and reference: freed
	if st := a.Stats(); st.FreePages != st.TotalPages {
		t.Fatal("folio not freed with its last mapping")
	}
}

func TestEntireMapcount(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	h, _ := a.AllocFolio(9, 0)
	a.FolioAddEntireMapcount(h, 1)
	if a.FolioEntireMapcount(h) != 1 || a.FolioMapcount(h) != 1 || !a.FolioExclusiveTo(h, 1, 0) {
		t.Fatalf("PMD-mapped folio: entire %d mapcount %d", a.FolioEntireMapcount(h), a.FolioMapcount(h))
	}
	a.FolioSubEntireMapcount(h, 1)
	a.FolioPut(h, 1)
}

func TestFolioSplit(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096, RetainFree: -1})
	h, _ := a.AllocFolio(4, 0)
	// Map pages 0-3 in one space and page 9 in two, like a folio left
	// partly mapped by a DontNeed.
	mapped := map[int]int{0: 1, 1: 1, 2: 1, 3: 1, 9: 2}
	for i, m := range mapped {
		a.FolioAddMapcount(h, m, MMID(1+i%2))
	}
	a.FolioGet(h, 5) // one reference per mapping: 6 with the allocation's
	a.SetPageAnonExclusive(h, 4)
	if !a.FolioRefFreeze(h, 6) {
		t.Fatal("freeze at refcount 6 failed")
	}
	if _, ok := a.FolioTryGet(h + 2); ok {
		t.Fatal("lockless grab succeeded on a frozen folio")
	}
	freed := a.FolioSplit(h, func(i int) int { return mapped[i] })
	if freed != 11 {
		t.Fatalf("split freed %d pages, want 11", freed)
	}
	for i := range 16 {
		pfn := h + PFN(i)
		hd, order, ok := a.PageFolio(pfn)
		switch m := mapped[i]; {
		case m == 0 && ok:
			t.Errorf("page %d is unmapped but still in a folio", i)
		case m > 0 && (!ok || hd != pfn || order != 0 || a.FolioRef(pfn) != m || a.FolioMapcount(pfn) != m):
			t.Errorf("page %d: folio %d order %d ref %d mapcount %d, want its own order-0 folio with %d",
				i, hd, order, a.FolioRef(pfn), a.FolioMapcount(pfn), m)
		}
		if want := i < 4; a.PageAnonExclusive(pfn) != want {
			t.Errorf("page %d: AnonExclusive %v after split, want %v", i, !want, want)
		}
	}
	if st := a.Stats(); st.FolioSplits[4] != 1 || st.FreePages != st.TotalPages-5 {
		t.Fatalf("stats after split: %+v", st)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	for i, m := range mapped {
		a.FolioSubMapcount(h+PFN(i), m, 1)
		a.FolioPut(h+PFN(i), m)
	}
}

func TestBitmap(t *testing.T) {
	b := newBitmap(300)
	b.set(3, 130)
	if c := b.count(0, 300); c != 130 {
		t.Fatalf("count = %d, want 130", c)
	}
	if !b.all(3, 130) || b.all(2, 2) || !b.any(132, 10) || b.any(133, 100) {
		t.Fatal("all/any wrong")
	}
	if i := b.nextClear(3, 300); i != 133 {
		t.Fatalf("nextClear = %d, want 133", i)
	}
	if i := b.nextSet(0, 300); i != 3 {
		t.Fatalf("nextSet = %d, want 3", i)
	}
	if i := b.nextSet(133, 300); i != 300 {
		t.Fatalf("nextSet past the run = %d, want 300", i)
	}
	b.clear(64, 64)
	if c := b.count(0, 300); c != 66 || b.test(64) || !b.test(63) || !b.test(128) {
		t.Fatalf("after clear: count %d", b.count(0, 300))
	}
}

func TestLedger(t *testing.T) {
	a := newTestArena(t, Config{Size: 2 << 20, PageSize: 4096})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				a.LedgerAdd(w+1, 2, 1)
				a.LedgerAdd(-(w + 1), -1, -1)
			}
		}()
	}
	wg.Wait()
	if pins, gets, zero := a.Ledger(); pins != 0 || gets != 4000 || zero != 0 {
		t.Fatalf("Ledger() = %d pins, %d gets, %d zero-page gets; want 0, 4000 and 0", pins, gets, zero)
	}
	a.LedgerAdd(0, 0, 1)
	if err := a.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close with references outstanding: %v, want ErrBusy", err)
	}
	a.LedgerAdd(0, -4000, -1) // so that the cleanup's Close succeeds
}
