package cow

import (
	"errors"
	"fmt"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// faultFlags say what a fault must achieve.
type faultFlags uint8

const (
	// faultWrite: make the page writable (FAULT_FLAG_WRITE).
	faultWrite faultFlags = 1 << iota
	// faultUnshare: make the page exclusive but leave it read-only
	// (FAULT_FLAG_UNSHARE): what a read-only pin of a shared page needs.
	faultUnshare
	// faultPrivate: only take this space's copy of a leaf shared after a
	// fork (what a Get through it needs); the entry is left as it is.
	faultPrivate
)

// fault is one fault being handled: where, what it must achieve and, for
// a write from WriteAt, the bytes to store. A CPU retries the store after
// the fault; we let the fault store the bytes into a page it is about to
// map (a fresh folio or a COW copy) before it maps it, and set applied.
// That saves a second walk, and a COW copy of the old contents when the
// bytes cover the whole page.
type fault struct {
	addr    Addr
	r       region // the region at addr, set by handleFault
	flags   faultFlags
	data    []byte // within the page at addr; nil unless a write
	applied bool   // data was stored into the page now mapped at addr
	order   int    // the largest folio order the fault tried to allocate (for errors)
	over    span   // the caller overwrites this range whole (see overwrite.go)
}

// handleFault resolves a fault (handle_mm_fault): when it returns nil, the
// entry at f.addr allows the access, or did a moment ago (a caller that
// finds it changed faults again), or f.applied says the write is done. It
// checks the region first: ErrFault without one, ErrProtection if the
// region forbids the access.
//
// Preconditions: mapLock is held for reading.
// +checklocksread:s.mapLock
func (s *Space) handleFault(f *fault) error {
	r, ok := s.regionAt(f.addr)
	if !ok {
		return faultErr(f.addr)
	}
	write := f.flags&faultWrite != 0
	if !r.prot.readable() || write && !r.prot.writable() {
		return protErr(f.addr, write)
	}
	s.cnt.faults.Add(1)
	f.r = r
	for {
		done, err := s.faultOnce(r, f)
		if err != nil {
			if errors.Is(err, folio.ErrNoMemory) {
				return s.noMemory(err, fmt.Sprintf("a fault at %#x wanted an order-%d folio and found no free page even of order 0", uint64(f.addr), f.order))
			}
			return err
		}
		if done {
			return nil
		}
	}
}

// store writes f's data into page, the page that will map f.addr.
func (f *fault) store(page []byte, ps uint64) {
	if f.data != nil {
		copy(page[uint64(f.addr)%ps:], f.data)
	}
}

// wholePage reports whether f's data covers the whole page, or the caller
// overwrites it.
func (f *fault) wholePage(ps uint64) bool {
	return uint64(len(f.data)) == ps || f.allocFlags(f.addr&^Addr(ps-1), 1, ps) == 0
}

// faultOnce makes one attempt. done false with no error means the state
// changed under it (a lost race, a split, a discarded copy): try again.
//
// +checklocksread:s.mapLock
func (s *Space) faultOnce(r region, f *fault) (done bool, err error) {
	d := s.table.DirAlloc(uint64(f.addr))
	di := d.Index(uint64(f.addr))
	if d.Huge(di).Present() {
		return s.hugeFault(d, di, f.flags)
	}
	l := d.Leaf(di)
	if l == nil {
		if f.flags&faultWrite != 0 && s.pmdFits(f.folioBounds(), Addr(d.Addr(di))) {
			f.order = s.geo.PMDOrder
			if done, err := s.doHugePMDAnonymousPage(d, di, f.allocFlags(Addr(d.Addr(di)), s.geo.TableEntries, s.ps)); done || err != nil {
				return done, err
			}
		}
		if l = d.LeafAlloc(di); l == nil {
			return false, nil // a huge entry raced in
		}
	}
	return s.faultLeaf(d, di, l, f)
}

// pmdFits reports whether a PMD-order folio may serve a fault in the slot
// at slot: the order is enabled and the region covers the whole slot
// (thp_vma_suitable_order).
func (s *Space) pmdFits(r region, slot Addr) bool {
	return s.orders.Has(s.geo.PMDOrder) && slot >= r.start && slot+Addr(s.table.LeafSize()) <= r.end
}

// faultLeaf handles a fault on an entry of leaf l, slot di of d. A write or
// an unshare in a leaf shared after a fork first takes a private copy of the
// leaf; a read may map the zero page into a shared leaf, which every user
// would read as zero anyway.
//
// +checklocksread:s.mapLock
func (s *Space) faultLeaf(d *pte.Dir, di int, l *pte.Leaf, f *fault) (bool, error) {
	addr, flags := f.addr, f.flags
	i := l.Index(uint64(addr))
	write, unshare := flags&faultWrite != 0, flags&faultUnshare != 0
	if write && !l.Shared() && l.GetLockless(i).None() {
		// The common first-touch write: doAnonymousPage rechecks the range
		// under the PTL, so the decision can be made without it.
		return s.doAnonymousPage(d, di, l, f)
	}
	if !relock(d, di, l) {
		l.Unlock()
		return false, nil
	}
	e := l.Get(i)
	if (write || unshare || flags&faultPrivate != 0) && l.Shared() {
		l.Unlock()
		s.unshareLeaf(d, di, l)
		return false, nil
	}
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
		return s.doAnonymousPage(d, di, l, f)
	case e.ProtNone():
		// The region allows the access (checked) but the entry does not:
		// Protect changes both under mapLock held for writing, so this
		// cannot be; refuse rather than guess.
		l.Unlock()
		return false, protErr(addr, write)
	case write && e.Write():
		l.SetAccessFlags(i, e.MkDirty().MkYoung().MkSoftDirty()) // spurious: set the access bits
		l.Unlock()
		return true, nil
	case !write && (!unshare || e.Write()):
		// A read of a present page, or an unshare of a writable (hence
		// exclusive) one: nothing to do.
		l.Unlock()
		return true, nil
	}
	return s.doWPPage(d, di, l, i, e, f)
}
