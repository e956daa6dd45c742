package pin

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

func once(f func()) *testhook.Once { return testhook.NewOnce(f) }

// mustHaveRun fails the test if the hook never ran.
func mustHaveRun(t *testing.T, h *testhook.Once, what string) {
	t.Helper()
	if !h.Ran() {
		t.Fatalf("the interleaving did not happen: %s", what)
	}
}

// TestFastPinRefusedWhileForkCopies: while Fork holds the map lock and
// wpSeq is odd (after its checks, before or during its write-protect), the
// fast path refuses to pin (FastOnly fails holding nothing) and a full pin
// waits in the slow path until the Fork is done; the pin then lands after
// the snapshot, coherent with the parent, and the child never sees it.
func TestFastPinRefusedWhileForkCopies(t *testing.T) {
	for _, point := range []testhook.Point{testhook.ForkBeforeCopy, testhook.ForkAfterPinCheck} {
		e := spacetest.New(t, 16<<20, page)
		g := e.A.Geometry()
		s := e.Space(cow.Options{Orders: cow.Orders(g.PMDOrder)}) // huge entries: copied, so ForkAfterPinCheck runs
		addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
		e.Write(s, addr, spacetest.Fill('o', 2<<20))

		var late *Pages
		var lateErr error
		var wg sync.WaitGroup
		during := once(func() {
			if p, err := Pin(s, addr, page, Write|FastOnly); !errors.Is(err, ErrFastFailed) || p != nil {
				t.Errorf("a fast pin during Fork: %v, %v; want ErrFastFailed", p, err)
			}
			if pins, _, _ := engine(e.A).Outstanding(); pins != 0 {
				t.Errorf("%d pins held after the refused fast pin", pins)
			}
			wg.Add(1)
			go func() { // waits for the map lock
				defer wg.Done()
				late, lateErr = Pin(s, addr, page, Write)
			}()
		})
		restore := testhook.Set(point, during.Run)
		c := e.Fork(s)
		restore()
		mustHaveRun(t, during, "no pin attempt during Fork")
		wg.Wait()
		if lateErr != nil {
			t.Fatal(lateErr)
		}
		writeThrough(late, 0, []byte("late pin"))
		e.Expect(s, addr, []byte("late pin"))
		e.Expect(c, addr, spacetest.Fill('o', 8))
		if st := s.Stats(); st.ForkCopies != 0 {
			t.Fatalf("Fork copied %d pages for a pin that came after it", st.ForkCopies)
		}
		e.Check()
		late.Release()
	}
}

// TestFastPinUndoneWhenForkBegins: GUP-fast has grabbed a page when a Fork
// makes wpSeq odd (it then waits for the fast path's section). The fast
// path sees wpSeq moved at its end, undoes its pin before the Fork looks at
// the page, and takes the slow path, which waits for the Fork: the pin is
// taken after the snapshot, the Fork copied nothing for it, and the child
// keeps the page as it was.
func TestFastPinUndoneWhenForkBegins(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		t.Run(cfg.Name, func(t *testing.T) {
			e := spacetest.New(t, 16<<20, page)
			s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
			addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
			e.Write(s, addr, spacetest.Fill('f', 2<<20))

			forking := make(chan struct{})
			var child *cow.Space
			var forkErr error
			var wg sync.WaitGroup
			quiescing := once(func() { close(forking) })
			r1 := testhook.Set(testhook.Quiescing, quiescing.Run)
			defer r1()
			grabbed := once(func() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					child, forkErr = s.Fork()
				}()
				<-forking // the Fork made wpSeq odd and waits for this section
			})
			r2 := testhook.Set(testhook.LocklessAfterGrab, grabbed.Run)
			defer r2()
			p, err := Pin(s, addr+page, 4*page, Write)
			mustHaveRun(t, grabbed, "the fast path never grabbed")
			if err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if forkErr != nil {
				t.Fatal(forkErr)
			}
			e.Spaces = append(e.Spaces, child)
			if st := s.Stats(); st.ForkCopies != 0 {
				t.Fatalf("Fork copied %d pages: the undone fast pin was still visible to it", st.ForkCopies)
			}
			writeThrough(p, 0, []byte("pinned after"))
			e.Expect(s, addr+page, []byte("pinned after"))
			e.Expect(child, addr+page, spacetest.Fill('f', 12))
			e.Check()
			p.Release()
		})
	}
}

// TestFastGetUndoneByCOW: GUP-fast grabs a shared page for a Get; before it
// rechecks the entry, a write in the same space copies the page and maps
// the copy. The recheck sees the entry changed, the grab is undone, and the
// slow path gets the new page.
func TestFastGetUndoneByCOW(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('s', 2<<20))
	c := e.Fork(s)
	e.Write(s, addr+8*page, []byte("x")) // the parent's leaf is its own now; page 0 stays shared
	grabbed := once(func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Write(s, addr, []byte("COW copy"))
		}()
		wg.Wait()
	})
	restore := testhook.Set(testhook.LocklessAfterGrab, grabbed.Run)
	g, err := Get(s, addr, page, 0)
	restore()
	mustHaveRun(t, grabbed, "the fast path never grabbed the shared page")
	if err != nil {
		t.Fatal(err)
	}
	if got := spacetest.Join(g.Bytes()); !bytes.HasPrefix(got, []byte("COW copy")) {
		t.Fatalf("the Get holds %q…: the page the COW replaced, not the one mapped", spacetest.Head(got))
	}
	e.Expect(c, addr, spacetest.Fill('s', 8))
	e.Check()
	g.Release()
}

