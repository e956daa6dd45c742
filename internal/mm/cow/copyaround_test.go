package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// forkedSpace returns a space of the given orders and copy unit with pages
// pages written with pattern 'A' from addr, and a Fork of it.
func forkedSpace(t *testing.T, e *env, orders OrderSet, unit CopyUnit, pages int) (s, c *Space, addr Addr) {
	t.Helper()
	s, err := NewSpace(e.a, Options{Orders: orders, CopyUnit: unit})
	if err != nil {
		t.Fatal(err)
	}
	e.spaces = append(e.spaces, s)
	addr = mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('A', pages*4096))
	return s, e.fork(s), addr
}

// overwritten is pattern 'A' over pages pages with the bytes touchEach
// writes to the touched ones.
func overwritten(pages int, touched []int) []byte {
	b := pattern('A', pages*4096)
	for _, p := range touched {
		b[p*4096+7] = byte(p + 1)
	}
	return b
}

// TestCopyAroundSequential: writing the pages of a forked space one after
// the other, the n-th COW fault in a row copies 2^n pages up to the end of
// its 64 KiB block, then a block per fault, the same ramp as fault-around;
// every page is counted as a copy, with its bytes, and is the writer's own
// writable, exclusive page, while the child keeps every old page.
func TestCopyAroundSequential(t *testing.T) {
	const pages = 256
	for _, c := range []struct {
		name   string
		orders func(*env) OrderSet
		order  []int
	}{
		{"order0/up", func(*env) OrderSet { return Orders() }, seq(0, pages, 1)},
		{"order0/down", func(*env) OrderSet { return Orders() }, seq(pages-1, -1, -1)},
		{"64KiB/up", func(e *env) OrderSet { return Orders(e.a.Geometry().ContOrder) }, seq(0, pages, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 32<<20)
			s, child, addr := forkedSpace(t, e, c.orders(e), CopyPage, pages)
			write(t, child, addr+(1<<20), []byte{1}) // the child unshares the leaf: the parent's faults then copy
			faults := s.Stats().Faults
			touchEach(t, s, addr, c.order)
			st := s.Stats()
			const wantFaults, wantAround = 5 + pages/16 - 1, 3 + pages/16 - 1
			if st.Faults-faults != wantFaults || st.CopyAround != wantAround || st.CopyAroundPages != pages-wantFaults {
				t.Fatalf("%d pages rewritten in order: %d faults, %d copy-arounds copying %d pages beyond the faulting ones; want %d, %d, %d",
					pages, st.Faults-faults, st.CopyAround, st.CopyAroundPages, wantFaults, wantAround, pages-wantFaults)
			}
			if st.WPCopy != pages || st.CopyBytes != pages*4096 || st.WPCopyDiscarded != 0 || st.WPReuse != 0 {
				t.Fatalf("WPCopy %d, CopyBytes %d, discarded %d, reused %d; want %d copies of %d bytes",
					st.WPCopy, st.CopyBytes, st.WPCopyDiscarded, st.WPReuse, pages, pages*4096)
			}
			for p := range pages {
				en, _ := entry(s, addr+Addr(p)*4096)
				old, _ := entry(child, addr+Addr(p)*4096)
				if !en.Write() || !e.a.PageAnonExclusive(en.PFN()) || en.PFN() == old.PFN() {
					t.Fatalf("page %d mapped %v (exclusive %v), the child's %v", p, en, e.a.PageAnonExclusive(en.PFN()), old)
				}
			}
			expect(t, s, addr, overwritten(pages, c.order))
			expect(t, child, addr, pattern('A', pages*4096))
		})
	}
}

