package cow

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// TestMisuse: every misuse of API.md returns its sentinel and leaves the
// space and its data as they were.
func TestMisuse(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(DefaultOrders(e.a))
	// Three regions with holes between them.
	addr := mustMap(t, s, 32<<20, ProtRead|ProtWrite)
	ro, none := addr+8<<20, addr+16<<20
	if err := s.Unmap(addr+4<<20, 28<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.MapFixed(ro, 2<<20, ProtRead); err != nil {
		t.Fatal(err)
	}
	if err := s.MapFixed(none, 2<<20, ProtNone); err != nil {
		t.Fatal(err)
	}
	data := pattern('m', 4<<20)
	write(t, s, addr, data)
	if st := s.Stats(); st.Regions != 3 {
		t.Fatalf("setup: %d regions, want 3", st.Regions)
	}
	const far = Addr(1) << 46 // mapped by nothing
	page := 4096

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"Map of zero bytes", func() error { _, err := s.Map(0, ProtRead); return err }, ErrInvalid},
		{"Map of a negative length", func() error { _, err := s.Map(-4096, ProtRead); return err }, ErrInvalid},
		{"Map of an unaligned length", func() error { _, err := s.Map(100, ProtRead); return err }, ErrInvalid},
		{"Map with an unknown protection", func() error { _, err := s.Map(page, Prot(8)); return err }, ErrInvalid},
		{"Map larger than the address space", func() error { _, err := s.Map(1<<47, ProtRead); return err }, folio.ErrNoMemory},
		{"MapFixed at address zero", func() error { return s.MapFixed(0, page, ProtRead) }, ErrInvalid},
		{"MapFixed at an unaligned address", func() error { return s.MapFixed(far+1, page, ProtRead) }, ErrInvalid},
		{"MapFixed past the address space", func() error { return s.MapFixed(1<<47-Addr(page), 2*page, ProtRead) }, ErrInvalid},
		{"MapFixed with an unknown protection", func() error { return s.MapFixed(far, page, Prot(0x10)) }, ErrInvalid},
		{"Unmap of an unaligned address", func() error { return s.Unmap(addr+1, page) }, ErrInvalid},
		{"Unmap of an unaligned length", func() error { return s.Unmap(addr, 1) }, ErrInvalid},
		{"Unmap of zero bytes", func() error { return s.Unmap(addr, 0) }, ErrInvalid},
		{"Protect of unmapped memory", func() error { return s.Protect(far, page, ProtRead) }, ErrFault},
		{"Protect across a hole", func() error { return s.Protect(addr+4<<20-Addr(page), 2*page, ProtRead) }, ErrFault},
		{"Protect with an unknown protection", func() error { return s.Protect(addr, page, Prot(0xff)) }, ErrInvalid},
		{"Remap onto an overlapping range", func() error { return s.Remap(addr, 2*page, addr+Addr(page)) }, ErrInvalid},
		{"Remap of unmapped memory", func() error { return s.Remap(far, page, far+1<<30) }, ErrFault},
		{"Remap across a hole", func() error { return s.Remap(addr+4<<20-Addr(page), 2*page, far) }, ErrFault},
		{"Remap to address zero", func() error { return s.Remap(addr, page, 0) }, ErrInvalid},
		{"Advise with unknown advice", func() error { return s.Advise(addr, page, Advice(99)) }, ErrInvalid},
		{"Advise of unmapped memory", func() error { return s.Advise(far, page, DontNeed) }, ErrFault},
		{"Advise DontFork of unmapped memory", func() error { return s.Advise(far, page, DontFork) }, ErrFault},
		{"ReadAt of unmapped memory", func() error { _, err := s.ReadAt(make([]byte, 8), int64(far)); return err }, ErrFault},
		{"ReadAt at a negative offset", func() error { _, err := s.ReadAt(make([]byte, 8), -8); return err }, ErrInvalid},
		{"ReadAt past the address space", func() error { _, err := s.ReadAt(make([]byte, 8), 1<<47-4); return err }, ErrFault},
		{"ReadAt of PROT_NONE", func() error { _, err := s.ReadAt(make([]byte, 8), int64(none)); return err }, ErrProtection},
		{"WriteAt to read-only", func() error { _, err := s.WriteAt([]byte{1}, int64(ro)); return err }, ErrProtection},
		{"WriteAt to unmapped memory", func() error { _, err := s.WriteAt([]byte{1}, int64(far)); return err }, ErrFault},
		{"WriteAt at a negative offset", func() error { _, err := s.WriteAt([]byte{1}, -1); return err }, ErrInvalid},
		{"NewSpace without an arena", func() error { _, err := NewSpace(nil, Options{}); return err }, ErrInvalid},
		{"NewSpace with an order out of range", func() error { _, err := NewSpace(e.a, Options{Orders: Orders(40)}); return err }, ErrInvalid},
		{"NewSpace with an order above MaxOrder", func() error { _, err := NewSpace(e.a, Options{Orders: 1 << 12}); return err }, ErrInvalid},
		{"NewSpace with an unknown copy unit", func() error { _, err := NewSpace(e.a, Options{CopyUnit: 7}); return err }, ErrInvalid},
		{"Check of spaces of two arenas", func() error { return Check(s, otherArenaSpace(t)) }, ErrInvalid},
		{"Check without every live space", func() error { return checkWithout(e, s) }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			e.check()
			expect(t, s, addr, data)
			if st := s.Stats(); st.Regions != 3 {
				t.Fatalf("the failed call changed the regions: %d", st.Regions)
			}
		})
	}
	// A read that runs from a mapped page into a hole returns what it read.
	end := addr + 4<<20
	buf := make([]byte, 2*page)
	n, err := s.ReadAt(buf, int64(end)-int64(page))
	if !errors.Is(err, ErrFault) || n != page {
		t.Fatalf("read across the end of a region: %d, %v; want %d, ErrFault", n, err, page)
	}
}

