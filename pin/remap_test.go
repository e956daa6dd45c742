package pin

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// TestFastPinRacingRemapKeepsHint: Remap moves a leaf's entries into
// another leaf without quiescing the space, carrying the "maybe pinned"
// hint over only if the source leaf had it when the move began. A GUP-fast
// pin of a page being moved that sets the hint, grabs and rechecks after
// that read but before its entry is cleared succeeds (Remap does not move
// wpSeq), and its page lands in a leaf without the hint: the next Fork
// shares that leaf, the child reads what is written through the pin, and
// the parent's next write copies the page away from the pin. Bug 2 again,
// through Remap instead of the split of a huge entry.
//
// The pin must either be refused (FastOnly fails) or stay coherent with the
// parent and invisible to the child.
func TestFastPinRacingRemapKeepsHint(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders()}) // a leaf of small folios
	src := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	dst := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite) // another slot: another leaf
	e.Write(s, src, spacetest.Fill('m', 2<<20))

	var p *Pages
	var pinErr error
	moving := testhook.NewOnce(func() {
		// Remap holds the map lock for writing and no PTL: only the fast
		// path can run, and FastOnly keeps the pin to it.
		p, pinErr = Pin(s, src, page, Write|FastOnly)
	})
	restore := testhook.Set(testhook.RemapMoving, moving.Run)
	err := s.Remap(src, 2<<20, dst)
	restore()
	if err != nil {
		t.Fatal(err)
	}
	mustHaveRun(t, moving, "Remap never moved entries between leaves")
	if errors.Is(pinErr, ErrFastFailed) {
		return // refused while Remap moves the entries: nothing to keep coherent
	}
	if pinErr != nil {
		t.Fatal(pinErr)
	}
	defer p.Release()
	e.Check() // race and invariants builds: the pinned page's leaf must carry the hint
	c := e.Fork(s)
	writeThrough(p, 0, []byte("through the pin"))
	e.Expect(c, dst, spacetest.Fill('m', 15)) // isolation: the child keeps the page as it was at the Fork
	e.Write(s, dst+100, []byte("through the space"))
	if got := spacetest.Join(p.Bytes())[100:117]; string(got) != "through the space" {
		t.Fatalf("pin coherence: a write through the space reads %q through the pin (the page was copied away from it)", got)
	}
	e.Expect(s, dst, []byte("through the pin"))
	e.Check()
}