// TestCopyAroundCopiesOnlyWhatAWriteWould: in the window of a copy-around
// a page the parent already made its own (exclusive, read-only after an
// unshare), a page it may reuse (the child copied its own) and pages not
// mapped at all are left as they are; the others are copied.
func TestCopyAroundCopiesOnlyWhatAWriteWould(t *testing.T) {
	e := newEnv(t, 32<<20)
	s, child, addr := forkedSpace(t, e, Orders(), CopyPage, 16)
	touchEach(t, child, addr, []int{9}) // the child's copy of page 9: the parent may reuse its own
	if err := s.Advise(addr+10*4096, 2*4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	unshare(t, s, addr+8*4096) // the parent's page 8: a private copy, read-only
	before := map[int]pte.PTE{}
	for _, p := range []int{8, 9} {
		before[p], _ = entry(s, addr+Addr(p)*4096)
	}
	copies := s.Stats().WPCopy
	// Page 0; then 1-2; then 3-6; then the window 7-14, of which 8, 9, 10
	// and 11 are not copied.
	touchEach(t, s, addr, []int{0, 1, 3, 7})
	st := s.Stats()
	if st.WPCopy-copies != 11 || st.CopyAroundPages != 7 || st.CopyAround != 3 || st.WPReuse != 0 {
		t.Fatalf("WPCopy +%d, CopyAround %d (%d pages), WPReuse %d; want 11, 3 (7), 0", st.WPCopy-copies, st.CopyAround, st.CopyAroundPages, st.WPReuse)
	}
	for _, p := range []int{8, 9} {
		if en, _ := entry(s, addr+Addr(p)*4096); en != before[p] {
			t.Fatalf("page %d: %v became %v", p, before[p], en)
		}
	}
	for _, p := range []int{10, 11} {
		if en, _ := entry(s, addr+Addr(p)*4096); !en.None() {
			t.Fatalf("page %d, dropped in the parent, is %v", p, en)
		}
	}
	want := overwritten(16, []int{0, 1, 3, 7})
	clear(want[10*4096 : 12*4096])
	expect(t, s, addr, want)
	expect(t, child, addr, overwritten(16, []int{9}))
}

// TestCopyAroundLosesRaces: while a copy-around of pages 1-2 has dropped
// the PTL, page 2 changes under it: another writer of the space copies it,
// or (the child gone) reuses it and makes it exclusive, writable or not
// (an unshare), or a DontNeed
// drops both. Under the PTL again, each page is rechecked alone: the ones
// that changed are discarded (page 1 too, in which case the fault
// retries), the others installed, and nothing leaks.
func TestCopyAroundLosesRaces(t *testing.T) {
	for _, c := range []struct {
		name      string
		while     func(t *testing.T, s, child *Space, addr Addr)
		discarded uint64
		parent    []byte
	}{
		{"another writer copies page 2", func(t *testing.T, s, _ *Space, addr Addr) {
			touchEach(t, s, addr, []int{2})
		}, 1, overwritten(3, []int{0, 1, 2})},
		{"page 2 is reused meanwhile", func(t *testing.T, s, child *Space, addr Addr) {
			if err := child.Close(); err != nil {
				t.Error(err)
			}
			touchEach(t, s, addr, []int{2})
			if st := s.Stats(); st.WPReuse != 1 {
				t.Errorf("the write to page 2 did not reuse it: %v", st)
			}
		}, 1, overwritten(3, []int{0, 1, 2})},
		{"page 2 is unshared meanwhile", func(t *testing.T, s, child *Space, addr Addr) {
			// A read-only pin's unshare reuses the page, exclusive and
			// still read-only: the entry is unchanged, and only the
			// AnonExclusive recheck keeps the copy from replacing it.
			if err := child.Close(); err != nil {
				t.Error(err)
			}
			before, _ := entry(s, addr+2*4096)
			unshare(t, s, addr+2*4096)
			if after, _ := entry(s, addr+2*4096); after != before || !s.a.PageAnonExclusive(after.PFN()) {
				t.Errorf("the unshare of page 2 did not reuse it in place: %v → %v", before, after)
			}
		}, 1, overwritten(3, []int{0, 1})},
		{"a DontNeed drops both", func(t *testing.T, s, _ *Space, addr Addr) {
			if err := s.Advise(addr, 2<<20, DontNeed); err != nil {
				t.Error(err)
			}
		}, 2, func() []byte { b := make([]byte, 3*4096); b[4096+7] = 2; return b }()},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 32<<20)
			s, child, addr := forkedSpace(t, e, Orders(), CopyPage, 3)
			touchEach(t, s, addr, []int{0})
			paused, resume := pauseFirst(t, testhook.WPCopyBeforeInstall)
			done := make(chan struct{})
			go func() {
				defer close(done)
				touchEach(t, s, addr, []int{1}) // copies 1 and 2
			}()
			<-paused
			c.while(t, s, child, addr)
			close(resume)
			<-done
			st := s.Stats()
			if st.WPCopyDiscarded != c.discarded || st.CopyAround != 1-c.discarded/2 {
				t.Fatalf("discarded %d, copy-arounds %d; want %d, %d", st.WPCopyDiscarded, st.CopyAround, c.discarded, 1-c.discarded/2)
			}
			expect(t, s, addr, c.parent)
			if !child.Closed() {
				expect(t, child, addr, pattern('A', 3*4096))
			}
		})
	}
}