func otherArenaSpace(t *testing.T) *Space {
	e := newEnv(t, 2<<20)
	return e.space(Orders())
}

// checkWithout calls Check with all live spaces of e but one extra space it
// creates and leaves out.
func checkWithout(e *env, s *Space) error {
	extra := e.space(Orders())
	defer func() {
		extra.Close()
	}()
	return Check(s)
}

func TestUseAfterClose(t *testing.T) {
	e := newEnv(t, 4<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	write(t, s, addr, []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ops := map[string]func() error{
		"Map":      func() error { _, err := s.Map(4096, ProtRead); return err },
		"MapFixed": func() error { return s.MapFixed(addr, 4096, ProtRead) },
		"Unmap":    func() error { return s.Unmap(addr, 4096) },
		"Protect":  func() error { return s.Protect(addr, 4096, ProtRead) },
		"Remap":    func() error { return s.Remap(addr, 4096, addr+1<<30) },
		"Advise":   func() error { return s.Advise(addr, 4096, DontFork) },
		"DontNeed": func() error { return s.Advise(addr, 4096, DontNeed) },
		"ReadAt":   func() error { _, err := s.ReadAt(make([]byte, 1), int64(addr)); return err },
		"WriteAt":  func() error { _, err := s.WriteAt([]byte{1}, int64(addr)); return err },
		"Fork":     func() error { _, err := s.Fork(); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if st := s.Stats(); st.Resident != 0 || st.Regions != 0 {
		t.Fatalf("a closed space: Resident %d Regions %d", st.Resident, st.Regions)
	}
	if st := e.a.Stats(); st.FreePages != st.TotalPages {
		t.Fatal("Close left pages allocated")
	}
	// The arena refuses to close while a space lives, and closes after.
	s2 := e.space(Orders())
	if err := e.a.Close(); !errors.Is(err, folio.ErrBusy) {
		t.Fatalf("arena Close with a live space: %v", err)
	}
	s2.Close()
}
