package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// PagemapEntry describes what maps one address of a space, as a line of
// /proc/pid/pagemap and /proc/kpageflags do together: for tests, tools and
// debugging.
type PagemapEntry struct {
	PFN       uint64 // the page's frame number: its index in the arena (0 for the zero page)
	Order     int    // the order of the folio the page belongs to
	Zero      bool   // the shared zero page, which a read of an untouched page maps
	Writable  bool   // the entry allows a write now; a write to a read-only one of a writable region faults
	Dirty     bool   // written since it was mapped
	Young     bool   // accessed since it was mapped
	Huge      bool   // mapped by a huge (PMD) entry, with the whole PMD-order folio
	Cont      bool   // part of a contiguous-PTE (contpte) block
	Shared    bool   // in a page-table leaf shared with a Fork's child or parent (on-demand fork)
	Exclusive bool   // AnonExclusive: no other space maps the page, so a write reuses it
	Written   bool   // written since the space's last snapshot (soft-dirty, pagemap's PM_SOFT_DIRTY)
}

// Pagemap returns what maps addr, read without a lock: a snapshot that may
// change at once if other goroutines use the space. ok is false if nothing
// is mapped there.
func (s *Space) Pagemap(addr Addr) (PagemapEntry, bool) {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return PagemapEntry{}, false
	}
	di := d.Index(uint64(addr))
	var m PagemapEntry
	var e pte.PTE
	if h := d.Huge(di); h.Present() {
		e, m.Huge = h.Advance(int((uint64(addr)-d.Addr(di))/s.ps)), true
	} else if l := d.Leaf(di); l != nil {
		e, m.Shared = l.GetLockless(l.Index(uint64(addr))), l.Shared()
	}
	if e.None() {
		return PagemapEntry{}, false
	}
	m.Zero, m.Writable, m.Dirty, m.Young, m.Cont = e.Zero(), e.Write(), e.Dirty(), e.Young(), e.Cont()
	m.Written = e.SoftDirty()
	if !m.Zero {
		m.PFN = uint64(e.PFN())
		m.Exclusive = s.a.PageAnonExclusive(e.PFN())
		if _, order, ok := s.a.PageFolio(e.PFN()); ok {
			m.Order = order
		}
	}
	return m, true
}
