package cow

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestViewNestedStore: View's fn uses the Accessor it was called on
// (StoreUint64 of a header word while it fills a record in place: nothing
// in View's rules forbids it, and an Accessor is only "not for concurrent
// use"). The nested store's section is the same sectionSeq as View's:
// entering it makes the published sequence even, so while the store is in
// flight a Fork sees no section, does not wait, and write-protects and
// shares the page that fn is still writing through its slice. The child
// then reads the parent's write, made after the Fork: no isolation, and
// the piece did not land wholly before or after the Fork.
//
// The nested store is paused at LocklessBeforeEntry (its second hit: View's
// own piece is the first); a Fork runs meanwhile, bounded at 200 ms in case
// it rightly waits for fn.
func TestViewNestedStore(t *testing.T) {
	e := newEnv(t, 64<<20)
	s := e.space(Orders())
	ps := int(s.ps)
	addr := mustMap(t, s, 2*ps, ProtRead|ProtWrite)
	x, y := addr, addr+Addr(ps)
	write(t, s, x, fill('a', ps))
	write(t, s, y, fill('a', ps))
	a := s.NewAccessor()
	defer a.Close()

	var hits atomic.Int32
	paused, resume := make(chan struct{}), make(chan struct{})
	t.Cleanup(testhook.Set(testhook.LocklessBeforeEntry, func() {
		if hits.Add(1) == 2 {
			close(paused)
			<-resume
		}
	}))
	viewed := make(chan error, 1)
	go func() {
		viewed <- a.View(x, 8, true, func(p []byte) error {
			if err := a.StoreUint64(y, 1); err != nil {
				return err
			}
			copy(p, "parent!!")
			return nil
		})
	}()
	select {
	case <-paused:
	case err := <-viewed:
		// The nested call was refused: nothing raced.
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("View returned before its nested store reached the hook: %v, want ErrInvalid", err)
		}
		expect(t, s, x, fill('a', 8))
		return
	case <-time.After(10 * time.Second):
		t.Fatal("the interleaving did not happen: the nested store never reached the hook")
	}
	forked := make(chan *Space, 1)
	go func() {
		c, err := s.Fork()
		if err != nil {
			t.Error(err)
		}
		forked <- c
	}()
	var c *Space
	forkFirst := false
	select {
	case c = <-forked:
		forkFirst = true // the Fork did not wait for fn
	case <-time.After(200 * time.Millisecond):
	}
	close(resume)
	err := <-viewed
	if c == nil {
		c = <-forked
	}
	if c == nil {
		t.FailNow()
	}
	e.spaces = append(e.spaces, c)
	got := read(t, c, x, 8)
	if forkFirst && bytes.Equal(got, []byte("parent!!")) {
		t.Fatalf("a Fork that returned while View's fn was running (its nested StoreUint64 in flight) gave a child that reads fn's later write %q (View: %v)", got, err)
	}
}
