package cow

import (
	"fmt"
	"testing"
)

// pattern fills n bytes with a pattern tagged by c, so a misplaced page
// shows.
func pattern(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c + byte(i/4096)
	}
	return b
}

func TestCOWIsolationBothWays(t *testing.T) {
	for _, unit := range []CopyUnit{CopyPage, CopyFolio} {
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("%s/unit%d", cfg.name, unit), func(t *testing.T) {
				e := newEnv(t, 32<<20)
				s, err := NewSpace(e.a, Options{Orders: cfg.orders(e.a.Geometry()), CopyUnit: unit})
				if err != nil {
					t.Fatal(err)
				}
				e.spaces = append(e.spaces, s)
				const size = 4 << 20
				addr := mustMap(t, s, size, ProtRead|ProtWrite)
				write(t, s, addr, pattern('A', size))
				c := e.fork(s)
				e.check()

				// Parent writes: the child keeps the snapshot.
				write(t, s, addr+3*4096, fill('p', 4096))
				expect(t, c, addr+3*4096, pattern('A', 4*4096)[3*4096:])
				// Child writes: the parent does not see it.
				write(t, c, addr+(1<<20)+5, fill('c', 9000))
				expect(t, s, addr+(1<<20), pattern('A', (1<<20)+3*4096)[1<<20:])
				e.check()
				// Every page, both sides.
				pw := pattern('A', size)
				copy(pw[3*4096:], fill('p', 4096))
				cw := pattern('A', size)
				copy(cw[(1<<20)+5:], fill('c', 9000))
				expect(t, s, addr, pw)
				expect(t, c, addr, cw)

				ps, cs := s.Stats(), c.Stats()
				switch unit {
				case CopyPage:
					// The parent overwrote one whole page: a new page, no
					// old contents copied. The child's 9000 bytes from
					// offset 5 touch three pages: two partly (copied), one
					// whole (not).
					if ps.WPCopy != 1 || cs.WPCopy != 3 || ps.CopyBytes != 0 || cs.CopyBytes != 2*4096 {
						t.Fatalf("CopyPage: parent %d faults copying %d bytes, child %d copying %d; want 1/0 and 3/8192",
							ps.WPCopy, ps.CopyBytes, cs.WPCopy, cs.CopyBytes)
					}
				case CopyFolio:
					// The parent copies a whole folio; the child copies the
					// folios it writes, or reuses one the parent's copy left
					// to it alone.
					if ps.WPCopy != 1 || cs.WPCopy+cs.WPReuse == 0 {
						t.Fatalf("CopyFolio: parent WPCopy %d (%d bytes), child WPCopy %d WPReuse %d",
							ps.WPCopy, ps.CopyBytes, cs.WPCopy, cs.WPReuse)
					}
				}
				if st := s.Stats(); st.Forks != 1 || st.ForkCopies != 0 {
					t.Fatalf("Forks %d ForkCopies %d", st.Forks, st.ForkCopies)
				}
			})
		}
	}
}

// TestReuseAfterOtherSideClosed: once the child is gone, the parent's writes
// never copy. If the child only existed (its leaves shared, on-demand fork),
// nothing was write-protected and the parent writes with no fault at all. If
// the child wrote (taking copies of the leaves, which write-protects the
// parent's), the parent's writes reuse its pages: small folios by refcount,
// large ones by the mapcount == refcount rule, huge entries whole.
func TestReuseAfterOtherSideClosed(t *testing.T) {
	for _, childWrites := range []bool{false, true} {
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("%s/childWrites=%v", cfg.name, childWrites), func(t *testing.T) {
				e := newEnv(t, 16<<20)
				s := e.space(cfg.orders(e.a.Geometry()))
				const size = 2 << 20
				addr := mustMap(t, s, size, ProtRead|ProtWrite)
				write(t, s, addr, pattern('a', size))
				c := e.fork(s)
				huge := cfg.orders(e.a.Geometry()).Highest() == e.a.Geometry().PMDOrder
				if childWrites {
					write(t, c, addr+size-1, []byte{'c'})
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				e.check()
				faults := s.Stats().Faults
				for off := 0; off < size; off += 4096 * 7 {
					write(t, s, addr+Addr(off), []byte{'w'})
				}
				st := s.Stats()
				if st.WPCopy != 0 {
					t.Fatalf("writes after the child closed copied %d pages", st.WPCopy)
				}
				switch {
				case childWrites || huge:
					// Write-protected (by the child's copy of the leaf, or
					// because huge entries are copied at fork): reused.
					if st.WPReuse == 0 {
						t.Fatalf("no reuse: WPReuse %d", st.WPReuse)
					}
				default:
					if st.Faults != faults || st.WPReuse != 0 {
						t.Fatalf("a child that never wrote cost the parent %d faults, %d reuses", st.Faults-faults, st.WPReuse)
					}
				}
				if st.Resident != size/4096 {
					t.Fatalf("Resident %d, want %d: nothing new allocated", st.Resident, size/4096)
				}
				e.check()
			})
		}
	}
}

