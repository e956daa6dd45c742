package cow

import (
	"testing"
)

// TestPartlyMappedFolioQueued: a large folio left partly mapped must be
// queued for the deferred split. Two paths took a space's mappings of a
// folio away without the test that queues it: zapSlot's whole-slot huge
// branch (also taken by Close) and wpFolioCopy (the huge-entry copy had the
// same hole). When another space mapped the folio partly, nothing ever
// queued it, so its unmapped pages were never freed while that space
// lived. Every such path now calls deferIfPartial.
func TestPartlyMappedFolioQueued(t *testing.T) {
	t.Run("hugeZap", func(t *testing.T) {
		e := newEnv(t, 16<<20)
		g := e.a.Geometry()
		s := e.space(Orders(g.PMDOrder))
		addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
		write(t, s, addr, pattern('z', 2<<20))
		c := e.fork(s) // the huge entry is shared (copyHuge)
		// The parent drops half: split in the parent, not queued because
		// the child still maps the folio whole (entire mapcount).
		if err := s.Advise(addr+(1<<20), 1<<20, DontNeed); err != nil {
			t.Fatal(err)
		}
		// The child unmaps its huge entry: the folio is now mapped by the
		// parent's lower half only.
		if err := c.Unmap(addr, 2<<20); err != nil {
			t.Fatal(err)
		}
		e.check()
		if freed := s.SplitDeferred(); freed != 256 {
			t.Errorf("SplitDeferred freed %d pages, want the 256 nobody maps (SplitDeferred stats %v)", freed, s.Stats().SplitDeferred[g.PMDOrder])
		}
		expect(t, s, addr, pattern('z', 1<<20))
	})
	t.Run("wpFolioCopy", func(t *testing.T) {
		e := newEnv(t, 16<<20)
		s, err := NewSpace(e.a, Options{Orders: Orders(4), CopyUnit: CopyFolio})
		if err != nil {
			t.Fatal(err)
		}
		e.spaces = append(e.spaces, s)
		addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
		write(t, s, addr, pattern('f', 16*4096))
		c := e.fork(s)
		// The child drops the upper half: queued, then dequeued by the
		// split because the parent still maps every page.
		if err := c.Advise(addr+8*4096, 8*4096, DontNeed); err != nil {
			t.Fatal(err)
		}
		if freed := s.SplitDeferred(); freed != 0 {
			t.Fatalf("freed %d while the parent maps the whole folio", freed)
		}
		// The parent copies the whole folio away: the old one is now mapped
		// by the child's lower half only.
		write(t, s, addr, []byte("P"))
		if st := s.Stats(); st.WPCopy != 1 || st.CopyBytes != 16*4096 {
			t.Fatalf("WPCopy %d CopyBytes %d: not a whole-folio copy", st.WPCopy, st.CopyBytes)
		}
		e.check()
		if freed := s.SplitDeferred(); freed != 8 {
			t.Errorf("SplitDeferred freed %d pages, want the 8 nobody maps", freed)
		}
		expect(t, c, addr, pattern('f', 8*4096))
	})
}
