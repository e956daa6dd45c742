package cow

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestPartialUnmapDeferredSplit: DontNeed or Unmap of part of a large folio
// leaves it partly mapped and queues it; the deferred split frees exactly the
// unmapped pages and keeps the data of the rest.
func TestPartialUnmapDeferredSplit(t *testing.T) {
	for _, how := range []string{"DontNeed", "Unmap"} {
		for _, order := range []int{2, 4, 6, 9} {
			t.Run(fmt.Sprintf("%s/order%d", how, order), func(t *testing.T) {
				e := newEnv(t, 16<<20)
				s := e.space(Orders(order))
				n := 1 << order
				addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
				data := pattern('d', n*4096)
				write(t, s, addr, data)
				if st := s.Stats(); st.FaultAlloc[order] != 1 {
					t.Fatalf("FaultAlloc %v", st.FaultAlloc)
				}
				// Drop the upper quarter and one page in the middle.
				drop := func(off, pages int) {
					var err error
					if how == "DontNeed" {
						err = s.Advise(addr+Addr(off*4096), pages*4096, DontNeed)
					} else {
						err = s.Unmap(addr+Addr(off*4096), pages*4096)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				drop(n-n/4, n/4)
				drop(1, 1)
				gone := n/4 + 1
				st := s.Stats()
				if st.SplitDeferred[order] != 1 || st.Resident != int64(n-gone) {
					t.Fatalf("after partial unmaps: SplitDeferred %v Resident %d (want 1, %d)", st.SplitDeferred, st.Resident, n-gone)
				}
				e.check()
				free := e.a.Stats().FreePages
				if freed := s.SplitDeferred(); freed != gone {
					t.Fatalf("SplitDeferred freed %d pages, want %d", freed, gone)
				}
				if got := e.a.Stats().FreePages - free; got != int64(gone) {
					t.Fatalf("the arena gained %d free pages, want %d", got, gone)
				}
				if st := s.Stats(); st.Split[order] != 1 {
					t.Fatalf("Split %v, want one split of order %d", st.Split, order)
				}
				e.check()
				for p := 0; p < n; p++ {
					want := data[p*4096 : p*4096+4096]
					if p == 1 || p >= n-n/4 {
						if how == "Unmap" {
							continue
						}
						want = fill(0, 4096)
					}
					expect(t, s, addr+Addr(p*4096), want)
				}
				if s.SplitDeferred() != 0 {
					t.Fatal("a second SplitDeferred found more to free")
				}
			})
		}
	}
}

// TestDeferredSplitWithSharedFolio: a folio shared with a child and partly
// unmapped in both is found through both owners and split once.
func TestDeferredSplitWithSharedFolio(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(4))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('s', 16*4096))
	c := e.fork(s)
	if err := s.Advise(addr+8*4096, 8*4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	if err := c.Advise(addr+12*4096, 4*4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	// Pages 12-15 are mapped by nobody, 8-11 by the child only.
	if freed := s.SplitDeferred(); freed != 4 {
		t.Fatalf("freed %d pages, want 4", freed)
	}
	e.check()
	expect(t, c, addr, pattern('s', 12*4096))
	expect(t, s, addr, pattern('s', 8*4096))
	write(t, c, addr+9*4096, []byte("child"))
	expect(t, s, addr+8*4096, fill(0, 4096))
	e.check()
}

// TestDeferredSplitRefusesPinnedOrReferenced: a folio with a reference that
// is not a mapping is not split; it stays queued and is split once the
// reference goes.
func TestDeferredSplitRefusesReferenced(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(4))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('r', 16*4096))
	p, _ := entry(s, addr)
	head, _, _ := e.a.PageFolio(p.PFN())
	e.a.FolioGet(head, 1) // as a plain Get would
	if err := s.Unmap(addr+8*4096, 8*4096); err != nil {
		t.Fatal(err)
	}
	if freed := s.SplitDeferred(); freed != 0 {
		t.Fatalf("split a referenced folio, freeing %d pages", freed)
	}
	e.a.FolioPut(head, 1)
	if freed := s.SplitDeferred(); freed != 8 {
		t.Fatalf("after the reference went: freed %d, want 8", freed)
	}
	expect(t, s, addr, pattern('r', 8*4096))
}

// TestRemapHalfAFolio: the upper half of a large folio moves elsewhere;
// both halves keep their data, stay one folio, and fork and COW correctly.
func TestRemapHalfAFolio(t *testing.T) {
	for _, order := range []int{4, 9} {
		t.Run(fmt.Sprint("order", order), func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders(order))
			n := 1 << order
			size := n * 4096
			addr := mustMap(t, s, 4<<20, ProtRead|ProtWrite)
			data := pattern('m', size)
			write(t, s, addr, data)
			dst := addr + 3<<20 + 4096*3 // not aligned: the moved half cannot fold
			if err := s.Remap(addr+Addr(size/2), size/2, dst); err != nil {
				t.Fatal(err)
			}
			e.check()
			expect(t, s, addr, data[:size/2])
			expect(t, s, dst, data[size/2:])
			_, err := s.ReadAt(make([]byte, 1), int64(addr)+int64(size/2))
			wantErr(t, err, ErrFault, "read of the moved-away range")
			if st := s.Stats(); st.Resident != int64(n) || st.WPCopy != 0 {
				t.Fatalf("Remap changed Resident (%d) or copied (%d)", st.Resident, st.WPCopy)
			}
			c := e.fork(s)
			write(t, s, dst+5, []byte("parent"))
			write(t, c, addr+5, []byte("child"))
			expect(t, c, dst, data[size/2:size/2+4096])
			expect(t, s, addr, data[:4096])
			e.check()
		})
	}
}

