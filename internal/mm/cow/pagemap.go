package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// PagemapEntry describes what maps one address of a space, as a line of
// /proc/pid/pagemap does: for tests, tools and debugging.
type PagemapEntry struct {
	PTE       pte.PTE   // the entry (for a huge entry, this page's share of it)
	PFN       folio.PFN // the page, if present and not the zero page
	Huge      bool      // mapped by a huge entry
	Shared    bool      // in a page-table leaf shared after a fork
	Exclusive bool      // the page is AnonExclusive
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
	if h := d.Huge(di); h.Present() {
		m.PTE, m.Huge = h.Advance(int((uint64(addr)-d.Addr(di))/s.ps)), true
	} else if l := d.Leaf(di); l != nil {
		m.PTE, m.Shared = l.GetLockless(l.Index(uint64(addr))), l.Shared()
	}
	if m.PTE.None() {
		return PagemapEntry{}, false
	}
	if !m.PTE.Zero() {
		m.PFN = m.PTE.PFN()
		m.Exclusive = s.a.PageAnonExclusive(m.PFN)
	}
	return m, true
}
