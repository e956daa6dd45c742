package cow

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestSeedScenario replays the interleaving the project was seeded with. A
// page is COW-shared by A and B. Goroutine 1 in A starts a write fault and
// is paused after dropping the PTL in the copy path (holding its reference
// on the old folio). B closes. Goroutine 2 in A writes the same page: A is
// now its only mapper and the only other reference is goroutine 1's copy in
// flight, so the page is reused in place. Goroutine 1 resumes, makes its
// copy, retakes the PTL and must discard the copy (pte_same fails: the entry
// is writable now), then write to the reused page.
//
// In the Protect variant goroutine 2 also write-protects the range after its
// write. That would make the entry read-only again (an ABA on the entry) if
// it could run before goroutine 1 rechecks; it cannot, because goroutine 1's
// fault holds the map lock for reading, so Protect waits until goroutine 1
// is done. Either way the copy is discarded, both writes survive, and the
// counts are exact.
func TestSeedScenario(t *testing.T) {
	for _, protect := range []bool{false, true} {
		for _, order := range []int{0, 4} {
			t.Run(fmt.Sprintf("order%d/protect=%v", order, protect), func(t *testing.T) {
				seedScenario(t, order, protect)
			})
		}
	}
}

func seedScenario(t *testing.T, order int, protect bool) {
	e := newEnv(t, 8<<20)
	A := e.space(Orders(order))
	addr := mustMap(t, A, 2<<20, ProtRead|ProtWrite)
	size := 4096 << order
	write(t, A, addr, fill('0', size))
	P := addr + Addr(size/2&^4095) // a page in the middle of the folio
	before, _ := entry(A, P)
	B := e.fork(A)

	paused, resume := pauseFirst(t, testhook.WPCopyUnlocked)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // goroutine 1
		defer wg.Done()
		if _, err := A.WriteAt([]byte("one"), int64(P)); err != nil {
			t.Errorf("goroutine 1: %v", err)
		}
	}()
	<-paused
	if err := B.Close(); err != nil {
		t.Fatal(err)
	}
	// Goroutine 2 (this one).
	write(t, A, P+100, []byte("two"))
	if st := A.Stats(); st.WPReuse != 1 || st.WPCopy != 0 {
		t.Fatalf("goroutine 2 did not reuse the page: WPReuse %d WPCopy %d", st.WPReuse, st.WPCopy)
	}
	var protected chan error
	if protect {
		protected = make(chan error, 1)
		go func() { protected <- A.Protect(addr, 2<<20, ProtRead) }()
	}
	close(resume)
	wg.Wait()
	if protect {
		if err := <-protected; err != nil {
			t.Fatal(err)
		}
	}

	st := A.Stats()
	if st.WPCopyDiscarded != 1 || st.WPCopy != 0 || st.WPReuse != 1 {
		t.Fatalf("goroutine 1's copy: discarded %d, installed %d, reuses %d; want 1, 0, 1",
			st.WPCopyDiscarded, st.WPCopy, st.WPReuse)
	}
	want := fill('0', 4096)
	copy(want, "one")
	copy(want[100:], "two")
	expect(t, A, P, want)
	after, _ := entry(A, P)
	if after.PFN() != before.PFN() {
		t.Fatalf("the page was replaced (pfn %#x → %#x): the copy was installed", before.PFN(), after.PFN())
	}
	if !e.a.PageAnonExclusive(after.PFN()) {
		t.Fatal("the reused page is not AnonExclusive")
	}
	if protect {
		if after.Write() {
			t.Fatal("Protect did not make the entry read-only")
		}
		if _, err := A.WriteAt([]byte{1}, int64(P)); !errors.Is(err, ErrProtection) {
			t.Fatalf("write after Protect: %v, want ErrProtection", err)
		}
	}
	if st := A.Stats(); st.Resident != int64(1<<order) {
		t.Fatalf("Resident %d, want %d: nothing copied stays mapped", st.Resident, 1<<order)
	}
	e.check()
}
