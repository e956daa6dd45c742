package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// touchEach writes one byte, the page's index plus 1, to each page of
// pages (offsets in pages from addr), in that order.
func touchEach(t *testing.T, s *Space, addr Addr, pages []int) {
	t.Helper()
	for _, p := range pages {
		write(t, s, addr+Addr(p)*4096+7, []byte{byte(p + 1)})
	}
}

// expectTouched checks every page of [addr, addr+n pages): the byte
// touchEach wrote to the touched ones, zero everywhere else.
func expectTouched(t *testing.T, s *Space, addr Addr, n int, touched []int) {
	t.Helper()
	want := make([]byte, n*4096)
	for _, p := range touched {
		want[p*4096+7] = byte(p + 1)
	}
	expect(t, s, addr, want)
}

func seq(from, to, step int) []int {
	var out []int
	for p := from; p != to; p += step {
		out = append(out, p)
	}
	return out
}

// TestFaultAroundSequential: writing order-0 pages one after the other,
// up or down, the n-th fault in a row maps 2^n pages up to the end of its
// 64 KiB block, then one block per fault: pages 0, 1-2, 3-6, 7-14, 15,
// 16-31, 32-47 ... (and the mirror image going down). Every page is
// counted in FaultAlloc[0] and Resident exactly as if each had faulted
// alone, is its own exclusive, writable order-0 folio, and reads back what
// was written, zero elsewhere.
func TestFaultAroundSequential(t *testing.T) {
	const pages = 256
	for _, c := range []struct {
		name  string
		order []int
	}{{"ascending", seq(0, pages, 1)}, {"descending", seq(pages-1, -1, -1)}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			addr := mustMap(t, s, pages*4096, ProtRead|ProtWrite)
			before := e.a.Stats().Alloc[0]
			touchEach(t, s, addr, c.order)
			st := s.Stats()
			// Five faults ramp up over the first block (the fifth maps its
			// last page alone), then one per block.
			const wantFaults, wantAround = 5 + pages/16 - 1, 3 + pages/16 - 1
			if st.Faults != wantFaults || st.FaultAround != wantAround || st.FaultAroundPages != pages-wantFaults {
				t.Fatalf("%d pages written in order: %d faults, %d fault-arounds mapping %d pages beyond the faulting ones; want %d, %d, %d",
					pages, st.Faults, st.FaultAround, st.FaultAroundPages, wantFaults, wantAround, pages-wantFaults)
			}
			if st.FaultAlloc[0] != pages || st.Resident != pages || e.a.Stats().Alloc[0]-before != pages {
				t.Fatalf("FaultAlloc[0] %d, Resident %d, arena allocations %d; want %d each",
					st.FaultAlloc[0], st.Resident, e.a.Stats().Alloc[0]-before, pages)
			}
			for p := range pages {
				en, _ := entry(s, addr+Addr(p)*4096)
				if !en.Write() || !en.Dirty() || !e.a.PageAnonExclusive(en.PFN()) {
					t.Fatalf("page %d mapped %v (exclusive %v)", p, en, e.a.PageAnonExclusive(en.PFN()))
				}
				if _, order, _ := e.a.PageFolio(en.PFN()); order != 0 {
					t.Fatalf("page %d is in a folio of order %d", p, order)
				}
			}
			expectTouched(t, s, addr, pages, c.order)
		})
	}
}

// TestFaultAroundBoundsBloat: a scan that stops has at most as many pages
// mapped ahead of it as it touched: a 2-page write maps 3 pages, a 3-page
// write exactly its 3, a 4-page write 7.
func TestFaultAroundBoundsBloat(t *testing.T) {
	for _, c := range []struct{ pages, resident int64 }{{1, 1}, {2, 3}, {3, 3}, {4, 7}, {7, 7}, {8, 15}} {
		e := newEnv(t, 16<<20)
		s := e.space(Orders())
		addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
		write(t, s, addr+4096, pattern('w', int(c.pages)*4096)) // from page 1: no block end in the way
		if st := s.Stats(); st.Resident != c.resident {
			t.Errorf("a %d-page write: Resident %d, want %d", c.pages, st.Resident, c.resident)
		}
		want := make([]byte, 16*4096)
		copy(want[4096:], pattern('w', int(c.pages)*4096))
		expect(t, s, addr, want)
	}
}

// TestSparseWritesFaultOnePage: writes that never touch the page next to
// the previous one (one per 64 KiB, one every other page, a single one)
// fault one page each, as before fault-around: resident memory is the
// pages touched.
func TestSparseWritesFaultOnePage(t *testing.T) {
	for _, c := range []struct {
		name  string
		pages []int
	}{
		{"one", []int{5}},
		{"every 64KiB", seq(0, 512, 16)},
		{"every other page", seq(0, 64, 2)},
		{"every other page, down", seq(63, -1, -2)},
		{"two apart, then back", []int{10, 12, 8, 14, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			touchEach(t, s, addr, c.pages)
			n := uint64(len(c.pages))
			if st := s.Stats(); st.FaultAlloc[0] != n || st.Resident != int64(n) || st.FaultAround != 0 {
				t.Fatalf("%d sparse writes: FaultAlloc[0] %d, Resident %d, FaultAround %d", n, st.FaultAlloc[0], st.Resident, st.FaultAround)
			}
			expectTouched(t, s, addr, 512, c.pages)
		})
	}
}

