package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// entry returns the entry that maps addr in s, looking through huge entries.
func entry(s *Space, addr Addr) (e pte.PTE, huge bool) {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return 0, false
	}
	di := d.Index(uint64(addr))
	if h := d.Huge(di); h.Present() {
		return h, true
	}
	if l := d.Leaf(di); l != nil {
		return l.GetLockless(l.Index(uint64(addr))), false
	}
	return 0, false
}

func TestFaultOrderSelection(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			g := e.a.Geometry()
			orders := cfg.orders(g)
			s := e.space(orders)
			addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
			write(t, s, addr+5*4096+7, []byte{1})
			want := orders.Highest() // the region is PMD-aligned and empty
			st := s.Stats()
			if st.FaultAlloc[want] != 1 {
				t.Fatalf("orders %v: FaultAlloc = %v, want one fault at order %d", orders, st.FaultAlloc, want)
			}
			if st.Resident != 1<<want {
				t.Fatalf("Resident = %d, want %d", st.Resident, 1<<want)
			}
			e0, huge := entry(s, addr+5*4096)
			if huge != (want == g.PMDOrder) || !e0.Write() {
				t.Fatalf("entry %v (huge %v) for order %d", e0, huge, want)
			}
			head, order, _ := e.a.PageFolio(e0.PFN())
			if order != want || !e.a.PagesAnonExclusive(head, 1<<want) {
				t.Fatalf("folio of order %d (want %d), all pages exclusive: %v", order, want, e.a.PagesAnonExclusive(head, 1<<want))
			}
			if want >= g.ContOrder && want < g.PMDOrder && !e0.Cont() {
				t.Fatalf("a %d-page folio is not mapped with contpte blocks: %v", 1<<want, e0)
			}
			// Every page of the folio is now mapped: writing another one
			// takes no fault.
			faults := st.Faults
			if want > 0 {
				last := 5&^(1<<want-1) + 1<<want - 1 // the folio's last page
				write(t, s, addr+Addr(last)*4096, []byte{2})
				if got := s.Stats().Faults; got != faults {
					t.Fatalf("a write inside the fresh folio faulted (%d faults)", got-faults)
				}
			}
			expect(t, s, addr+5*4096+7, []byte{1})
		})
	}
}

// TestFaultAllNoneRule: the order chosen is the highest whose aligned range
// maps nothing yet, or only the shared zero page (which the folio replaces:
// a read first does not rule a large folio out); a page of its own in the
// range rules it out.
func TestFaultAllNoneRule(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(2, 4)) // 16 KiB and 64 KiB
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	read(t, s, addr+4096*9, 1) // maps the zero page at page 9
	if st := s.Stats(); st.ZeroPageMaps != 1 || st.Resident != 0 {
		t.Fatalf("a read fault: ZeroPageMaps %d, Resident %d", st.ZeroPageMaps, st.Resident)
	}
	write(t, s, addr, []byte{1}) // page 0: the 64 KiB range [0,16) holds only page 9's zero page
	st := s.Stats()
	if st.FaultAlloc[4] != 1 || st.ZeroUpgrades != 1 || st.Resident != 16 {
		t.Fatalf("FaultAlloc %v ZeroUpgrades %d Resident %d: want one 64 KiB folio over the zero page",
			st.FaultAlloc[:5], st.ZeroUpgrades, st.Resident)
	}
	expect(t, s, addr+4096*9, make([]byte, 4096))

	// Keep pages 12-15 of the folio and drop the rest: the range [0,16)
	// now has pages of its own, and the next fault in it takes 16 KiB.
	if err := s.Advise(addr, 12*4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	write(t, s, addr+4096, []byte{2})
	if st := s.Stats(); st.FaultAlloc[4] != 1 || st.FaultAlloc[2] != 1 {
		t.Fatalf("FaultAlloc %v: want the 16 KiB order, the 64 KiB range is not all none", st.FaultAlloc[:5])
	}
	expect(t, s, addr+4096, []byte{2})
}

