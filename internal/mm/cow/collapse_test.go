package cow

import (
	"bytes"
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// collapseEnv maps 4 MiB (two PMD ranges) and fills the first with every
// other 16 KiB written, so that the range holds small folios and holes.
func collapseEnv(t *testing.T, orders OrderSet) (*env, *Space, Addr, []byte) {
	e := newEnv(t, 32<<20)
	s := e.space(orders)
	const pmd = 2 << 20
	addr := mustMap(t, s, 2*pmd, ProtRead|ProtWrite)
	want := make([]byte, pmd)
	for off := 0; off < pmd; off += 32 << 10 {
		b := pattern(byte(off>>15), 16<<10)
		write(t, s, addr+Addr(off), b)
		copy(want[off:], b)
	}
	return e, s, addr, want
}

// TestCollapse: the pages and holes of a PMD range become one exclusive,
// writable PMD-order folio with the same contents, and the small folios
// are freed.
func TestCollapse(t *testing.T) {
	for _, cfg := range configs[:3] { // order 0, 16 KiB, 64 KiB folios
		t.Run(cfg.name, func(t *testing.T) {
			e, s, addr, want := collapseEnv(t, cfg.orders(e0geo))
			free, resident := e.a.Stats().FreePages, s.Stats().Resident
			if err := s.Advise(addr, 4<<20, Collapse); err != nil {
				t.Fatal(err)
			}
			if p, huge := entry(s, addr); !huge || !p.Write() {
				t.Fatalf("after Collapse the range maps %v (huge %v), want a writable huge entry", p, huge)
			}
			if !e.a.PagesAnonExclusive(folio.PFN(mustPagemap(t, s, addr).PFN), 512) {
				t.Fatal("the collapsed folio is not AnonExclusive")
			}
			st := s.Stats()
			if st.Collapsed != 1 || st.Resident != 512 {
				t.Fatalf("Collapsed %d, Resident %d; want 1 and 512", st.Collapsed, st.Resident)
			}
			// The second PMD range maps nothing: it stays empty.
			if _, ok := s.Pagemap(addr + 2<<20); ok {
				t.Fatal("Collapse populated an empty range")
			}
			// 512 pages allocated, the small folios all freed.
			if got, want := e.a.Stats().FreePages, free-512+resident; got != want {
				t.Fatalf("free pages %d → %d, want %d", free, got, want)
			}
			expect(t, s, addr, want)
			write(t, s, addr+4096, []byte("after"))
			copy(want[4096:], "after")
			expect(t, s, addr, want)
			e.check()
		})
	}
}

// TestCollapseShared: collapsing pages shared with a child gives the parent
// its own copy; the child keeps the old pages, and neither sees the other's
// writes.
func TestCollapseShared(t *testing.T) {
	e, s, addr, want := collapseEnv(t, Orders())
	c := e.fork(s)
	if err := s.Advise(addr, 2<<20, Collapse); err != nil {
		t.Fatal(err)
	}
	e.check()
	write(t, s, addr, fill(0xff, 2<<20))
	expect(t, c, addr, want)
	write(t, c, addr+8192, []byte("child"))
	expect(t, s, addr+8192, fill(0xff, 5))
	e.check()
}

// TestCollapseBusy: a pinned or referenced folio stops the collapse of its
// range (ErrBusy) and leaves it as it was.
func TestCollapseBusy(t *testing.T) {
	for _, what := range []string{"pin", "get"} {
		t.Run(what, func(t *testing.T) {
			e, s, addr, want := collapseEnv(t, Orders())
			pfn := folio.PFN(mustPagemap(t, s, addr).PFN)
			if what == "pin" {
				e.a.FolioPin(pfn, 1)
				defer e.a.FolioUnpin(pfn, 1)
			} else {
				e.a.FolioGet(pfn, 1)
				defer e.a.FolioPut(pfn, 1)
			}
			wantErr(t, s.Advise(addr, 2<<20, Collapse), ErrBusy, "Collapse with a "+what)
			if _, huge := entry(s, addr); huge || folio.PFN(mustPagemap(t, s, addr).PFN) != pfn {
				t.Fatal("a busy Collapse changed the mappings")
			}
			expect(t, s, addr, want)
		})
	}
}

// TestCollapseProtection: a read-only region collapses into a read-only
// huge entry; a range that straddles two regions is left alone.
func TestCollapseProtection(t *testing.T) {
	e, s, addr, want := collapseEnv(t, Orders())
	if err := s.Protect(addr, 2<<20, ProtRead); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr, 2<<20, Collapse); err != nil {
		t.Fatal(err)
	}
	if p, huge := entry(s, addr); !huge || p.Write() {
		t.Fatalf("the collapsed read-only range maps %v (huge %v)", p, huge)
	}
	expect(t, s, addr, want)
	_, err := s.WriteAt([]byte{1}, int64(addr))
	wantErr(t, err, ErrProtection, "write to the collapsed read-only range")

	if err := s.Protect(addr, 2<<20, ProtRead|ProtWrite); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr, 4096, DontNeed); err != nil { // PTE-maps it again
		t.Fatal(err)
	}
	if err := s.Protect(addr+1<<20, 4096, ProtRead); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr, 2<<20, Collapse); err != nil {
		t.Fatal(err)
	}
	if _, huge := entry(s, addr+8192); huge {
		t.Fatal("Collapse merged two regions' pages")
	}
	e.check()
	if !bytes.Equal(read(t, s, addr+8192, 8192), want[8192:16384]) {
		t.Fatal("the contents changed")
	}
}

// TestCollapseNeedsPMDOrder: an arena capped below the PMD order cannot
// hold the folio.
func TestCollapseNeedsPMDOrder(t *testing.T) {
	a, err := folio.NewArena(folio.Config{Size: 8 << 20, PageSize: 4096, MaxOrder: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s, _ := NewSpace(a, Options{Orders: Orders()})
	defer s.Close()
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, []byte{1})
	wantErr(t, s.Advise(addr, 2<<20, Collapse), ErrInvalid, "Collapse with MaxOrder 4")
}

func mustPagemap(t *testing.T, s *Space, addr Addr) PagemapEntry {
	t.Helper()
	m, ok := s.Pagemap(addr)
	if !ok {
		t.Fatalf("nothing mapped at %#x", uint64(addr))
	}
	return m
}

var e0geo, _ = folio.NewGeometry(4096, 9)
