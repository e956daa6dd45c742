package cow

import (
	"runtime"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestAbortRacingFork: a Save that fails (Abort) while a Fork of the
// same space runs. Abort first publishes that no snapshot is pending, then
// marks again the pages the failed snapshot had taken. A Fork in between
// inherits the baseline (nothing pending any more) but copies the entries
// before they are marked again: the child claims to be at the baseline
// while a page it maps differs from it, so its next delta would leave that
// page out.
//
// The Fork is paused with the map lock held (ForkBeforeCopy) until Abort
// has published its tracking update; where Abort cannot get there while
// the Fork holds the lock (it takes the lock first), the Fork goes on after
// a bound and the child must then inherit no baseline. Either way the
// child must not be at the baseline.
func TestAbortRacingFork(t *testing.T) {
	e := newEnv(t, 64<<20)
	s := e.space(Orders())
	ps := int(s.ps)
	// A region smaller than a slot: Fork copies its entries (no leaf to share).
	addr := mustMap(t, s, 4*ps, ProtRead|ProtWrite)
	write(t, s, addr, fill('a', ps))
	if err := s.MarkClean([16]byte{1}); err != nil {
		t.Fatal(err)
	}
	base := s.Baseline()
	write(t, s, addr, fill('b', ps)) // written since the baseline: marked

	snap, since, err := s.SnapshotFork(true)
	if err != nil {
		t.Fatal(err)
	}
	e.spaces = append(e.spaces, snap)
	if len(since.Written) == 0 {
		t.Fatal("the snapshot's Fork took no written page")
	}

	paused, resume := pauseFirst(t, testhook.ForkBeforeCopy)
	forked := make(chan *Space)
	go func() {
		c, err := s.Fork()
		if err != nil {
			t.Error(err)
		}
		forked <- c
	}()
	waitPaused(t, paused)
	aborted := make(chan struct{})
	go func() { s.Abort(since); close(aborted) }()
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); runtime.Gosched() {
		s.track.mu.Lock()
		pending := s.track.pending
		s.track.mu.Unlock()
		if !pending {
			break
		}
	}
	close(resume)
	c := <-forked
	<-aborted
	if c == nil {
		t.FailNow()
	}
	e.spaces = append(e.spaces, c)

	expect(t, c, addr, fill('b', ps)) // the child differs from the baseline's 'a'
	if err := c.AtBaseline(base); err == nil {
		t.Fatalf("the child of a Fork that raced Abort is at baseline %x, yet its page at %#x was written since: its next delta would leave it out",
			base.Image, uint64(addr))
	}
	if err := s.AtBaseline(base); err == nil {
		t.Fatal("the space itself is at its baseline after Abort")
	}
}