// TestFaultRegionFit: a folio's aligned range must lie inside the region.
func TestFaultRegionFit(t *testing.T) {
	e := newEnv(t, 16<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.ContOrder, g.PMDOrder))
	// 8 pages at an address 64 KiB-aligned: too small for 64 KiB.
	base := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	if err := s.Unmap(base, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.MapFixed(base+4096*8, 4096*24, ProtRead|ProtWrite); err != nil {
		t.Fatal(err)
	}
	write(t, s, base+4096*8, []byte{1})  // [0,16) starts before the region
	write(t, s, base+4096*16, []byte{1}) // [16,32) fits
	st := s.Stats()
	if st.FaultAlloc[0] != 1 || st.FaultAlloc[g.ContOrder] != 1 || st.FaultAlloc[g.PMDOrder] != 0 {
		t.Fatalf("FaultAlloc %v: want one order-0 and one 64 KiB fault", st.FaultAlloc)
	}
}

// TestFaultFallback: with no free block of an order the fault falls back
// order by order, counting each fallback, and succeeds at a lower order.
func TestFaultFallback(t *testing.T) {
	e := newEnv(t, 4<<20) // two 2 MiB blocks
	g := e.a.Geometry()
	s := e.space(Orders(g.ContOrder, g.PMDOrder))
	// Fragment the arena: hold every other 4 KiB page of both blocks.
	var held []folio.PFN
	for {
		pfn, err := e.a.AllocFolio(0, 0)
		if err != nil {
			break
		}
		held = append(held, pfn)
	}
	for i, pfn := range held {
		if i%2 == 0 {
			e.a.FolioPut(pfn, 1)
		}
	}
	defer func() {
		for i, pfn := range held {
			if i%2 == 1 {
				e.a.FolioPut(pfn, 1)
			}
		}
	}()
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, []byte{7})
	st := s.Stats()
	if st.FaultFallback[g.PMDOrder] != 1 || st.FaultFallback[g.ContOrder] != 1 || st.FaultAlloc[0] != 1 {
		t.Fatalf("fallbacks %v allocs %v: want PMD and contpte orders to fall back to order 0",
			st.FaultFallback, st.FaultAlloc)
	}
	expect(t, s, addr, []byte{7})
	s.Close()
}

func TestHugeEntryLifecycle(t *testing.T) {
	e := newEnv(t, 16<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.PMDOrder))
	addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	write(t, s, addr+100, []byte("huge"))
	if _, huge := entry(s, addr); !huge {
		t.Fatal("a PMD-aligned region did not get a huge entry")
	}
	e.check()
	// Protect part of it: the huge entry is split into PTEs first.
	if err := s.Protect(addr+4096, 4096, ProtRead); err != nil {
		t.Fatal(err)
	}
	if p, huge := entry(s, addr); huge || !p.Write() {
		t.Fatalf("after a partial Protect: entry %v huge %v", p, huge)
	}
	if p, _ := entry(s, addr+4096); p.Write() {
		t.Fatalf("protected page still writable: %v", p)
	}
	e.check()
	expect(t, s, addr+100, []byte("huge"))
	if st := s.Stats(); st.Resident != 512 {
		t.Fatalf("Resident %d after the split, want 512", st.Resident)
	}
	// Unmap all of it: every page and reference goes.
	if err := s.Unmap(addr, 2<<20); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Resident != 0 {
		t.Fatalf("Resident %d after Unmap", st.Resident)
	}
}

func TestPagemap(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(e.a.Geometry().PMDOrder))
	addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	if _, ok := s.Pagemap(addr); ok {
		t.Fatal("Pagemap of unpopulated memory")
	}
	read(t, s, addr+(2<<20), 1)
	if m, ok := s.Pagemap(addr + (2 << 20)); !ok || !m.Zero || m.Exclusive {
		t.Fatalf("Pagemap of the zero page: %+v, %v", m, ok)
	}
	write(t, s, addr+5*4096, []byte{1})
	m, ok := s.Pagemap(addr + 5*4096)
	if !ok || !m.Huge || !m.Exclusive || m.Shared || !m.Writable {
		t.Fatalf("Pagemap of a huge page: %+v, %v", m, ok)
	}
	if h, _, _ := e.a.PageFolio(folio.PFN(m.PFN)); e.a.FolioOrder(h) != 9 || folio.PFN(m.PFN)-h != 5 {
		t.Fatalf("Pagemap PFN %#x is not page 5 of its PMD folio", m.PFN)
	}
	c := e.fork(s)
	if m, _ := c.Pagemap(addr + 5*4096); m.Exclusive || m.Writable {
		t.Fatalf("the child's Pagemap of a shared huge page: %+v", m)
	}
}