// TestOutOfMemory: when the arena runs out, WriteAt fails with ErrNoMemory
// after writing what it could; nothing already written is corrupted, Check
// passes, and freeing memory makes writes work again.
func TestOutOfMemory(t *testing.T) {
	e := newEnv(t, 4<<20)
	s := e.space(DefaultOrders(e.a))
	addr := mustMap(t, s, 8<<20, ProtRead|ProtWrite)
	data := pattern('o', 8<<20)
	n, err := s.WriteAt(data, int64(addr))
	if !errors.Is(err, folio.ErrNoMemory) {
		t.Fatalf("writing 8 MiB into a 4 MiB arena: %d, %v; want ErrNoMemory", n, err)
	}
	if n != 4<<20 {
		t.Fatalf("wrote %d bytes before running out, want all 4 MiB", n)
	}
	// The error says what the fault wanted, where, and where the memory is.
	for _, want := range []string{fmt.Sprintf("a fault at %#x wanted an order-9 folio", uint64(addr)+4<<20),
		"arena of 4 MiB: 0 B free", "0 B pinned", fmt.Sprintf("space %d maps 4 MiB, this one", s.mm)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the out-of-memory error does not say %q: %v", want, err)
		}
	}
	e.check()
	expect(t, s, addr, data[:n])
	// A fork needs no new pages: it works, and the child sees the data.
	c := e.fork(s)
	expect(t, c, addr, data[:4096])
	// But a COW copy does not fit: the write fails, both sides intact.
	_, err = c.WriteAt([]byte("x"), int64(addr))
	wantErr(t, err, folio.ErrNoMemory, "COW with no free page")
	expect(t, c, addr, data[:4096])
	expect(t, s, addr, data[:4096])
	e.check()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmap(addr, 1<<20); err != nil {
		t.Fatal(err)
	}
	write(t, s, addr+(5<<20), []byte("fits again"))
	expect(t, s, addr+(1<<20), data[1<<20:2<<20])
	e.check()
}

// TestCheckDuringSplitDeferred: Check may run while the deferred split is
// under way (it is documented as callable while the spaces are in use) and
// must not count the split's own reference on a folio as a leak. The split
// takes that reference before it locks the spaces that map the folio; a
// Check let in there would see one reference too many.
func TestCheckDuringSplitDeferred(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(4))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('s', 16*4096))
	if err := s.Advise(addr+4096, 4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	checked := make(chan error, 1)
	var early error
	inSplit := testhook.NewOnce(func() {
		go func() { checked <- Check(s) }()
		// Give Check the chance the bug needs: it runs to the end here
		// unless something holds it off until the split is done.
		select {
		case early = <-checked:
			checked <- early
		case <-time.After(200 * time.Millisecond):
		}
	})
	restore := testhook.Set(testhook.SplitAfterGrab, inSplit.Run)
	freed := s.SplitDeferred()
	restore()
	if !inSplit.Ran() {
		t.Fatal("the interleaving did not happen: the split never grabbed a folio")
	}
	if freed != 1 {
		t.Fatalf("SplitDeferred freed %d pages, want 1", freed)
	}
	if err := <-checked; err != nil {
		t.Fatalf("Check during the split: %v", err)
	}
	e.check()
}

// TestDeferredSplitAfterRemap: the deferred split finds a folio's mappings
// at the address recorded when it was queued; after a Remap moved them it
// found nothing there, kept the folio queued and retried it on every pass,
// never freeing its unmapped pages while the space lived. It must find the
// mappings wherever they went.
func TestDeferredSplitAfterRemap(t *testing.T) {
	for _, shift := range []Addr{2 << 20, 2<<20 + 64<<10, 2<<20 + 8192} {
		t.Run(fmt.Sprintf("moved by %#x", uint64(shift)), func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders(4))
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			data := pattern('r', 16*4096)
			write(t, s, addr, data)
			if err := s.Advise(addr+4096, 4096, DontNeed); err != nil {
				t.Fatal(err)
			}
			to := addr + 4<<20 + shift - 2<<20
			if err := s.Remap(addr, 2<<20, to); err != nil {
				t.Fatal(err)
			}
			if freed := s.SplitDeferred(); freed != 1 {
				t.Fatalf("SplitDeferred after Remap freed %d pages, want 1", freed)
			}
			if freed := s.SplitDeferred(); freed != 0 {
				t.Fatalf("a second pass freed %d more", freed)
			}
			e.check()
			for p := 0; p < 16; p++ {
				want := data[p*4096 : p*4096+4096]
				if p == 1 {
					want = make([]byte, 4096)
				}
				expect(t, s, to+Addr(p*4096), want)
			}
		})
	}
}
