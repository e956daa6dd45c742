package cow

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// slotLeaf returns the leaf that maps addr in s (nil for none or a huge
// entry).
func slotLeaf(s *Space, addr Addr) *pte.Leaf {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return nil
	}
	return d.Leaf(d.Index(uint64(addr)))
}

// contents reads every region of s whole, with its description: what a
// space "is" for ResetTo.
func contents(t *testing.T, s *Space) string {
	t.Helper()
	var b bytes.Buffer
	for _, r := range s.Regions() {
		fmt.Fprintf(&b, "%v\n", r)
		if r.Prot.readable() {
			b.Write(read(t, s, r.Addr, r.Length))
		}
	}
	return b.String()
}

// TestResetTo: after a run of every kind of change (writes, a new region,
// an unmapped one, a protection, advice, DontNeed, Remap), ResetTo gives
// back exactly the snapshot's regions and contents, copies no page, keeps
// every slot the run did not touch, and frees what the run allocated.
func TestResetTo(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 64<<20)
			s := e.space(c.orders(e.a.Geometry()))
			a := mustMap(t, s, 8<<20, ProtRead|ProtWrite)
			b := mustMap(t, s, 2<<20, ProtRead)
			write(t, s, a, bytes.Repeat([]byte("pristine"), 1<<20)) // 8 MiB
			snap := e.fork(s)
			want := contents(t, snap)
			used := e.a.Stats().FreePages
			untouched := slotLeaf(s, a+6<<20)

			write(t, s, a+4096, []byte("run 1")) // a COW copy in the first slot
			write(t, s, a+2<<20+100, []byte("run 1"))
			n := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
			write(t, s, n, []byte("new region"))
			if err := s.Unmap(b, 2<<20); err != nil {
				t.Fatal(err)
			}
			if err := s.Protect(a+4<<20, 64<<10, ProtNone); err != nil {
				t.Fatal(err)
			}
			if err := s.Advise(a+5<<20, 2<<20, DontNeed); err != nil {
				t.Fatal(err)
			}
			if err := s.Advise(a, 4096, DontFork); err != nil {
				t.Fatal(err)
			}
			if contents(t, s) == want {
				t.Fatal("the run changed nothing")
			}
			copies := s.Stats().WPCopy

			if err := s.ResetTo(snap); err != nil {
				t.Fatal(err)
			}
			if got := contents(t, s); got != want {
				t.Fatalf("after ResetTo s is\n%.300q\nwant\n%.300q", got, want)
			}
			if got := s.Stats().WPCopy; got != copies {
				t.Errorf("ResetTo copied %d pages", got-copies)
			}
			if untouched != nil && slotLeaf(s, a+6<<20) != untouched {
				t.Error("ResetTo replaced a leaf the run never touched: the cost should grow with what differs")
			}
			if free := e.a.Stats().FreePages; free != used {
				t.Errorf("after ResetTo %d pages free, %d before the run: the run's pages were not all freed", free, used)
			}
			e.check()
			// s and snap go their own ways again.
			write(t, s, a, []byte("after"))
			expect(t, snap, a, []byte("prist"))
			write(t, snap, a+8, []byte("snap"))
			expect(t, s, a+8, []byte("pris"))
		})
	}
}