// TestProtectRoundTrip: data survives RW → None → R → RW; access follows
// the protection; the upgrade back to RW maps exclusive pages writable at
// once (no fault), shared pages stay read-only and copy on write.
func TestProtectRoundTrip(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(cfg.orders(e.a.Geometry()))
			const size = 2 << 20
			addr := mustMap(t, s, size, ProtRead|ProtWrite)
			data := pattern('r', size)
			write(t, s, addr, data)

			if err := s.Protect(addr, size, ProtNone); err != nil {
				t.Fatal(err)
			}
			_, err := s.ReadAt(make([]byte, 1), int64(addr+4096))
			wantErr(t, err, ErrProtection, "read of PROT_NONE")
			_, err = s.WriteAt([]byte{1}, int64(addr))
			wantErr(t, err, ErrProtection, "write of PROT_NONE")
			e.check()

			if err := s.Protect(addr, size, ProtRead); err != nil {
				t.Fatal(err)
			}
			expect(t, s, addr, data)
			_, err = s.WriteAt([]byte{1}, int64(addr))
			wantErr(t, err, ErrProtection, "write of read-only")
			e.check()

			if err := s.Protect(addr, size, ProtRead|ProtWrite); err != nil {
				t.Fatal(err)
			}
			faults := s.Stats().Faults
			write(t, s, addr+4096*3, []byte("again"))
			if got := s.Stats().Faults; got != faults {
				t.Fatalf("a write to an exclusive page after the RW upgrade faulted")
			}
			e.check()

			// Shared pages are not made writable by the upgrade.
			c := e.fork(s)
			if err := s.Protect(addr, size, ProtRead); err != nil {
				t.Fatal(err)
			}
			if err := s.Protect(addr, size, ProtRead|ProtWrite); err != nil {
				t.Fatal(err)
			}
			if p, _ := entry(s, addr); p.Write() {
				t.Fatalf("a shared page became writable by mprotect: %v", p)
			}
			write(t, s, addr, []byte("P"))
			expect(t, c, addr, data[:1])
			e.check()
		})
	}
}

func TestForkAdvice(t *testing.T) {
	e := newEnv(t, 16<<20)
	g := e.a.Geometry()
	s := e.space(DefaultOrders(e.a))
	addr := mustMap(t, s, 8<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('x', 8<<20))
	mb := Addr(1 << 20)
	if err := s.Advise(addr, 1<<20, DontFork); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr+2*mb, 1<<20, WipeOnFork); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr+4*mb, 1<<20, DontFork); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr+4*mb, 1<<20, DoFork); err != nil { // undone
		t.Fatal(err)
	}
	if err := s.Advise(addr+6*mb, 1<<20, WipeOnFork); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(addr+6*mb, 1<<20, KeepOnFork); err != nil { // undone
		t.Fatal(err)
	}
	c := e.fork(s)
	e.check()
	_, err := c.ReadAt(make([]byte, 1), int64(addr))
	wantErr(t, err, ErrFault, "child read of a DontFork range")
	expect(t, c, addr+2*mb, fill(0, 1<<20))                 // WipeOnFork: empty
	expect(t, c, addr+4*mb, pattern('x', 8<<20)[4*mb:5*mb]) // DoFork
	expect(t, c, addr+6*mb, pattern('x', 8<<20)[6*mb:7*mb]) // KeepOnFork
	expect(t, s, addr, pattern('x', 8<<20))                 // parent unchanged
	// The child's regions keep the advice: its own fork honours it too.
	gc := e.fork(c)
	expect(t, gc, addr+2*mb, fill(0, 4096))
	if st := s.Stats(); st.Regions != 4 {
		t.Fatalf("parent has %d regions, want 4: DontFork, plain, WipeOnFork, plain (undone advice merges back)", st.Regions)
	}
	_ = g
}

// TestCopyFolioPolicy: with CopyFolio, a write to a shared large folio
// copies it whole; further writes to it need no fault.
func TestCopyFolioPolicy(t *testing.T) {
	for _, order := range []int{2, 4, 9} {
		t.Run(fmt.Sprint("order", order), func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s, err := NewSpace(e.a, Options{Orders: Orders(order), CopyUnit: CopyFolio})
			if err != nil {
				t.Fatal(err)
			}
			e.spaces = append(e.spaces, s)
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, pattern('f', 2<<20))
			c := e.fork(s)
			write(t, s, addr+4096, []byte{'1'})
			st := s.Stats()
			n := uint64(4096) << order
			if st.WPCopy != 1 || st.CopyBytes != n {
				t.Fatalf("WPCopy %d CopyBytes %d, want one copy of %d bytes", st.WPCopy, st.CopyBytes, n)
			}
			faults := st.Faults
			write(t, s, addr+Addr(n)-1, []byte{'2'})
			if s.Stats().Faults != faults {
				t.Fatal("a write elsewhere in the copied folio faulted")
			}
			expect(t, c, addr, pattern('f', 2<<20))
			e.check()
		})
	}
}

// TestCopyFolioStaysInRegion: a shared folio that Protect left across two
// regions is copied whole only if it lies in the faulting one; otherwise a
// write to the read-write half made the read-only half writable too.
func TestCopyFolioStaysInRegion(t *testing.T) {
	e := newEnv(t, 16<<20)
	s, err := NewSpace(e.a, Options{Orders: Orders(4), CopyUnit: CopyFolio})
	if err != nil {
		t.Fatal(err)
	}
	e.spaces = append(e.spaces, s)
	const n = 16 * 4096 // one order-4 folio
	addr := mustMap(t, s, n, ProtRead|ProtWrite)
	write(t, s, addr, pattern('f', n))
	c := e.fork(s)
	if err := s.Protect(addr+n/2, n/2, ProtRead); err != nil {
		t.Fatal(err)
	}
	write(t, s, addr, []byte{'1'})
	_, err = s.WriteAt([]byte{'2'}, int64(addr+n/2))
	wantErr(t, err, ErrProtection, "a write to the read-only half")
	expect(t, c, addr, pattern('f', n))
	e.check()
}
