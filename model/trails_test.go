package model_test

// Each test replays, through the real code, the interleaving of the
// counterexample spin finds for one mutant of the model (model/check.sh
// -trails DIR keeps them), and asserts the property that mutant broke. The
// mutant's name is in each test's comment.

import (
	"bytes"
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/testhook"
	"github.com/anonfolio/anonfolio/pin"
)

// orders are the folio configurations a trail runs with: the model's folio
// is the PMD-order one (mapped by a huge entry, or by a leaf once split);
// order 0 takes the same steps page by page.
func orders(e *env) map[string]cow.OrderSet {
	return map[string]cow.OrderSet{"order0": cow.Orders(), "pmd": cow.Orders(e.a.Geometry().PMDOrder)}
}

// TestTrailPTESame (NO_PTE_SAME, scenario reuse): the parent's write to a
// shared page copies it and drops the PTL; meanwhile a second parent thread
// pins the page read-only, which copies it too (the child still maps it),
// installs its copy and pins that. The write's copy must find the entry
// changed and be discarded; installing it would replace the pinned page
// (and lose what was written there). The write then reuses the pinned page.
func TestTrailPTESame(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(), 'p')
	c := e.fork(s)
	e.write(s, addr+8*page, []byte("x")) // the parent's leaf is its own now
	var p *pin.Pages
	paused := once(func() {
		goWait(func() { p = e.take(pin.Pin(s, addr, page, 0)) })
	})
	paused.set(t, testhook.WPCopyBeforeInstall)
	e.write(s, addr, []byte("writer"))
	paused.mustHaveRun(t, "the write's copy was never paused before its install")
	if st := s.Stats(); st.WPCopyDiscarded == 0 {
		t.Errorf("the write's stale copy was installed (WPCopyDiscarded 0)")
	}
	if got := joined(p); !bytes.HasPrefix(got, []byte("writer")) {
		t.Errorf("the pin holds %q…: the space no longer maps the pinned page", got[:8])
	}
	if got := e.read(c, addr, 6); string(got) != "pppppp" {
		t.Errorf("the child reads %q, want the snapshot", got)
	}
}

// TestTrailExclRecheck (NO_EXCL_RECHECK, scenario reuse): the parent's
// write copies a page the child maps and drops the PTL; the child exits;
// a read-only pin in the parent unshares the page, which now only the
// parent maps: it reuses it (the copy in flight is the parent's own) and
// pins it, leaving the entry read-only and unchanged. The copy must see
// that the page became exclusive and be discarded: installing it would
// replace a pinned page (the seed question).
func TestTrailExclRecheck(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(), 'q')
	c := e.fork(s)
	e.write(s, addr+8*page, []byte("x"))
	var p *pin.Pages
	paused := once(func() {
		goWait(func() { c.Close() })
		goWait(func() { p = e.take(pin.Pin(s, addr, page, 0)) })
	})
	paused.set(t, testhook.WPCopyUnlocked)
	e.write(s, addr, []byte("writer"))
	paused.mustHaveRun(t, "the write never copied")
	if st := s.Stats(); st.WPCopyDiscarded == 0 {
		t.Errorf("the copy replaced a page that became exclusive (WPCopyDiscarded 0)")
	}
	if got := joined(p); !bytes.HasPrefix(got, []byte("writer")) {
		t.Errorf("the pin holds %q…: the write went to a copy, not the pinned page", got[:8])
	}
}

// TestTrailGUPFastSeq (NO_GUPFAST_SEQ, scenario gupfast): a fast pin runs
// while Fork copies (after its drain, between its pin check and its
// write-protect). It must refuse (wpSeq is odd): had it pinned, Fork would
// share the pinned page and the child would see writes made through the
// pin. (GUP-fast is the one lockless path left that takes references.)
func TestTrailGUPFastSeq(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(e.a.Geometry().PMDOrder), 'f')
	var p *pin.Pages
	var err error
	during := once(func() { p, err = pin.Pin(s, addr, page, pin.Write|pin.FastOnly) })
	during.set(t, testhook.ForkAfterPinCheck)
	c := e.fork(s)
	during.mustHaveRun(t, "Fork never reached its pin check")
	if err == nil {
		e.held = append(e.held, p)
		copy(p.Bytes()[0], "via pin")
		t.Errorf("a fast pin succeeded while Fork was copying")
	} else if !errors.Is(err, pin.ErrFastFailed) {
		t.Fatal(err)
	}
	if got := e.read(c, addr, 7); string(got) != "fffffff" {
		t.Errorf("the child reads %q, want the snapshot", got)
	}
}

