package cow

import (
	"bytes"
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Regression tests from a review: pages pinned in a space must never reach
// a Fork child through a shared leaf, whatever path (a split, a Remap) made
// the leaf they are in.

// pinFolioAt pins the folio that maps addr in s as pin.Pin would (one pin on
// the folio, the leaf's hint set if the page is mapped through a leaf) and
// returns its head and the pinned page.
func pinFolioAt(t *testing.T, e *env, s *Space, addr Addr) (head, pfn folio.PFN) {
	t.Helper()
	p, huge := entry(s, addr)
	if !p.Present() {
		t.Fatalf("nothing mapped at %#x", uint64(addr))
	}
	pfn = p.PFN()
	if huge {
		pfn += folio.PFN((uint64(addr) % s.table.LeafSize()) / s.ps)
	} else {
		d := s.table.Dir(uint64(addr))
		d.Leaf(d.Index(uint64(addr))).SetMaybePinned()
	}
	head, _, _ = e.a.PageFolio(pfn)
	e.a.FolioPin(head, 1)
	return head, pfn
}

// checkPinAfterFork writes through the parent and through the "pin" (the
// page's bytes) and checks pin coherence with the parent and isolation of
// the child.
func checkPinAfterFork(t *testing.T, e *env, s, c *Space, addr Addr, pfn folio.PFN, old []byte) {
	t.Helper()
	write(t, s, addr, []byte("via parent"))
	if got := e.a.PageBytes(pfn, 1)[:10]; string(got) != "via parent" {
		t.Errorf("pin coherence: the pinned page reads %q after the parent wrote \"via parent\": the parent's page was replaced by a COW copy", got)
	}
	copy(e.a.PageBytes(pfn, 1)[100:], "via pin") // DMA into the pinned page
	if got := read(t, c, addr+100, 7); string(got) == "via pin" {
		t.Errorf("isolation: the child sees a write made through the parent's pin")
	}
	if got := read(t, c, addr, 10); !bytes.Equal(got, old[:10]) {
		t.Errorf("isolation: the child reads %q, want the snapshot %q", got, old[:10])
	}
}

// TestForkCopiesPinnedPageOfSplitHuge: copyHuge splits a huge entry of a
// pinned folio with exclusive pages so that the PTE path copies them. The
// leaf the split created had no MaybePinned hint, so copyRange handed it to
// shareLeaf, which shared it with the child without looking at its folios:
// the pinned page was mapped by both spaces through a shared leaf, the
// parent's next write unshared the leaf and COW-copied the pinned page (pin
// coherence lost) and the child kept seeing the pinned page (isolation
// lost). The split now carries the hint over.
func TestForkCopiesPinnedPageOfSplitHuge(t *testing.T) {
	e := newEnv(t, 16<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.PMDOrder))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	data := pattern('h', 2<<20)
	write(t, s, addr, data)
	if _, huge := entry(s, addr); !huge {
		t.Fatal("not mapped by a huge entry")
	}
	head, pfn := pinFolioAt(t, e, s, addr)
	c := e.fork(s)
	st := s.Stats()
	t.Logf("after fork: LeafShares %d ForkCopies %d", st.LeafShares, st.ForkCopies)
	if st.ForkCopies == 0 {
		t.Errorf("fork of a pinned, exclusive huge folio copied nothing for the child (LeafShares %d)", st.LeafShares)
	}
	checkPinAfterFork(t, e, s, c, addr, pfn, data)
	e.a.FolioUnpin(head, 1)
}

// TestForkCopiesPinnedPageOfEarlierSplit: the same hole through another
// door. A pinned huge folio is split before the fork by a partial DontNeed
// (splitHugeLocked made a leaf with no MaybePinned hint); Fork then shared
// that leaf without checking its folios.
func TestForkCopiesPinnedPageOfEarlierSplit(t *testing.T) {
	e := newEnv(t, 16<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.PMDOrder))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	data := pattern('k', 2<<20)
	write(t, s, addr, data)
	head, pfn := pinFolioAt(t, e, s, addr)
	if err := s.Advise(addr+(2<<20)-4096, 4096, DontNeed); err != nil { // splits the huge entry
		t.Fatal(err)
	}
	if _, huge := entry(s, addr); huge {
		t.Fatal("still a huge entry")
	}
	c := e.fork(s)
	if st := s.Stats(); st.ForkCopies == 0 {
		t.Errorf("fork shared the leaf of a pinned folio (LeafShares %d, ForkCopies 0)", st.LeafShares)
	}
	checkPinAfterFork(t, e, s, c, addr, pfn, data)
	e.a.FolioUnpin(head, 1)
}

// TestRemapKeepsPinnedHint: Remap (movePTEs/moveLeafRange) moved the entry
// of a pinned page into a leaf with no MaybePinned hint (the hint stayed on
// the source leaf), and a later Fork shared the destination leaf, pinned
// page and all.
func TestRemapKeepsPinnedHint(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	data := pattern('m', 2<<20)
	write(t, s, addr, data)
	head, pfn := pinFolioAt(t, e, s, addr)
	dst := mustMap(t, s, 2<<20, ProtRead|ProtWrite) // a fresh slot, no leaf yet
	if err := s.Remap(addr, 2<<20, dst); err != nil {
		t.Fatal(err)
	}
	c := e.fork(s)
	if st := s.Stats(); st.ForkCopies == 0 {
		t.Errorf("fork shared the leaf a pinned page was remapped into (LeafShares %d, ForkCopies 0)", st.LeafShares)
	}
	checkPinAfterFork(t, e, s, c, dst, pfn, data)
	e.a.FolioUnpin(head, 1)
}
