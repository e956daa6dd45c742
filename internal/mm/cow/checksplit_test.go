package cow

import (
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestCheckOfClosedSpaceDuringSplitDeferred: Check holds the deferred split
// off only when one of the spaces it is given is alive. A Check made after
// the last space closed (what a test's cleanup does), while a split pass
// holds its reference on a queued folio, counts that reference as a leak:
// the false report of issue 11's bug 4, for closed spaces.
func TestCheckOfClosedSpaceDuringSplitDeferred(t *testing.T) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders(4))
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, pattern('c', 16*4096))
	if err := s.Advise(addr+4096, 4096, DontNeed); err != nil { // queued for the deferred split
		t.Fatal(err)
	}
	checked := make(chan error, 1)
	inSplit := testhook.NewOnce(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		go func() { checked <- Check(s) }()
		// Check runs to its end here unless it waits for the split.
		select {
		case err := <-checked:
			checked <- err
		case <-time.After(200 * time.Millisecond):
		}
	})
	restore := testhook.Set(testhook.SplitAfterGrab, inSplit.Run)
	s.SplitDeferred()
	restore()
	if !inSplit.Ran() {
		t.Fatal("the interleaving did not happen: the split never grabbed a folio")
	}
	if err := <-checked; err != nil {
		t.Fatalf("Check of the closed space while the split held a folio: %v", err)
	}
}