// TestUnshareRacesWriter: a read-only pin of a shared page unshares it; its
// copy is paused after dropping the PTL while another goroutine writes the
// page (its own COW copy, mapped writable). The pin's copy finds the entry
// changed and is discarded; the pin then takes the writer's page, which the
// space maps: writes through the space are seen through the pin.
func TestUnshareRacesWriter(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('u', 2<<20))
	c := e.Fork(s)
	e.Write(s, addr+8*page, []byte("x")) // the parent's leaf is its own now
	paused := once(func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Write(s, addr, []byte("writer"))
		}()
		wg.Wait()
	})
	restore := testhook.Set(testhook.WPCopyUnlocked, paused.Run)
	p, err := Pin(s, addr, page, 0)
	restore()
	mustHaveRun(t, paused, "the pin's unshare never copied")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.WPCopyDiscarded != 1 {
		t.Fatalf("WPCopyDiscarded %d, want the pin's copy discarded", st.WPCopyDiscarded)
	}
	if got := spacetest.Join(p.Bytes()); !bytes.HasPrefix(got, []byte("writer")) {
		t.Fatalf("the pin holds %q…, not the page the space maps", spacetest.Head(got))
	}
	e.Write(s, addr+100, []byte("later"))
	if got := spacetest.Join(p.Bytes())[100:105]; string(got) != "later" {
		t.Fatalf("a later write through the space is not seen through the pin: %q", got)
	}
	e.Expect(c, addr, spacetest.Fill('u', 8))
	e.Check()
	p.Release()
}

// TestFastPinRacingSplitKeepsHint: a pin through a huge entry whose entry is
// split between the pin's recheck and its use (a DontNeed of another page of
// the slot) must leave the new leaf marked as maybe pinned, or the next Fork
// shares the leaf and the child reads what is written through the pin.
func TestFastPinRacingSplitKeepsHint(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders(e.A.Geometry().PMDOrder)})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('o', 2<<20))
	split := once(func() {
		if err := s.Advise(addr+1<<20, page, cow.DontNeed); err != nil {
			t.Error(err)
		}
	})
	restore := testhook.Set(testhook.LocklessAfterRecheck, split.Run)
	p, err := Pin(s, addr, page, Write|FastOnly)
	restore()
	mustHaveRun(t, split, "the split did not run inside the pin")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	c := e.Fork(s)
	writeThrough(p, 0, []byte("pinned"))
	e.Expect(s, addr, []byte("pinned"))
	e.Expect(c, addr, spacetest.Fill('o', 6))
	e.Check()
}

// TestCheckDuringPin: Check may run while a pin is under way, between its
// fast path (which counted the pins it took) and its slow path, and must
// find the pins accounted for: the race and invariants builds verify them
// page by page against the live Pages, which the pin registers before it
// takes anything.
func TestCheckDuringPin(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	addr := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('p', page)) // the first page is present, the second is not
	var checkErr error
	between := once(func() { checkErr = cow.Check(s) })
	restore := testhook.Set(testhook.PinFastDone, between.Run)
	p, err := Pin(s, addr, 2*page, Write)
	restore()
	mustHaveRun(t, between, "the pin never finished a fast path")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if checkErr != nil {
		t.Fatalf("Check between the fast and the slow path of a pin: %v", checkErr)
	}
}

// TestCheckDuringRelease: a Release drops the folios' pins and the ledger's
// count with no lock of the space held; a Check that runs meanwhile must
// wait for it, not report the pin totals as lost.
func TestCheckDuringRelease(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	p, err := Pin(s, addr, page, Write)
	if err != nil {
		t.Fatal(err)
	}
	checked := make(chan error, 1)
	midway := once(func() {
		go func() { checked <- cow.Check(s) }()
		select { // the Check runs to its end here unless it waits
		case err := <-checked:
			checked <- err
		case <-time.After(200 * time.Millisecond):
		}
	})
	restore := testhook.Set(testhook.ReleaseMidway, midway.Run)
	p.Release()
	restore()
	mustHaveRun(t, midway, "the release never dropped a pin")
	if err := <-checked; err != nil {
		t.Fatalf("Check during a Release: %v", err)
	}
}

// TestFastPinRacingUnfold: a fast pin of two pages of a contpte block reads
// the block folded and grabs the folio; before it rechecks, a DontNeed of
// the second page unfolds the block and zaps that entry. The recheck reads
// each entry of the run as it is now, so the pin takes only the first page
// on the fast path and the second, faulted in again, on the slow one:
// writes through the pin are seen by the space. (Trusting the block read
// before the grab, it would pin the zapped page, which the space no longer
// maps.)
func TestFastPinRacingUnfold(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	g := e.A.Geometry()
	s := e.Space(cow.Options{Orders: cow.Orders(g.ContOrder)})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('f', g.ContPTEs*page))
	if m, _ := s.Pagemap(addr); !m.Cont {
		t.Fatalf("the block is not folded: %+v", m)
	}
	zap := once(func() {
		if err := s.Advise(addr+page, page, cow.DontNeed); err != nil {
			t.Error(err)
		}
	})
	restore := testhook.Set(testhook.LocklessAfterGrab, zap.Run)
	p, err := Pin(s, addr, 2*page, Write)
	restore()
	mustHaveRun(t, zap, "the DontNeed never ran between the grab and the recheck")
	if err != nil {
		t.Fatal(err)
	}
	writeThrough(p, page+5, []byte("through the pin"))
	e.Expect(s, addr+page+5, []byte("through the pin"))
	e.Check()
	p.Release()
}
