package cow

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// Regression tests from a review: a leaf one space stops using while
// others still do (on-demand fork) must not let that space's readers see
// the others' later writes.

// TestDropSharedLeafStaleLocklessRead: a lockless reader in the parent
// finds the shared leaf, grabs the page and is paused before its recheck.
// The parent drops the whole slot (DontNeed or Unmap of the slot:
// dropSharedLeaf), which left the leaf as it was: the child, now its only
// user, had its entries writable and AnonExclusive and wrote the page in
// place with no fault (the reader's reference did not stop it: no reuse
// test ran). The reader resumed, its recheck of the stale leaf passed, and
// it returned the child's post-fork write: data that never existed in the
// parent. Valid results are the snapshot or zeros. The fix gives what an
// eager fork gives: the leaf left to others is write-protected and its
// pages lose AnonExclusive, so the child's write sees the reference and
// copies; and GrabLockless rechecks the directory slot, as gup_fast
// rechecks the pmd.
func TestDropSharedLeafStaleLocklessRead(t *testing.T) {
	for _, how := range []string{"DontNeed", "Unmap"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, fill('p', 2<<20))
			c := e.fork(s)
			if l, _ := leafAt(c, addr); !l.Shared() {
				t.Fatal("the leaf is not shared")
			}

			paused, resume := pauseFirst(t, testhook.LocklessAfterGrab)

			got := make([]byte, 4096)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.ReadAt(got, int64(addr)) // the parent's reader; an error is a fine answer
			}()
			<-paused
			var err error
			if how == "DontNeed" {
				err = s.Advise(addr, 2<<20, DontNeed)
			} else {
				err = s.Unmap(addr, 2<<20)
			}
			if err != nil {
				t.Fatal(err)
			}
			write(t, c, addr, fill('c', 4096)) // the child's write, after the parent let go
			if st := c.Stats(); st.Faults != 0 {
				t.Logf("the child's write faulted (%d faults)", st.Faults)
			}
			close(resume)
			wg.Wait()
			if got[0] == 'c' {
				t.Errorf("the parent's ReadAt returned the child's post-fork write %q", got[:8])
			}
		})
	}
}

// waitParked waits until some goroutine is blocked on a mutex inside fn.
func waitParked(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[sync.Mutex.Lock") && strings.Contains(g, fn) {
				return
			}
		}
	}
	t.Fatalf("no goroutine blocked on a mutex in %s", fn)
}

// TestFollowPageStaleLeaf: followPage loaded the slot's leaf and locked it
// without checking that it was still this space's leaf (every other PTL
// user goes through relock; followPage checked only Dead). A leaf this space
// stopped using but that lives on for another space is not dead.
// Interleaving: the parent's slow-path read has faulted and is in
// accessLocked → followPage, holding the shared leaf pointer and waiting for
// its PTL; the parent's DontNeed of the whole slot (also under the read map
// lock) drops the shared leaf, which becomes the child's alone; the child
// writes the page; the parent's followPage then locked the stale leaf, found
// a present, accessible entry and read the child's post-fork write.
// (Locked.Grab had the same hole, with a reference or pin taken on the other
// space's page.) Both now relock. The test holds the PTL itself only to line
// the three goroutines up; it retries, as the last step is a race.
func TestFollowPageStaleLeaf(t *testing.T) {
	for try := 0; try < 20; try++ {
		if followPageStaleLeafOnce(t) {
			t.Errorf("try %d: the parent's locked read returned the child's post-fork write", try)
			return
		}
	}
	t.Log("the interleaving was not hit")
}

func followPageStaleLeafOnce(t *testing.T) (hit bool) {
	e := newEnv(t, 16<<20)
	s := e.space(Orders())
	addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
	write(t, s, addr, fill('p', 2<<20))
	c := e.fork(s)
	d := s.table.Dir(uint64(addr))
	l := d.Leaf(d.Index(uint64(addr)))
	if !l.Shared() {
		t.Fatal("the leaf is not shared")
	}
	var wg sync.WaitGroup
	l.Lock()
	wg.Add(1)
	go func() { // the parent drops the slot
		defer wg.Done()
		if err := s.Advise(addr, 2<<20, DontNeed); err != nil {
			t.Error(err)
		}
	}()
	waitParked(t, "dropSharedLeaf")
	got := make([]byte, 8)
	wg.Add(1)
	go func() { // the parent's read, past its fault, in followPage
		defer wg.Done()
		s.mapLock.RLock()
		defer s.mapLock.RUnlock()
		s.accessLocked(addr, got, false)
	}()
	waitParked(t, "followPage")
	wg.Add(1)
	go func() { // the child writes as soon as the leaf is its own
		defer wg.Done()
		for l.Shared() {
			// Yield: a loop with no call in it cannot be preempted where
			// signals are unreliable (qemu-user), and a stop-the-world
			// would wait on it forever.
			runtime.Gosched()
		}
		if _, err := c.WriteAt(fill('c', 8), int64(addr)); err != nil {
			t.Error(err)
		}
	}()
	l.Unlock()
	wg.Wait()
	return got[0] == 'c'
}
