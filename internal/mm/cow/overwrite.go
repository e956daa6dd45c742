package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// Pages about to be overwritten whole need not be zeroed first: the write
// that follows a fault for such a page would erase the zeros, or the copy a
// copy-on-write fault makes of the old contents. A Load of a snapshot
// builds a space no one else sees and fills every page of each range it
// writes; WritablePages faults the range in for it that way.

// allocFlags returns how a fault allocates a folio of n pages mapped from
// addr on: zeroed, unless the caller overwrites all of them.
func (f *fault) allocFlags(addr Addr, n int, ps uint64) folio.AllocFlags {
	if f.over.start <= addr && addr+Addr(uint64(n)*ps) <= f.over.end {
		return 0
	}
	return folio.AllocZero
}

// folioBounds returns the range a folio allocated for the fault must lie
// in: its region, and for an overwrite (WritablePages) the range the
// caller overwrites, so that a Load of a sparse image maps no more memory
// than its pages (a huge folio around one page would be 511 pages of
// zeros that a later Save stores again).
func (f *fault) folioBounds() region {
	r := f.r
	if f.over.end != 0 {
		r.start, r.end = max(r.start, f.over.start), min(r.end, f.over.end)
	}
	return r
}

// WritablePages makes every page of [addr, addr+length) writable as write
// faults would, for a caller that then overwrites every byte of the range,
// and appends the runs of frames that map it to out, in address order. The
// folios it allocates inside the range are not zeroed and the pages it
// copies inside the range are not copied, so until the caller has written
// them they hold stale bytes: only for a space no one else uses, whose
// frames nothing else can unmap meanwhile (a Load's Fork). The range must
// be mapped, writable, and page-aligned. The folios it allocates lie
// inside the range: they are of the space's orders only where those fit.
func (s *Space) WritablePages(addr Addr, length int, out []PageRun) ([]PageRun, error) {
	if err := s.checkRange(addr, length); err != nil {
		return out, err
	}
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return out, closedErr()
	}
	end := addr + Addr(length)
	for a := addr; a < end; {
		e, head, ok := s.followPage(a, true)
		if !ok {
			f := fault{addr: a, flags: faultWrite, over: span{addr, end}}
			if err := s.handleFault(&f); err != nil {
				return out, err
			}
			continue
		}
		s.a.FolioPut(head, 1) // the mapping holds it: no one else unmaps it
		out = appendRun(out, s.ps, a, e, 1)
		a += Addr(s.ps)
	}
	return out, nil
}