// TestTrailForkDrain (NO_FORK_DRAIN, scenario gupfast): a lockless WriteAt
// has found its page writable, in its writer section, and not yet written
// it when Fork makes wpSeq odd. Fork must wait for the section: the write
// lands wholly before the snapshot, and the child's memory does not change
// after Fork returns. Without the drain, the write would land in a page
// Fork already shared.
func TestTrailForkDrain(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(), 'd')
	var c *cow.Space
	var atReturn []byte
	forked := make(chan struct{})
	grabbed := once(func() {
		go func() {
			defer close(forked)
			c, _ = s.Fork()
			atReturn = make([]byte, 6)
			c.ReadAt(atReturn, int64(addr))
		}()
		waitInStack("cow.(*accessorSet).wait", forked) // Fork waits for this section
	})
	grabbed.set(t, testhook.LocklessAfterGrab)
	e.write(s, addr, []byte("inside"))
	grabbed.mustHaveRun(t, "the write never took the lockless path")
	<-forked
	if c == nil {
		t.Fatal("Fork failed")
	}
	e.spaces = append(e.spaces, c)
	if now := e.read(c, addr, 6); !bytes.Equal(now, atReturn) {
		t.Errorf("the child read %q when Fork returned and %q after: a write landed in its snapshot", atReturn, now)
	}
	e.write(s, addr, []byte("after!"))
	if now := e.read(c, addr, 6); !bytes.Equal(now, atReturn) {
		t.Errorf("the child reads %q after the parent wrote: want %q", now, atReturn)
	}
}

// TestTrailForkCopyPinned (NO_FORK_COPY_PINNED, scenario gupfast): the
// parent pins a page and forks. Fork must give the child a copy of the
// pinned page: writes through the pin stay the parent's, and the parent's
// writes through the space reach the pin.
func TestTrailForkCopyPinned(t *testing.T) {
	for name, o := range orders(newEnv(t)) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s, addr := e.space(o, 'o')
			p := e.take(pin.Pin(s, addr, page, pin.Write))
			c := e.fork(s)
			copy(p.Bytes()[0], "via pin")
			if got := e.read(c, addr, 7); string(got) != "ooooooo" {
				t.Errorf("the child reads %q: a write through the parent's pin", got)
			}
			e.write(s, addr+100, []byte("via space"))
			if got := joined(p)[100:109]; string(got) != "via space" {
				t.Errorf("the pin reads %q after the parent wrote: not coherent", got)
			}
		})
	}
}

// TestTrailReuseRefcount (NO_REUSE_REFCOUNT, scenario getexit; the
// CVE-2020-29374 case): the child takes a Get on a shared page and exits;
// the parent then writes the page, which it alone maps. The write must
// copy, because of the child's reference: reusing the page would show the
// parent's write through the child's Get.
func TestTrailReuseRefcount(t *testing.T) {
	for name, o := range orders(newEnv(t)) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			s, addr := e.space(o, 'g')
			c := e.fork(s)
			g := e.take(pin.Get(c, addr, page, 0))
			c.Close()
			e.write(s, addr, []byte("parent"))
			if got := joined(g)[:6]; string(got) != "gggggg" {
				t.Errorf("the child's Get reads %q: the parent's write after the child exited", got)
			}
		})
	}
}

// TestTrailWrProtectLeft (NO_WRPROTECT_LEFT, scenario drop): the parent
// takes a Get on a page and forks (on-demand fork shares the leaf, its
// entries still writable and exclusive), then drops the whole slot
// (DontNeed), which leaves the leaf to the child alone. It must leave it as
// an eager fork would have, write-protected and its pages no longer
// exclusive, so that the child's write finds the Get's reference and
// copies: the Get keeps reading the snapshot. Without it the child's write
// goes straight into the page, lockless. (spin's first counterexample has a
// locked ReadAt in place of the Get: followPage's reference, held while it
// copies after the PTL is dropped. The seqlock ReadAt no longer depends on
// the write-protect: the leaf's generation moved when it left the slot, as
// TestDropSharedLeafStaleLocklessRead in internal/mm/cow replays.)
func TestTrailWrProtectLeft(t *testing.T) {
	e := newEnv(t)
	s, addr := e.space(cow.Orders(), 'r')
	g := e.take(pin.Get(s, addr, page, 0))
	c := e.fork(s)
	if err := s.Advise(addr, 2<<20, cow.DontNeed); err != nil {
		t.Fatal(err)
	}
	e.write(c, addr, []byte("child!"))
	if got := joined(g)[:6]; string(got) != "rrrrrr" {
		t.Errorf("the parent's Get reads %q: the child wrote in place after the parent dropped the leaf", got)
	}
	if got := e.read(c, addr, 6); string(got) != "child!" {
		t.Errorf("the child reads %q, want its write", got)
	}
}
