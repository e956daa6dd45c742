package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// zeroPageUpgrade serves a write to an entry that maps the shared zero page
// with a folio of the space's orders when one above order 0 fits (see
// anonOrder: its block maps only the zero page or nothing): a read of a
// range followed by writes to it then gets large folios as a write-first
// range does. The kernel copies one page there (wp_page_copy of the zero
// page; a whole THP only for its huge zero page). tried is false when no
// order above 0 applies: the caller copies one page, as before.
//
// Preconditions: mapLock is held for reading; the PTL is not held.
// +checklocksread:s.mapLock
func (s *Space) zeroPageUpgrade(d *pte.Dir, di int, l *pte.Leaf, i int, f *fault) (done bool, err error, tried bool) {
	if s.anonOrder(f.folioBounds(), l, i) == 0 {
		return false, nil, false
	}
	done, err = s.doAnonymousPage(d, di, l, f)
	return done, err, true
}

// rangeNoneOrZero reports whether entries [start, start+n) of l map nothing
// or the zero page.
//
// +checklocks:l.mu
func rangeNoneOrZero(l *pte.Leaf, start, n int) bool {
	for k := start; k < start+n; k++ {
		if e := l.GetRaw(k); !e.None() && !e.Zero() {
			return false
		}
	}
	return true
}