// TestResetToRemapAndHuge: a Remap moves slots away and a huge entry is
// reused in place; ResetTo restores both.
func TestResetToRemapAndHuge(t *testing.T) {
	e := newEnv(t, 64<<20)
	g := e.a.Geometry()
	s := e.space(Orders(g.PMDOrder))
	a := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	write(t, s, a, fill('h', 4<<20))
	if h, huge := entry(s, a); !huge || !h.Present() {
		t.Fatal("setup: no huge entry")
	}
	snap := e.fork(s)
	want := contents(t, snap)
	mustMap(t, s, 4<<20, ProtRead|ProtWrite) // room to move to
	if err := s.Unmap(a+4<<20, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.Remap(a+2<<20, 2<<20, a+4<<20); err != nil {
		t.Fatal(err)
	}
	write(t, s, a, []byte("reuse")) // copies or reuses the huge folio
	if err := s.ResetTo(snap); err != nil {
		t.Fatal(err)
	}
	if got := contents(t, s); got != want {
		t.Fatalf("after ResetTo s is\n%.200q\nwant\n%.200q", got, want)
	}
	e.check()
}

// TestResetToErrors: the argument errors, and that none changes s.
func TestResetToErrors(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	a := mustMap(t, s, 1<<20, ProtRead|ProtWrite)
	write(t, s, a, []byte("mine"))
	wantErr(t, s.ResetTo(nil), ErrInvalid, "ResetTo(nil)")
	wantErr(t, s.ResetTo(&Space{}), ErrInvalid, "ResetTo(zero Space)")
	if err := s.ResetTo(s); err != nil {
		t.Fatalf("s.ResetTo(s): %v", err)
	}
	expect(t, s, a, []byte("mine"))

	other := newEnv(t, 16<<20)
	foreign := other.space(Orders())
	wantErr(t, s.ResetTo(foreign), ErrInvalid, "ResetTo a space of another arena")

	closed := e.space(Orders())
	closed.Close()
	wantErr(t, s.ResetTo(closed), ErrClosed, "ResetTo a closed space")
	wantErr(t, closed.ResetTo(s), ErrClosed, "ResetTo on a closed space")
	wantErr(t, closed.ResetTo(closed), ErrClosed, "a closed space's ResetTo itself")
	expect(t, s, a, []byte("mine"))
}

// TestResetToPinned: snap's pinned pages are copied for s, as Fork copies
// them, so the pin stays snap's alone; when there is no memory for the
// copies, ResetTo fails with ErrNoMemory and changes nothing.
func TestResetToPinned(t *testing.T) {
	e := newEnv(t, 8<<20)
	snap := e.space(Orders())
	a := mustMap(t, snap, 1<<20, ProtRead|ProtWrite)
	write(t, snap, a, fill('p', 1<<20))
	slotLeaf(snap, a).SetMaybePinned() // as the pin package sets it
	undo := pinDirectly(t, snap, a)
	defer undo()
	pfn, _ := folioAt(t, snap, a)

	s := e.space(Orders())
	b := mustMap(t, s, 64<<10, ProtRead|ProtWrite)
	write(t, s, b, []byte("before"))
	// Use up the arena: ResetTo cannot copy the pinned page.
	var hog []folio.PFN
	for {
		p, err := e.a.AllocFolio(0, 0)
		if err != nil {
			break
		}
		hog = append(hog, p)
	}
	wantErr(t, s.ResetTo(snap), folio.ErrNoMemory, "ResetTo with no memory for the pinned page's copy")
	expect(t, s, b, []byte("before"))
	if len(s.Regions()) != 1 {
		t.Fatalf("a failed ResetTo changed the regions: %v", s.Regions())
	}
	for _, p := range hog {
		e.a.FolioPut(p, 1)
	}
	e.check()

	if err := s.ResetTo(snap); err != nil {
		t.Fatal(err)
	}
	expect(t, s, a, fill('p', 100))
	if got, _ := folioAt(t, s, a); got == pfn {
		t.Fatal("s maps the pinned page itself: writes through the pin would reach it")
	}
	copy(e.a.PageBytes(pfn, 1), "via pin")
	expect(t, s, a, fill('p', 7))
	e.check()
}

// TestResetToAccessor: an Accessor on s that translated its range before
// the reset reads snap's contents after it, and its writes do not reach
// snap (the TLB generations moved). Another goroutine's Accessor keeps
// writing through the reset.
func TestResetToAccessor(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 64<<20)
			s := e.space(c.orders(e.a.Geometry()))
			a := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			write(t, s, a, fill('o', 2<<20))
			snap := e.fork(s)
			write(t, s, a, fill('n', 2<<20))
			acc := s.NewAccessor()
			defer acc.Close()
			expectWord(t, acc, a, filledWord('n'), nil)

			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				other := s.NewAccessor()
				defer other.Close()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := other.StoreUint64(a+1<<20+Addr(k%64)*8, uint64(k)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			if err := s.ResetTo(snap); err != nil {
				t.Fatal(err)
			}
			close(stop)
			wg.Wait()
			expectWord(t, acc, a, filledWord('o'), nil)
			if err := acc.StoreUint64(a, filledWord('x')); err != nil {
				t.Fatal(err)
			}
			expect(t, snap, a, fill('o', 2<<20))
			e.check()
		})
	}
}

