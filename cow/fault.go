package cow

import (
	"github.com/anonfolio/anonfolio/pte"
)

// faultFlags say what a fault must achieve.
type faultFlags uint8

const (
	// faultWrite: make the page writable (FAULT_FLAG_WRITE).
	faultWrite faultFlags = 1 << iota
	// faultUnshare: make the page exclusive but leave it read-only
	// (FAULT_FLAG_UNSHARE): what a read-only pin of a shared page needs.
	faultUnshare
)

// handleFault resolves a fault at addr (handle_mm_fault): when it returns
// nil, the entry at addr allows the access, or did a moment ago (a caller
// that finds it changed faults again). It checks the region first: ErrFault
// without one, ErrProtection if the region forbids the access.
//
// Preconditions: mapLock is held for reading.
// +checklocksread:s.mapLock
func (s *Space) handleFault(addr Addr, flags faultFlags) error {
	r, ok := s.regionAt(addr)
	if !ok {
		return faultErr(addr)
	}
	write := flags&faultWrite != 0
	if !r.prot.readable() || write && !r.prot.writable() {
		return protErr(addr, write)
	}
	s.cnt.faults.Add(1)
	for {
		done, err := s.faultOnce(r, addr, flags)
		if err != nil || done {
			return err
		}
	}
}

// faultOnce makes one attempt. done false with no error means the state
// changed under it (a lost race, a split, a discarded copy): try again.
//
// +checklocksread:s.mapLock
func (s *Space) faultOnce(r region, addr Addr, flags faultFlags) (done bool, err error) {
	d := s.table.DirAlloc(uint64(addr))
	di := d.Index(uint64(addr))
	if d.Huge(di).Present() {
		return s.hugeFault(d, di, flags)
	}
	l := d.Leaf(di)
	if l == nil {
		if flags&faultWrite != 0 && s.pmdFits(r, Addr(d.Addr(di))) {
			if done, err := s.doHugePMDAnonymousPage(d, di); done || err != nil {
				return done, err
			}
		}
		if l = d.LeafAlloc(di); l == nil {
			return false, nil // a huge entry raced in
		}
	}
	return s.faultLeaf(l, addr, flags)
}

// pmdFits reports whether a PMD-order folio may serve a fault in the slot
// at slot: the order is enabled and the region covers the whole slot
// (thp_vma_suitable_order).
func (s *Space) pmdFits(r region, slot Addr) bool {
	return s.orders.Has(s.geo.PMDOrder) && slot >= r.start && slot+Addr(s.table.LeafSize()) <= r.end
}

// faultLeaf handles a fault on an entry of leaf l.
//
// +checklocksread:s.mapLock
func (s *Space) faultLeaf(l *pte.Leaf, addr Addr, flags faultFlags) (bool, error) {
	i := l.Index(uint64(addr))
	write, unshare := flags&faultWrite != 0, flags&faultUnshare != 0
	l.Lock()
	if l.Dead() {
		l.Unlock()
		return false, nil
	}
	e := l.Get(i)
	switch {
	case e.None() && !write:
		// A read maps the shared zero page. An unshare goes on to give the
		// zero page a private copy on the next attempt.
		l.Set(i, pte.ZeroPTE.MkYoung())
		l.Unlock()
		s.cnt.zeroPageMaps.Add(1)
		return !unshare, nil
	case e.None():
		l.Unlock()
		return s.doAnonymousPage(l, addr)
	case e.ProtNone():
		// The region allows the access (checked) but the entry does not:
		// Protect changes both under mapLock held for writing, so this
		// cannot be; refuse rather than guess.
		l.Unlock()
		return false, protErr(addr, write)
	case write && e.Write():
		l.SetAccessFlags(i, e.MkDirty().MkYoung()) // spurious: set the access bits
		l.Unlock()
		return true, nil
	case !write && (!unshare || e.Write()):
		// A read of a present page, or an unshare of a writable (hence
		// exclusive) one: nothing to do.
		l.Unlock()
		return true, nil
	}
	return s.doWPPage(l, i, e, flags)
}
