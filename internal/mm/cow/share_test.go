package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// leafAt returns the leaf that maps addr in s.
func leafAt(s *Space, addr Addr) (l interface{ Shared() bool }, ok bool) {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return nil, false
	}
	lf := d.Leaf(d.Index(uint64(addr)))
	return lf, lf != nil
}

func TestForkSharesLeavesAndReadsDoNotUnshare(t *testing.T) {
	e := newEnv(t, 32<<20)
	s := e.space(Orders(4))
	const size = 8 << 20 // four leaves
	addr := mustMap(t, s, size, ProtRead|ProtWrite)
	data := pattern('s', size)
	write(t, s, addr, data)
	c := e.fork(s)
	if st := s.Stats(); st.LeafShares != 4 {
		t.Fatalf("LeafShares %d, want 4", st.LeafShares)
	}
	if l, _ := leafAt(c, addr); !l.Shared() {
		t.Fatal("the child's leaf is not shared")
	}
	if cs := c.Stats(); cs.Resident != size/4096 {
		t.Fatalf("child Resident %d, want %d", cs.Resident, size/4096)
	}
	e.check()
	expect(t, c, addr, data) // streaming the snapshot out
	if cs, ps := c.Stats(), s.Stats(); cs.LeafUnshares != 0 || ps.LeafUnshares != 0 || cs.Faults != 0 {
		t.Fatalf("reads unshared leaves or faulted: child %d unshares %d faults, parent %d unshares",
			cs.LeafUnshares, cs.Faults, ps.LeafUnshares)
	}
	// The first write on each side takes a private copy of that one leaf.
	write(t, s, addr+5, []byte("parent"))
	write(t, c, addr+(6<<20)+5, []byte("child"))
	if ps, cs := s.Stats(), c.Stats(); ps.LeafUnshares != 1 || cs.LeafUnshares != 1 {
		t.Fatalf("unshares: parent %d child %d, want 1 each", ps.LeafUnshares, cs.LeafUnshares)
	}
	e.check()
	expect(t, c, addr, data[:4096])
	expect(t, s, addr+(6<<20), data[6<<20:(6<<20)+4096])
	if l, _ := leafAt(c, addr+(2<<20)); !l.Shared() {
		t.Fatal("an untouched leaf got unshared")
	}
}

// TestSharedLeafAccountingMoves: the parent (the accounting user) writes
// first and leaves the leaf to the child; when the child then closes, the
// parent's pages are its own again and its writes reuse them.
func TestSharedLeafAccountingMoves(t *testing.T) {
	for _, order := range []int{0, 4} {
		e := newEnv(t, 16<<20)
		s := e.space(Orders(order))
		addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
		write(t, s, addr, pattern('a', 2<<20))
		c := e.fork(s)
		c2 := e.fork(s) // three users of one leaf
		write(t, s, addr, []byte("p"))
		e.check()
		write(t, c2, addr+4096, []byte("c2"))
		e.check()
		if err := c2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		e.check()
		before := s.Stats()
		for off := Addr(0); off < 2<<20; off += 4096 * 5 {
			write(t, s, addr+off, []byte("w"))
		}
		st := s.Stats()
		if st.WPCopy != before.WPCopy || st.WPReuse == before.WPReuse {
			t.Fatalf("order %d: after every child closed, writes copied %d and reused %d pages",
				order, st.WPCopy-before.WPCopy, st.WPReuse-before.WPReuse)
		}
		e.check()
	}
}

// TestPinnedLeafIsCopiedAtFork: a leaf that may hold a pinned page is not
// shared; the child gets a copy of the pinned exclusive page and the parent
// keeps it writable (coherent with the pin).
func TestPinnedLeafIsCopiedAtFork(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('p', 4<<20))
	p, _ := entry(s, addr)
	head, _, _ := e.a.PageFolio(p.PFN())
	d := s.table.Dir(uint64(addr))
	l := d.Leaf(d.Index(uint64(addr)))
	l.SetMaybePinned()
	e.a.FolioPin(head, 1) // as pin.Pin would
	c := e.fork(s)
	st := s.Stats()
	if st.LeafShares != 1 || st.ForkCopies != 1 {
		t.Fatalf("LeafShares %d ForkCopies %d: want the pinned leaf copied (one pinned page), the other shared", st.LeafShares, st.ForkCopies)
	}
	if p, _ := entry(s, addr); !p.Write() || !e.a.PageAnonExclusive(p.PFN()) {
		t.Fatalf("the parent's pinned page lost exclusivity: %v", p)
	}
	write(t, s, addr, []byte("via parent"))
	if got := e.a.PageBytes(head, 1)[:10]; string(got) != "via parent" {
		t.Fatalf("the pinned page does not see the parent's write: %q", got)
	}
	expect(t, c, addr, pattern('p', 4096))
	e.a.FolioUnpin(head, 1)
	e.check()
	// Without a pin, the hint is checked and cleared, and the leaf shared.
	c2 := e.fork(s)
	if st := s.Stats(); st.LeafShares != 3 {
		t.Fatalf("LeafShares %d after a fork with no pin left, want 3", st.LeafShares)
	}
	_ = c2
	_ = folio.PFN(0)
}

// TestRangeOpsOnSharedLeaves: Unmap of a whole shared leaf drops it (the
// child keeps it), partial Unmap, Protect and Remap take a copy first.
func TestRangeOpsOnSharedLeaves(t *testing.T) {
	e := newEnv(t, 32<<20)
	s := e.space(Orders(4))
	addr := mustMap(t, s, 8<<20, ProtRead|ProtWrite)
	data := pattern('r', 8<<20)
	write(t, s, addr, data)
	c := e.fork(s)
	mb := Addr(1 << 20)
	if err := s.Unmap(addr, 2<<20); err != nil { // whole leaf
		t.Fatal(err)
	}
	if st := s.Stats(); st.LeafUnshares != 0 {
		t.Fatalf("Unmap of a whole shared leaf copied it (%d unshares)", st.LeafUnshares)
	}
	if err := s.Unmap(addr+2*mb, 4096); err != nil { // part of a leaf
		t.Fatal(err)
	}
	if err := s.Protect(addr+4*mb, 4096, ProtRead); err != nil {
		t.Fatal(err)
	}
	if err := s.Remap(addr+6*mb, 1<<20, addr+(1<<30)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LeafUnshares != 3 {
		t.Fatalf("LeafUnshares %d, want 3 (partial Unmap, Protect, Remap)", st.LeafUnshares)
	}
	e.check()
	expect(t, c, addr, data) // the child sees all of it, untouched
	expect(t, s, addr+(1<<30), data[6*mb:7*mb])
	expect(t, s, addr+4*mb, data[4*mb:4*mb+4096])
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	e.check()
}