// TestFaultAroundStaysInItsRegion: the batch is cut at the region's end,
// where a read-only region begins: nothing is mapped there, and its first
// write is refused.
func TestFaultAroundStaysInItsRegion(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	base := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	if err := s.Protect(base+5*4096, 4<<20-5*4096, ProtRead); err != nil {
		t.Fatal(err)
	}
	touchEach(t, s, base, []int{0, 1, 3}) // 0, then 1-2, then 3-6 cut to 3-4
	if st := s.Stats(); st.Resident != 5 || st.FaultAround != 2 || st.FaultAroundPages != 2 {
		t.Fatalf("a sequential write next to a read-only region: Resident %d, FaultAround %d (%d pages)", st.Resident, st.FaultAround, st.FaultAroundPages)
	}
	for p := 5; p < 16; p++ {
		if en, _ := entry(s, base+Addr(p)*4096); !en.None() {
			t.Fatalf("page %d of the read-only region is mapped: %v", p, en)
		}
	}
	_, err := s.WriteAt([]byte{1}, int64(base)+5*4096)
	wantErr(t, err, ErrProtection, "a write to the read-only region")
	expectTouched(t, s, base, 16, []int{0, 1, 3})
}

// TestFaultAroundKeepsMappedPages: the batch maps the none entries of its
// window; a page already mapped there keeps its folio and contents.
func TestFaultAroundKeepsMappedPages(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	touchEach(t, s, addr, []int{9})
	old, _ := entry(s, addr+9*4096)
	touchEach(t, s, addr, []int{3, 4, 6}) // 3, then 4-5, then 6-9 of which 9 is mapped
	if st := s.Stats(); st.Resident != 7 || st.FaultAroundPages != 3 {
		t.Fatalf("Resident %d, fault-around pages %d; want pages 3-9: 7, and 3 beyond the faults", st.Resident, st.FaultAroundPages)
	}
	if now, _ := entry(s, addr+9*4096); now != old {
		t.Fatalf("page 9 was remapped: %v → %v", old, now)
	}
	expectTouched(t, s, addr, 16, []int{3, 4, 6, 9})
}

// TestFaultAroundShortOfMemory: with fewer free pages than the batch
// needs, a sequential fault maps its one page, as without fault-around:
// the arena's last page can still be faulted in.
func TestFaultAroundShortOfMemory(t *testing.T) {
	e := newEnv(t, 2<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	var hog []folio.PFN
	for e.a.Stats().FreePages > 2 {
		pfn, err := e.a.AllocFolio(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		hog = append(hog, pfn)
	}
	touchEach(t, s, addr, []int{0, 1})
	if st := s.Stats(); st.Resident != 2 || st.FaultAround != 0 || e.a.Stats().FreePages != 0 {
		t.Fatalf("two free pages, two sequential writes: Resident %d, FaultAround %d, %d pages free", st.Resident, st.FaultAround, e.a.Stats().FreePages)
	}
	expectTouched(t, s, addr, 16, []int{0, 1})
	for _, pfn := range hog {
		e.a.FolioPut(pfn, 1)
	}
}

// TestFaultAroundLosesRaces: while a fault-around of pages 1-2 has its
// pages and not the PTL, another write maps page 2, or a DontNeed empties
// and frees the leaf; the fault-around finds out under the PTL, gives its
// pages back and retries, and nothing leaks or is mapped twice. The retry
// faults around again only if it still continues its region's last fault:
// after the write to page 2 it has nothing left to batch.
func TestFaultAroundLosesRaces(t *testing.T) {
	for _, c := range []struct {
		name     string
		while    func(t *testing.T, s *Space, addr Addr)
		touched  []int // pages that read back what was written
		resident int64
		around   uint64
	}{
		{"a write in the batch", func(t *testing.T, s *Space, addr Addr) { touchEach(t, s, addr, []int{2}) },
			[]int{0, 1, 2}, 3, 0},
		{"a DontNeed of the leaf", func(t *testing.T, s *Space, addr Addr) {
			if err := s.Advise(addr, 2<<20, DontNeed); err != nil {
				t.Error(err)
			}
		}, []int{1}, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			touchEach(t, s, addr, []int{0})
			paused, resume := pauseFirst(t, testhook.FaultAroundBeforeInstall)
			done := make(chan struct{})
			go func() {
				defer close(done)
				touchEach(t, s, addr, []int{1})
			}()
			<-paused
			c.while(t, s, addr)
			close(resume)
			<-done
			st := s.Stats()
			if st.Resident != c.resident || st.FaultAround != c.around {
				t.Fatalf("Resident %d, FaultAround %d; want %d, %d", st.Resident, st.FaultAround, c.resident, c.around)
			}
			var mapped int64
			for p := range 512 {
				if en, _ := entry(s, addr+Addr(p)*4096); en.Present() && !en.Zero() {
					mapped++
				}
			}
			if st.Resident != mapped {
				t.Fatalf("Resident %d, the table maps %d pages", st.Resident, mapped)
			}
			expectTouched(t, s, addr, 16, c.touched)
		})
	}
}
