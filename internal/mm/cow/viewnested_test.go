package cow

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestViewNestedStore: View's fn uses the Accessor it was called on
// (StoreUint64 of a header word while it fills a record in place: nothing
// in View's rules forbids it, and an Accessor is only "not for concurrent
// use"). The nested store's section is the same sectionSeq as View's: its
// exit publishes the sequence as if no section were in flight, so a Fork
// that begins after the store sees none, does not wait for fn, and
// write-protects and shares the page that fn is still writing through its
// slice. The child then reads the parent's write, made after the Fork: no
// isolation, and the piece did not land wholly before or after the Fork.
// The nested call must be refused instead (ErrInvalid), whether it misses
// the TLB or hits it (the View's piece has just filled the translation of
// the slot, so a store to another page of it takes the inline fast path).
//
// fn stops after its store until a Fork has run for up to 200 ms (a Fork
// that rightly waits for fn does not return in that time).
func TestViewNestedStore(t *testing.T) {
	for _, other := range []bool{false, true} {
		name := map[bool]string{false: "same slot", true: "other slot"}[other]
		t.Run(name, func(t *testing.T) { testViewNestedStore(t, other) })
	}
}

func testViewNestedStore(t *testing.T, otherSlot bool) {
	e := newEnv(t, 64<<20)
	s := e.space(Orders())
	ps := int(s.ps)
	slot := s.geo.FolioSize(s.geo.PMDOrder)
	addr := mustMap(t, s, 2*slot, ProtRead|ProtWrite)
	x, y := addr, addr+Addr(ps) // y in x's slot: the View fills its translation
	if otherSlot {
		y = addr + Addr(slot) // y's slot not translated yet: the store misses
	}
	write(t, s, x, fill('a', ps))
	write(t, s, y, fill('a', ps))
	a := s.NewAccessor()
	defer a.Close()

	stored, resume := make(chan struct{}), make(chan struct{})
	viewed := make(chan error, 1)
	go func() {
		viewed <- a.View(x, 8, true, func(p []byte) error {
			if err := a.StoreUint64(y, 1); err != nil {
				return err
			}
			close(stored)
			<-resume
			copy(p, "parent!!")
			return nil
		})
	}()
	select {
	case <-stored:
	case err := <-viewed:
		// The nested call was refused: nothing raced.
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("View's nested StoreUint64: %v, want ErrInvalid", err)
		}
		expect(t, s, x, fill('a', 8))
		return
	case <-time.After(10 * time.Second):
		t.Fatal("View's fn never ran")
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
		t.Fatalf("a Fork that returned while View's fn was running (after its nested StoreUint64) gave a child that reads fn's later write %q (View: %v)", got, err)
	}
	t.Fatalf("View's nested StoreUint64 succeeded (View: %v); want ErrInvalid", err)
}
