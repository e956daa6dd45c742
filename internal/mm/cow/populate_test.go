package cow

import (
	"testing"
)

// TestPopulate: PopulateWrite faults a range in for writing at the space's
// orders (later writes fault no more), PopulateRead maps the zero page
// into what was never written; the errors are the issue's: a read-only
// range refuses PopulateWrite, a PROT_NONE one both, a hole is ErrFault,
// all checked before anything is faulted.
func TestPopulate(t *testing.T) {
	e := newEnv(t, 32<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.ContOrder, g.PMDOrder))
	addr := mustMap(t, s, 4<<20+64<<10, ProtRead|ProtWrite) // two huge slots and one contpte block
	if err := s.Advise(addr, 4<<20+64<<10, PopulateWrite); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.FaultAlloc[g.PMDOrder] != 2 || st.FaultAlloc[g.ContOrder] != 1 || st.Resident != (4<<20+64<<10)/4096 {
		t.Fatalf("PopulateWrite: FaultAlloc %v, Resident %d; want 2 PMD folios, 1 contpte folio, all resident", st.FaultAlloc, st.Resident)
	}
	faults := st.Faults
	write(t, s, addr+3<<20, fill('w', 1<<20))
	if got := s.Stats().Faults; got != faults {
		t.Fatalf("writes after PopulateWrite took %d faults", got-faults)
	}

	r := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	write(t, s, r, []byte("x")) // one page has memory already
	if err := s.Advise(r, 1<<20, PopulateRead); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().ZeroPageMaps; got != 1<<20/4096-16 { // the first contpte folio holds the written page
		t.Fatalf("PopulateRead mapped the zero page %d times", got)
	}
	expect(t, s, r, []byte("x"))

	ro := mustMap(t, s, 1<<20, ProtRead)
	none := mustMap(t, s, 1<<20, ProtNone)
	wantErr(t, s.Advise(ro, 1<<20, PopulateWrite), ErrProtection, "PopulateWrite of a read-only range")
	if err := s.Advise(ro, 1<<20, PopulateRead); err != nil {
		t.Fatalf("PopulateRead of a read-only range: %v", err)
	}
	wantErr(t, s.Advise(none, 1<<20, PopulateRead), ErrProtection, "PopulateRead of a PROT_NONE range")
	wantErr(t, s.Advise(none, 1<<20, PopulateWrite), ErrProtection, "PopulateWrite of a PROT_NONE range")
	hole := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	if err := s.Unmap(hole+1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().Resident
	wantErr(t, s.Advise(hole, 2<<20, PopulateWrite), ErrFault, "PopulateWrite over a hole")
	if got := s.Stats().Resident; got != before {
		t.Fatalf("a PopulateWrite refused for a hole faulted %d pages in first", got-before)
	}
	e.check()
}

// TestZeroPageUpgrade: a write in a block that maps only the zero page or
// nothing (to the zero page, or next to it) gets a folio of the space's
// largest fitting order, which replaces the zero page (the read-then-write
// pattern of a hash table gets large folios); a block with a page of its
// own falls back order by order, down to the copy of one page.
func TestZeroPageUpgrade(t *testing.T) {
	e := newEnv(t, 32<<20)
	g := e.a.Geometry()
	s := e.space(Orders(2, g.ContOrder))
	addr := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	read(t, s, addr, 64<<10)                     // the whole first 64 KiB block: zero page
	read(t, s, addr+64<<10, 4096)                // one page of the second block; the rest is none
	write(t, s, addr+5*4096, []byte("x"))        // block 1: all zero page
	write(t, s, addr+64<<10+9*4096, []byte("y")) // block 2: zero page and none
	st := s.Stats()
	if st.ZeroUpgrades != 2 || st.FaultAlloc[g.ContOrder] != 2 || st.WPCopy != 0 {
		t.Fatalf("ZeroUpgrades %d FaultAlloc %v WPCopy %d: want both blocks upgraded over their zero pages at the contpte order",
			st.ZeroUpgrades, st.FaultAlloc[:5], st.WPCopy)
	}
	for _, a := range []Addr{addr, addr + 64<<10} {
		if m, ok := s.Pagemap(a); !ok || m.Order != g.ContOrder || !m.Cont {
			t.Fatalf("at %#x: %+v, want a folded block of one contpte folio", uint64(a), m)
		}
	}
	expect(t, s, addr+5*4096, []byte("x"))
	expect(t, s, addr, make([]byte, 4096))

	// A block that holds pages of its own falls back to 16 KiB.
	b := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	write(t, s, b, []byte("a"))                                   // a 64 KiB folio...
	if err := s.Advise(b+4*4096, 12*4096, DontNeed); err != nil { // ...of which pages 0-3 stay
		t.Fatal(err)
	}
	read(t, s, b+12*4096, 3*4096)       // pages 12-14: the zero page; 15: nothing
	write(t, s, b+15*4096, []byte("z")) // block [12,16): zero pages and none: upgrades at order 2
	faults := s.Stats().Faults
	write(t, s, b+13*4096, []byte("w")) // now inside the new folio: no fault
	if got := s.Stats().Faults; got != faults {
		t.Fatalf("a write inside the upgraded folio faulted")
	}
	if st := s.Stats(); st.ZeroUpgrades != 3 || st.FaultAlloc[2] != 1 {
		t.Fatalf("ZeroUpgrades %d FaultAlloc %v: want a 16 KiB upgrade", st.ZeroUpgrades, st.FaultAlloc[:5])
	}
	expect(t, s, b+13*4096, []byte("w"))
	e.check()
}
