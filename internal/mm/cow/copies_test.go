package cow

import (
	"testing"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// TestCopyTableSnap: a snap counts the copies of one folio in the slots,
// and stays valid exactly while every copy it counted is still the same one
// in flight: a copy that ends and another that takes its slot (the ABA the
// reuse test must not be fooled by) invalidate it; copies of other folios
// and new copies of the same folio do not (a new one is not counted: the
// count may only err low).
func TestCopyTableSnap(t *testing.T) {
	var c copyTable
	const a, b = folio.PFN(0), folio.PFN(512)
	c.add(a)
	c.add(b)
	c.add(a)
	s := c.snap(a)
	if s.n != 2 || !c.unchanged(&s) {
		t.Fatalf("snap of two copies: n %d unchanged %v", s.n, c.unchanged(&s))
	}
	c.add(a)
	c.remove(b)
	if !c.unchanged(&s) {
		t.Error("a new copy of a, or the end of one of b, invalidated the snap of a")
	}
	c.remove(a)
	if c.unchanged(&s) {
		t.Error("the snap is still valid after a copy it counted ended")
	}
	c.add(a) // takes a free slot: possibly the one just released
	if c.unchanged(&s) {
		t.Error("the snap is valid again after a new copy took a counted copy's slot")
	}
	c.remove(a)
	c.remove(a)
	c.remove(a)
	if s := c.snap(a); s.n != 0 {
		t.Errorf("%d copies of a left after every remove", s.n)
	}
}

// TestCopyTableSpill: past copySlots copies in flight, the rest are kept
// in the map; a snap leaves them out, and removes balance.
func TestCopyTableSpill(t *testing.T) {
	var c copyTable
	const a = folio.PFN(7)
	for range copySlots + 3 {
		c.add(a)
	}
	if s := c.snap(a); s.n != copySlots {
		t.Errorf("snap counts %d, want the %d in slots", s.n, copySlots)
	}
	c.mu.Lock()
	over := c.over[a]
	c.mu.Unlock()
	if over != 3 {
		t.Errorf("%d spilled, want 3", over)
	}
	for range copySlots + 3 {
		c.remove(a)
	}
	c.mu.Lock()
	left := len(c.over)
	c.mu.Unlock()
	if s := c.snap(a); s.n != 0 || left != 0 {
		t.Errorf("after every remove: %d in slots, %d in the map", s.n, left)
	}
}
