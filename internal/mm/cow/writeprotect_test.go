package cow

import (
	"testing"
)

// TestWriteProtect: the soft-dirty reset leaves every page read-only and
// AnonExclusive, regions unchanged; the next write of each page faults and
// reuses it in place, never copies.
func TestWriteProtect(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(cfg.orders(e.a.Geometry()))
			const size = 2 << 20
			addr := mustMap(t, s, 2*size, ProtRead|ProtWrite)
			ro := addr + size
			if err := s.Protect(ro, size, ProtRead); err != nil {
				t.Fatal(err)
			}
			wo := mustMap(t, s, size, ProtWrite) // write-only: readable too
			write(t, s, wo, []byte("wo"))
			if err := s.WriteProtect(wo, size); err != nil {
				t.Fatal(err)
			}
			expect(t, s, wo, []byte("wo"))
			write(t, s, wo, []byte("WO"))
			e.check()
			data := pattern('w', size)
			write(t, s, addr, data)
			regions := s.Stats().Regions

			if err := s.WriteProtect(addr, 2*size); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Regions; got != regions {
				t.Fatalf("WriteProtect changed the regions: %d, want %d", got, regions)
			}
			for va := addr; va < addr+size; va += 4096 {
				m, ok := s.Pagemap(va)
				if !ok || m.Writable || !m.Exclusive {
					t.Fatalf("after WriteProtect %#x maps %+v, want read-only and exclusive", uint64(va), m)
				}
			}
			e.check()

			before := s.Stats()
			write(t, s, addr+4096, []byte("again"))
			after := s.Stats()
			if after.WPReuse == before.WPReuse || after.WPCopy != before.WPCopy {
				t.Fatalf("the write after WriteProtect: WPReuse %d→%d, WPCopy %d→%d; want a reuse, no copy",
					before.WPReuse, after.WPReuse, before.WPCopy, after.WPCopy)
			}
			want := append([]byte(nil), data...)
			copy(want[4096:], "again")
			expect(t, s, addr, want)
			_, err := s.WriteAt([]byte{1}, int64(ro))
			wantErr(t, err, ErrProtection, "write to the read-only region after WriteProtect")
			e.check()

			wantErr(t, s.WriteProtect(addr+4*size, 4096), ErrFault, "WriteProtect of unmapped memory")
			wantErr(t, s.WriteProtect(addr+1, 4096), ErrInvalid, "WriteProtect of a misaligned address")
		})
	}
}
