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

// TestFaultAroundSequential: writing order-0 pages one after the other
// faults the first two pages one by one and then one block of 16 pages at
// a time, ascending or descending; every page is counted in FaultAlloc[0]
// and Resident exactly as if each had faulted alone, and reads back what
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
			// The first page alone, the second maps the rest of its block,
			// then one fault per block.
			wantFaults := uint64(2 + pages/16 - 1)
			if st.Faults != wantFaults || st.FaultAround != pages/16 || st.FaultAroundPages != pages-wantFaults {
				t.Fatalf("%d pages written in order: %d faults, %d fault-arounds mapping %d pages beyond the faulting ones; want %d, %d, %d",
					pages, st.Faults, st.FaultAround, st.FaultAroundPages, wantFaults, pages/16, pages-wantFaults)
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

// TestFaultAroundStaysInItsRegion: the block is cut at the region's end,
// where a read-only region begins: nothing is mapped there, and its first
// write is refused.
func TestFaultAroundStaysInItsRegion(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	base := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	if err := s.Protect(base+5*4096, 4<<20-5*4096, ProtRead); err != nil {
		t.Fatal(err)
	}
	touchEach(t, s, base, []int{0, 1})
	if st := s.Stats(); st.Resident != 5 || st.FaultAround != 1 || st.FaultAroundPages != 3 {
		t.Fatalf("a sequential write next to a read-only region: Resident %d, FaultAround %d (%d pages)", st.Resident, st.FaultAround, st.FaultAroundPages)
	}
	for p := 5; p < 16; p++ {
		if en, _ := entry(s, base+Addr(p)*4096); !en.None() {
			t.Fatalf("page %d of the read-only region is mapped: %v", p, en)
		}
	}
	_, err := s.WriteAt([]byte{1}, int64(base)+5*4096)
	wantErr(t, err, ErrProtection, "a write to the read-only region")
}

// TestFaultAroundKeepsMappedPages: the batch is the run of none entries
// around the fault; pages already mapped in the block keep their folio
// and contents.
func TestFaultAroundKeepsMappedPages(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	touchEach(t, s, addr, []int{9})
	old, _ := entry(s, addr+9*4096)
	touchEach(t, s, addr, []int{3, 4})
	if st := s.Stats(); st.Resident != 7 || st.FaultAroundPages != 4 {
		t.Fatalf("Resident %d, fault-around pages %d; want pages 3-9: 7, and 4 beyond the fault", st.Resident, st.FaultAroundPages)
	}
	if now, _ := entry(s, addr+9*4096); now != old {
		t.Fatalf("page 9 was remapped: %v → %v", old, now)
	}
	expectTouched(t, s, addr, 16, []int{3, 4, 9})
}

// TestFaultAroundShortOfMemory: with fewer free pages than the block
// needs, a sequential fault maps its one page, as without fault-around,
// and the arena's last page can still be faulted in.
func TestFaultAroundShortOfMemory(t *testing.T) {
	e := newEnv(t, 2<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	var hog []folio.PFN
	for e.a.Stats().FreePages > 3 {
		pfn, err := e.a.AllocFolio(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		hog = append(hog, pfn)
	}
	touchEach(t, s, addr, []int{0, 1, 2})
	if st := s.Stats(); st.Resident != 3 || st.FaultAround != 0 {
		t.Fatalf("three free pages, three sequential writes: Resident %d, FaultAround %d", st.Resident, st.FaultAround)
	}
	expectTouched(t, s, addr, 16, []int{0, 1, 2})
	for _, pfn := range hog {
		e.a.FolioPut(pfn, 1)
	}
}

// TestFaultAroundLosesRaces: while a fault-around has its pages and not
// the PTL, another write maps a page of its block, or a DontNeed empties
// and frees the leaf; the fault-around finds out under the PTL, gives its
// pages back and retries, and nothing leaks or is mapped twice. The retry
// faults around again only if its region's last fault is still the page
// next to it: the other write moved the hint, the DontNeed did not.
func TestFaultAroundLosesRaces(t *testing.T) {
	for _, c := range []struct {
		name     string
		while    func(t *testing.T, s *Space, addr Addr)
		touched  []int // pages that read back what was written
		resident int64
		around   uint64
	}{
		{"a write in the block", func(t *testing.T, s *Space, addr Addr) { touchEach(t, s, addr, []int{10}) },
			[]int{0, 1, 10}, 3, 0},
		{"a DontNeed of the leaf", func(t *testing.T, s *Space, addr Addr) {
			if err := s.Advise(addr, 2<<20, DontNeed); err != nil {
				t.Error(err)
			}
		}, []int{1}, 16, 1},
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
