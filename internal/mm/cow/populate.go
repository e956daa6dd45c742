package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// populate is Advise(PopulateRead/PopulateWrite) (madvise_populate): it
// faults every page of [start, end) in now, as reads or writes would, so
// that later accesses find them mapped. Write faults allocate at the
// space's orders (a fault maps a whole folio, and the pages it maps are
// skipped). The range must be mapped (ErrFault), readable, and for a write
// writable (ErrProtection), checked before anything is faulted. Out of
// memory, it runs the deferred split and goes on once.
func (s *Space) populate(start, end Addr, write bool) error {
	return s.retryAfterSplit(func() error { return s.populateOnce(&start, end, write) })
}

// populateOnce faults from *start on, advancing it past what is done.
func (s *Space) populateOnce(start *Addr, end Addr, write bool) error {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return closedErr()
	}
	if !s.coveredLocked(*start, end) {
		return unmappedErr("Advise(Populate)", *start, int(end-*start))
	}
	lo, hi := endAfter(s.regions, *start), startFrom(s.regions, end)
	for _, r := range s.regions[lo:hi] {
		if !r.prot.readable() || write && !r.prot.writable() {
			return protErr(max(r.start, *start), write)
		}
	}
	for *start < end {
		f := fault{addr: *start}
		if write {
			f.flags = faultWrite
		}
		if err := s.handleFault(&f); err != nil {
			return err
		}
		*start = min(end, s.mappedEnd(*start))
	}
	return nil
}

// mappedEnd returns where the mapping that now covers addr ends, for
// populate to skip: the end of a huge entry's slot, of a folio's run of
// pages in a leaf, or the next page.
//
// +checklocksread:s.mapLock
func (s *Space) mappedEnd(addr Addr) Addr {
	next := s.pageAlign(addr) + Addr(s.ps)
	var t xlate
	if !s.fill(&t, addr) {
		return next
	}
	if t.leaf == nil {
		return Addr((uint64(addr)>>s.leafShift + 1) << s.leafShift) // the slot's end
	}
	e, n := s.entry(&t, addr, s.geo.TableEntries, false)
	if !e.Present() {
		return next
	}
	return s.pageAlign(addr) + Addr(uint64(n)*s.ps)
}

// retryAfterSplit runs once, and once more if the arena was out of memory
// and the deferred split freed something: what every slow path that
// faults does. Called with no lock held (the split takes the map locks).
func (s *Space) retryAfterSplit(once func() error) error {
	err := once()
	if errors.Is(err, folio.ErrNoMemory) && s.as.splitDeferred() > 0 {
		err = once()
	}
	return err
}