// TestResetToTakesBaseline: s takes snap's baseline state with its
// contents.
func TestResetToTakesBaseline(t *testing.T) {
	e := newEnv(t, 16<<20)
	snap := e.space(Orders())
	a := mustMap(t, snap, 1<<20, ProtRead|ProtWrite)
	write(t, snap, a, []byte("x"))
	if err := snap.MarkClean([16]byte{1}); err != nil {
		t.Fatal(err)
	}
	s := e.space(Orders())
	write(t, s, mustMap(t, s, 1<<20, ProtRead|ProtWrite), []byte("y"))
	if err := s.ResetTo(snap); err != nil {
		t.Fatal(err)
	}
	if err := s.AtBaseline(snap.Baseline()); err != nil {
		t.Fatalf("after ResetTo s is not at snap's baseline: %v", err)
	}
	write(t, s, a, []byte("z"))
	if err := s.AtBaseline(snap.Baseline()); !errors.Is(err, ErrNotAtBaseline) {
		t.Fatalf("a write after the reset left s at its baseline: %v", err)
	}
}

// TestRegions: the /proc/self/maps listing.
func TestRegions(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	a := mustMap(t, s, 3<<20, ProtRead|ProtWrite)
	if err := s.Protect(a+1<<20, 1<<20, ProtRead); err != nil {
		t.Fatal(err)
	}
	if err := s.Advise(a+2<<20, 1<<20, WipeOnFork); err != nil {
		t.Fatal(err)
	}
	want := []Region{
		{Addr: a, Length: 1 << 20, Prot: ProtRead | ProtWrite},
		{Addr: a + 1<<20, Length: 1 << 20, Prot: ProtRead},
		{Addr: a + 2<<20, Length: 1 << 20, Prot: ProtRead | ProtWrite, WipeOnFork: true},
	}
	if got := s.Regions(); !slices.Equal(got, want) {
		t.Fatalf("Regions() = %v, want %v", got, want)
	}
	if got := want[2].String(); got != fmt.Sprintf("%#x-%#x rw wipeonfork", uint64(a+2<<20), uint64(a+3<<20)) {
		t.Fatalf("String() = %q", got)
	}
	s.Close()
	if got := s.Regions(); len(got) != 0 {
		t.Fatalf("a closed space lists %v", got)
	}
}

// TestResetToLoop: the loop of a fuzzer. The slots ResetTo mended are
// skipped by the next one while nothing changed in them, and mended again
// when something did, by any path: a copy-on-write, a write into a page
// the snapshot never had (no TLB flush), a read that maps the zero page,
// a protection change.
func TestResetToLoop(t *testing.T) {
	e := newEnv(t, 64<<20)
	s := e.space(Orders())
	a := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
	write(t, s, a, fill('p', 10*4096))
	snap := e.fork(s)
	runs := []func(){
		func() { write(t, s, a+4096, []byte("cow")) },
		func() { write(t, s, a+100*4096, []byte("new page")) },
		func() { read(t, s, a+200*4096, 1) },
		func() {
			if err := s.Protect(a, 4096, ProtRead); err != nil {
				t.Fatal(err)
			}
		},
		func() {}, // nothing: every slot is skipped
	}
	want := contents(t, snap)
	for round := range 3 {
		for i, run := range runs {
			run()
			if err := s.ResetTo(snap); err != nil {
				t.Fatal(err)
			}
			if got := contents(t, s); got != want {
				t.Fatalf("round %d, run %d: after ResetTo s differs from the snapshot", round, i)
			}
			e.check()
		}
	}
}
