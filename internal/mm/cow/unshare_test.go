package cow

import (
	"testing"
)

// unshare runs an unshare fault at addr, as a read-only pin of a shared
// page does (FAULT_FLAG_UNSHARE).
func unshare(t *testing.T, s *Space, addr Addr) {
	t.Helper()
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	f := fault{addr: addr, flags: faultUnshare}
	if err := s.handleFault(&f); err != nil {
		t.Fatal(err)
	}
}

// TestUnshareFault: an unshare makes the page exclusive and leaves it
// read-only: a shared page is copied (or reused once the other side is
// gone), an exclusive one is left alone, the zero page gets a private zeroed
// page. Writes through the space afterwards are seen in the page that is
// mapped, and never by the other side.
func TestUnshareFault(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(cfg.orders(e.a.Geometry()))
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, pattern('u', 2<<20))
			c := e.fork(s)

			// Shared: copied, read-only, exclusive; the child keeps its page.
			before, _ := entry(s, addr)
			unshare(t, s, addr)
			after, _ := entry(s, addr)
			if after.Write() || after.PFN() == before.PFN() || !e.a.PageAnonExclusive(after.PFN()) {
				t.Fatalf("unshare of a shared page: %v → %v (exclusive %v)", before, after, e.a.PageAnonExclusive(after.PFN()))
			}
			if st := s.Stats(); st.WPCopy != 1 {
				t.Fatalf("WPCopy %d after one unshare", st.WPCopy)
			}
			e.check()
			// Already exclusive: nothing happens.
			unshare(t, s, addr)
			if again, _ := entry(s, addr); again != after {
				t.Fatalf("unshare of an exclusive page changed it: %v → %v", after, again)
			}
			write(t, s, addr, []byte("x"))
			expect(t, c, addr, []byte("u"))

			// The child alone: the other side has its own copy now, so the
			// child's page is exclusive to it after a reuse, no copy.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			cs := c.Stats()
			unshare(t, c, addr+4096)
			if st := c.Stats(); st.WPCopy != cs.WPCopy {
				t.Fatal("unshare copied a page only the child maps")
			}
			if p, _ := entry(c, addr+4096); p.Write() || !e.a.PageAnonExclusive(p.PFN()) {
				t.Fatalf("after a reusing unshare: %v", p)
			}

			// The zero page: a private zeroed page, read-only.
			z := mustMap(t, c, 2<<20, ProtRead|ProtWrite)
			read(t, c, z, 1)
			unshare(t, c, z)
			p, _ := entry(c, z)
			if p.Zero() || p.Write() || !e.a.PageAnonExclusive(p.PFN()) {
				t.Fatalf("unshare of the zero page: %v", p)
			}
			expect(t, c, z, fill(0, 4096))
			e.check()
		})
	}
}

// TestLocklessAccessDoesNotAllocate: ReadAt and WriteAt of mapped,
// writable memory stay on the lockless path and allocate nothing.
func TestLocklessAccessDoesNotAllocate(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(DefaultOrders(e.a))
	addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('z', 4<<20))
	small, page, big := make([]byte, 8), make([]byte, 4096), make([]byte, 1<<20)
	for name, op := range map[string]func(){
		"ReadAt 8 bytes":     func() { s.ReadAt(small, int64(addr)+12345) },
		"WriteAt 8 bytes":    func() { s.WriteAt(small, int64(addr)+12345) },
		"ReadAt a page":      func() { s.ReadAt(page, int64(addr)+4096) },
		"WriteAt 1 MiB":      func() { s.WriteAt(big, int64(addr)+(1<<20)+17) },
		"ReadAt across huge": func() { s.ReadAt(big, int64(addr)+(2<<20)-(1<<19)) },
	} {
		if n := testing.AllocsPerRun(100, op); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
	if st := s.Stats(); st.Faults != 2 { // the two huge-entry faults of the first write
		t.Fatalf("the accesses faulted: %d faults", st.Faults)
	}
}
