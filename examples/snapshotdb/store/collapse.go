package store

import (
	"errors"
	"runtime"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// The store's khugepaged. The store's memory is mapped by huge entries
// (PMD-order folios) as it is first written. A save under writes leaves the
// ranges the store wrote meanwhile mapped page by page (a copy-on-write
// splits the huge entry) and their folios split (SplitDeferred), and every
// later access there walks a page-table leaf and takes a folio per page: a
// ReadAt of 300 random bytes takes 635 ns instead of 420, for good. The
// cron puts them back with Advise(Collapse), as Linux's khugepaged does,
// when no save runs (a collapse would copy what a snapshot still shares).
//
// Random writes during a save split nearly every range of the store within
// milliseconds, so the collapses come in bursts: each Maintain call goes on
// collapsing for up to collapseBudget, not a fixed few ranges. Two a call
// (the old pace) left respserver's 165 MiB of records split for about 4 s
// after every save, serving SET -P16 with about 8 % more CPU per request
// meanwhile (examples/respserver's README, "A BGSAVE under writes"). A
// collapse holds the space's map lock and quiesces its lockless accesses
// while it copies one range: a pause of about a millisecond, several on a
// loaded machine. The cron yields between two, so that the accesses held
// off run first, and gives the replaced pages back once per call, so that
// each collapse of a burst can reuse the block the previous one freed
// instead of a fresh one the kernel must zero.
const (
	collapseBudget = 20 * time.Millisecond // time a Maintain call spends collapsing (checked after each collapse)
	collapseScan   = 64                    // ranges a call looks at and leaves as they are, at most
)

// KeepSplit stops (keep true) or resumes the collapses. A collapse
// copies a range into a new huge folio: to package snapshot every page of
// it is written, so the next delta holds the whole 2 MiB. A store saved in
// deltas keeps its ranges split instead (reads there cost a page-table
// leaf more: see above).
func (s *Store) KeepSplit(keep bool) { s.keepSplit.Store(keep) }

// collapseSome collapses ranges of the allocator's blocks that are not
// mapped huge, scanning on from where the last call stopped, for up to the
// store's collapse budget; the pages the collapses replaced go back to the
// kernel.
//
// +checklocks:s.cronMu
func (s *Store) collapseSome() error {
	n, err := s.collapseRanges()
	if n > 0 {
		s.releaseFree()
	}
	return err
}

// collapseRanges does collapseSome's collapses and returns how many: at
// least one if a range needs it, then more while the budget lasts. It
// walks the allocator's class areas (slabRanges), each from its start up
// to its first PMD range not populated: slab carves each class's blocks
// from the start of its area up.
//
// +checklocks:s.cronMu
func (s *Store) collapseRanges() (int, error) {
	if s.noCollapse || s.saves.Load() > 0 || s.keepSplit.Load() {
		return 0, nil
	}
	ref := s.slab.Load()
	root, end := ref.a.Root(), ref.a.Root()+cow.Addr(ref.len)
	pmd := cow.Addr(s.ps * s.ps / 8) // what a page-table leaf maps: the PMD size
	area := cow.Addr(classReserve(s.maxRecord))
	done, start := 0, time.Now()
	// Only the ranges that need nothing (or cannot be collapsed now) count
	// against collapseScan; the collapses are bounded by the budget.
	for idle := 0; idle < collapseScan; {
		if s.collapseNext < root+area || s.collapseNext+pmd > end {
			s.collapseNext = root + area // the first class's area (the header's is before it)
		}
		addr := s.collapseNext
		s.collapseNext += pmd
		e, ok := s.sp.Pagemap(addr)
		if !ok { // past what this class populated: the next class's area
			s.collapseNext = root + (addr-root)/area*area + area
			idle++
			continue
		}
		if e.Huge {
			idle++
			continue
		}
		err := s.sp.Advise(addr, int(pmd), cow.Collapse)
		switch {
		case errors.Is(err, cow.ErrInvalid): // no PMD-order folios in this arena or space
			s.noCollapse = true
			return done, nil
		case errors.Is(err, cow.ErrBusy): // a page referenced (a reader's pin): next time
			idle++
			continue
		case err != nil:
			return done, err
		}
		if done++; time.Since(start) >= s.collapseBudget {
			break
		}
		runtime.Gosched() // the accesses this collapse held off go before the next one
	}
	return done, nil
}
