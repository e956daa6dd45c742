package model_test

// The two races of issue 11, as the model's counterexamples for its
// CLOSE_NO_WRPROTECT and PIN_AFTER_RECHECK mutants (which are the code as
// it was when the model was first written; the fixes are in since).

import (
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/testhook"
	"github.com/anonfolio/anonfolio/pin"
)

// TestTrailCloseWithGet (CLOSE_NO_WRPROTECT and NO_HELD_HINT, scenario
// drop; issue 11 (a)): the parent takes a Get, forks (on-demand fork shares
// the leaf without write-protecting it) and exits. The leaf Close leaves to
// the child must be write-protected where a folio has references beyond
// its mappings, so the child's write copies: the parent's Get keeps
// reading the snapshot. Close looks only in leaves that carry the
// MaybeHeld hint, which the Get set before its grab.
func TestTrailCloseWithGet(t *testing.T) {
	for name, o := range orders(newEnv(t)) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s, addr := e.space(o, 'a')
			g := e.take(pin.Get(s, addr, page, 0))
			c := e.fork(s)
			s.Close()
			e.write(c, addr, []byte("child!"))
			if got := joined(g)[:6]; string(got) != "aaaaaa" {
				t.Errorf("the parent's Get reads %q: the child wrote in place after the parent exited (issue 11 a)", got)
			}
		})
	}
}

// TestTrailPinRacesSplit (PIN_AFTER_RECHECK, scenario gupfast; issue 11
// (b)): a fast pin has grabbed page 0 of a huge entry and passed its
// recheck when a DontNeed of the slot's last page splits the entry. The
// split must see the pin (the pincount is taken with the grab), so the new
// leaf carries MaybePinned and Fork copies the pinned page for the child:
// writes through the pin stay the parent's.
func TestTrailPinRacesSplit(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(e.a.Geometry().PMDOrder), 'h')
	split := once(func() {
		goWait(func() {
			if err := s.Advise(addr+(2<<20)-page, page, cow.DontNeed); err != nil {
				t.Error(err)
			}
		})
	})
	split.set(t, testhook.LocklessAfterRecheck)
	p := e.take(pin.Pin(s, addr, page, pin.Write))
	split.mustHaveRun(t, "the pin never passed its lockless recheck")
	c := e.fork(s)
	copy(p.Bytes()[0], "via pin")
	if got := e.read(c, addr, 7); string(got) != "hhhhhhh" {
		t.Errorf("the child reads %q: Fork shared the leaf of a page pinned during the split (issue 11 b)", got)
	}
	e.write(s, addr+100, []byte("via space"))
	if got := joined(p)[100:109]; string(got) != "via space" {
		t.Errorf("the pin reads %q after the parent wrote: not coherent (issue 11 b)", got)
	}
}
