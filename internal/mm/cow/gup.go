package cow

import (
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/sections"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// The hooks below are what the pin package builds GUP on (mm/gup.c is built
// on handle_mm_fault and the page-table walkers): a lockless section with
// the write_protect_seq bracket, a lockless walk that grabs a run of pages,
// the same walk under the PTL, and fault-in. ReadAt and WriteAt use the
// same walk.

// Want says what an access needs of the pages it grabs.
type Want uint8

const (
	// WantWrite: the entry must be writable (so the page is exclusive) and
	// its leaf not shared after a fork.
	WantWrite Want = 1 << iota
	// WantExclusive: the pages must be AnonExclusive, in a leaf not shared:
	// what a pin needs even when read-only (a pinned page is always
	// exclusive). The leaf is marked as maybe holding a pinned page first.
	WantExclusive
	// WantHold: the reference will be held after the call (a Get): the leaf
	// must not be shared. A reference taken through a shared leaf would be
	// on a page its other users still map writable and exclusive (sharing
	// a leaf write-protects nothing), which they would then reuse under it:
	// CVE-2020-29374 again. Taking this space's copy of the leaf first
	// write-protects the original and clears AnonExclusive, as the kernel's
	// eager fork does.
	WantHold
	// WantPin: the reference is a pin (FOLL_PIN), counted in the folio's
	// pincount as it is taken, before the entry is rechecked, as the
	// kernel's try_grab_folio does. Whatever looks for pins after it
	// replaced the entry (the split of a huge entry, which must carry the
	// "maybe pinned" hint into the new leaf) then sees it, or the walk's
	// recheck fails. Counting it later leaves a window where a split finds
	// no pin and a Fork shares the pinned page.
	WantPin
	// WantEach: the run is held with one reference (one pin, with WantPin)
	// per page, all taken at the grab with one atomic operation
	// (try_grab_folio's refs), not one for the run.
	WantEach
)

// Run is a run of consecutive pages of one folio that a walk found and
// grabbed: one reference is taken on the folio (none for the zero page),
// one pin with WantPin; with WantEach, one per page of the run.
type Run struct {
	Head folio.PFN // the folio
	PFN  folio.PFN // the first page of the run
	N    int       // pages in the run
	Zero bool      // the shared zero page: N is 1, Head and PFN mean nothing
}

// FaultNeeded says which fault would make an entry allow an access.
type FaultNeeded uint8

// The faults a slow-path walk can ask for.
const (
	NoFault      FaultNeeded = iota
	FaultRead                // map something (the zero page for anonymous memory)
	FaultWrite               // make it writable: allocate, reuse or copy
	FaultUnshare             // make it exclusive, read-only (FAULT_FLAG_UNSHARE)
	FaultPrivate             // take this space's copy of a leaf shared after a fork
)

// FastSection is a lockless section of GUP-fast: Fork, Close and Check wait
// for it, and the write_protect_seq it started under tells whether a Fork
// began meanwhile (gup_fast's raw_seqcount_try_begin / read_seqcount_retry).
type FastSection struct {
	s   *Space
	seq uint64
	n   *atomic.Int64
}

// BeginFast enters a lockless section. It reports false (and needs no End)
// if a Fork is write-protecting the space or it is closed: take the slow
// path.
func (s *Space) BeginFast() (FastSection, bool) {
	n := s.inflight.Enter()
	seq := s.wpSeq.Load()
	if seq&1 != 0 || s.closed.Load() {
		sections.Exit(n)
		return FastSection{}, false
	}
	return FastSection{s: s, seq: seq, n: n}, true
}

// Unchanged reports whether no Fork began since the section started: pins
// taken in it are valid only if so.
func (f FastSection) Unchanged() bool { return f.s.wpSeq.Load() == f.seq }

// End leaves the section.
func (f FastSection) End() { sections.Exit(f.n) }

// GrabLockless walks the table at addr without a lock and grabs the run of
// at most max pages of one folio that the entry there (and those after it,
// mapped alike) maps, if it allows want: one reference on the folio, then
// the entry rechecked (the grab keeps the folio from being freed and
// reused; entries read after it are rechecks too). It reports false if the
// locked slow path is needed. Call it inside a FastSection.
func (s *Space) GrabLockless(addr Addr, max int, want Want) (Run, bool) {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return Run{}, false
	}
	di := d.Index(uint64(addr))
	exclusive := want&WantExclusive != 0
	if h := d.Huge(di); h.Present() {
		k := int((uint64(addr) - d.Addr(di)) / s.ps)
		e := h.Advance(k)
		if !allows(e, want) {
			return Run{}, false
		}
		n := min(max, s.geo.TableEntries-k)
		refs := grabRefs(n, want)
		head, ok := s.tryGrab(e.PFN(), refs, want)
		if !ok {
			return Run{}, false
		}
		testhook.Run(testhook.LocklessAfterGrab)
		if !pte.SameMapping(d.Huge(di), h) || exclusive && !s.a.PagesAnonExclusive(e.PFN(), n) {
			s.ungrab(head, refs, want)
			return Run{}, false
		}
		testhook.Run(testhook.LocklessAfterRecheck)
		return Run{Head: head, PFN: e.PFN(), N: n}, true
	}
	l := d.Leaf(di)
	if l == nil {
		return Run{}, false
	}
	i := l.Index(uint64(addr))
	// The entry as stored is enough to choose what to grab: the grab is
	// validated by the recheck after it, entry by entry.
	e := l.GetRaw(i)
	// A shared leaf is read-only to every user, and no page in it counts
	// as exclusive.
	if !allows(e, want) || want != 0 && l.Shared() {
		return Run{}, false
	}
	if e.Zero() {
		if want&(WantWrite|WantExclusive) != 0 {
			return Run{}, false
		}
		return Run{Zero: true, N: 1}, true // the zero page: nothing to reference
	}
	if exclusive {
		l.SetMaybePinned() // before the grab: a Fork that missed it sees wpSeq move
	}
	if want&WantHold != 0 {
		l.SetMaybeHeld() // for a Close that leaves the leaf to others: see wrProtectLeft
	}
	refs := 1
	if want&WantEach != 0 {
		refs = s.runAhead(l, i, max, e)
	}
	head, ok := s.tryGrab(e.PFN(), refs, want)
	if !ok {
		return Run{}, false
	}
	testhook.Run(testhook.LocklessAfterGrab)
	// Recheck the entry, and that l is still this space's leaf (gup_fast
	// rechecks the pmd): a leaf this space dropped may live on for
	// another space, which writes its pages in place.
	// Each entry of the run is rechecked on its own, as gup_fast rechecks
	// each pte: a contpte block read folded before the grab may have been
	// unfolded since (to zap one of its pages), and only its entries as
	// they are now say which still map the folio.
	end := head + folio.PFN(s.a.FolioNrPages(head))
	n := l.RunRaw(i, min(max, int(end-e.PFN())), e)
	if n == 0 || d.Leaf(di) != l {
		s.ungrab(head, refs, want)
		return Run{}, false
	}
	if exclusive {
		if n = s.exclusivePrefix(e.PFN(), n); n == 0 {
			s.ungrab(head, refs, want)
			return Run{}, false
		}
	}
	if want&WantEach != 0 {
		// The run as rechecked: never more pages than references taken,
		// and the references of pages it lost given back.
		if n < refs {
			s.ungrab(head, refs-n, want)
		}
		n = min(n, refs)
	}
	testhook.Run(testhook.LocklessAfterRecheck)
	return Run{Head: head, PFN: e.PFN(), N: n}, true
}

// tryGrab takes n lockless references on the folio of pfn: pins with
// WantPin (try_grab_folio with FOLL_PIN), plain references otherwise.
func (s *Space) tryGrab(pfn folio.PFN, n int, want Want) (folio.PFN, bool) {
	if want&WantPin != 0 {
		return s.a.FolioTryPinN(pfn, n)
	}
	return s.a.FolioTryGetN(pfn, n)
}

// ungrab drops n of what tryGrab took.
func (s *Space) ungrab(head folio.PFN, n int, want Want) {
	if want&WantPin != 0 {
		s.a.FolioUnpin(head, n)
	} else {
		s.a.FolioPut(head, n)
	}
}

// grabLocked takes the n references of a run found under its lock: pins
// with WantPin.
func (s *Space) grabLocked(head folio.PFN, n int, want Want) {
	if want&WantPin != 0 {
		s.a.FolioPin(head, n)
	} else {
		s.a.FolioGet(head, n)
	}
}

// grabRefs is how many references a grab of a run of n pages takes: one
// per page with WantEach, else one.
func grabRefs(n int, want Want) int {
	if want&WantEach != 0 {
		return n
	}
	return 1
}

// runAhead returns how many entries from i on, at most max, map alike the
// pages of e's folio that follow e's, read without a lock before the grab:
// the references a WantEach grab takes, the run being rechecked after it.
func (s *Space) runAhead(l *pte.Leaf, i, max int, e pte.PTE) int {
	head, order, ok := s.a.PageFolio(e.PFN())
	if !ok {
		return 1 // the grab fails
	}
	return l.RunLockless(i, min(max, int(head+folio.PFN(1)<<order-e.PFN())), e)
}

// allows reports whether entry e allows an access wanting want (not
// counting AnonExclusive, which is checked after the grab).
func allows(e pte.PTE, want Want) bool {
	return e.Accessible() && (want&WantWrite == 0 || e.Write())
}

// exclusivePrefix returns how many of the n pages from pfn on are
// AnonExclusive before the first one that is not.
func (s *Space) exclusivePrefix(pfn folio.PFN, n int) int {
	if s.a.PagesAnonExclusive(pfn, n) {
		return n
	}
	k := 0
	for k < n && s.a.PageAnonExclusive(pfn+folio.PFN(k)) {
		k++
	}
	return k
}

// Locked is a space whose map lock is held for reading: the slow path of
// GUP (mmap_read_lock ... mmap_read_unlock). Fork cannot run meanwhile.
type Locked struct{ s *Space }

// LockMap takes the map lock for reading; ErrClosed on a closed space.
//
// +checklocksignore: the lock is held on success, as Locked's methods say.
func (s *Space) LockMap() (Locked, error) {
	s.mapLock.RLock()
	if s.closed.Load() {
		s.mapLock.RUnlock()
		return Locked{}, closedErr()
	}
	return Locked{s}, nil
}

// Unlock releases the map lock.
//
// +checklocksignore: LockMap took it.
func (m Locked) Unlock() { m.s.mapLock.RUnlock() }

// Grab is GrabLockless under the PTL (follow_page_pte): the entry cannot
// change while it is examined. If it does not allow want it returns the
// fault that would make it (NoFault means the run was grabbed): a write
// fault for a write, an unshare for an exclusive read of a shared or
// not-exclusive page (the zero page included), a read fault for nothing
// mapped.
//
// +checklocksignore: LockMap holds the map lock for reading.
func (m Locked) Grab(addr Addr, max int, want Want) (Run, FaultNeeded) {
	s := m.s
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return Run{}, missing(want)
	}
	di := d.Index(uint64(addr))
	if d.Huge(di).Present() {
		d.Lock()
		defer d.Unlock()
		h := d.Huge(di)
		if !h.Present() {
			return Run{}, missing(want)
		}
		k := int((uint64(addr) - d.Addr(di)) / s.ps)
		e := h.Advance(k)
		n := min(max, s.geo.TableEntries-k)
		if need := blocked(e, want, false, want&WantExclusive != 0 && !s.a.PagesAnonExclusive(e.PFN(), n)); need != NoFault {
			// (Huge entries are never shared: Fork copies them.)
			return Run{}, need
		}
		s.grabLocked(h.PFN(), grabRefs(n, want), want)
		return Run{Head: h.PFN(), PFN: e.PFN(), N: n}, NoFault
	}
	l := d.Leaf(di)
	if l == nil {
		return Run{}, missing(want)
	}
	mine := relock(d, di, l) // see followPage
	defer l.Unlock()
	i := l.Index(uint64(addr))
	e := l.Get(i)
	if !mine || e.None() {
		return Run{}, missing(want)
	}
	exclusive := want&WantExclusive != 0
	notExcl := exclusive && (e.Zero() || !s.a.PageAnonExclusive(e.PFN()))
	if need := blocked(e, want, l.Shared(), notExcl); need != NoFault {
		return Run{}, need
	}
	if e.Zero() {
		return Run{Zero: true, N: 1}, NoFault
	}
	if exclusive {
		l.SetMaybePinned()
	}
	if want&WantHold != 0 {
		l.SetMaybeHeld()
	}
	head, _ := s.pageFolio(e.PFN())
	end := head + folio.PFN(s.a.FolioNrPages(head))
	n := 1
	for n < max && i+n < l.Len() && e.PFN()+folio.PFN(n) < end && pte.SameMapping(l.GetRaw(i+n), e.Advance(n)) {
		n++
	}
	if exclusive {
		n = s.exclusivePrefix(e.PFN(), n) // at least 1: checked above
	}
	s.grabLocked(head, grabRefs(n, want), want) // the PTL keeps the run as it is
	return Run{Head: head, PFN: e.PFN(), N: n}, NoFault
}

// missing is the fault for an address where nothing is mapped.
func missing(want Want) FaultNeeded {
	if want&WantWrite != 0 {
		return FaultWrite
	}
	return FaultRead
}

// blocked returns the fault an access wanting want needs on entry e (in a
// shared leaf, or of a page that is not exclusive when it must be), or
// NoFault.
func blocked(e pte.PTE, want Want, shared, notExclusive bool) FaultNeeded {
	switch {
	case !e.Accessible():
		return FaultRead // the region check reports the protection error
	case want&WantWrite != 0 && (!e.Write() || shared):
		return FaultWrite
	case want&WantExclusive != 0 && (shared || notExclusive):
		return FaultUnshare
	case want&WantHold != 0 && shared:
		return FaultPrivate
	}
	return NoFault
}

// Fault resolves the fault need at addr (faultin_page → handle_mm_fault):
// ErrFault with no region there, ErrProtection if the region forbids the
// access, folio.ErrNoMemory when nothing can be allocated.
//
// +checklocksignore: LockMap holds the map lock for reading.
func (m Locked) Fault(addr Addr, need FaultNeeded) error {
	f := fault{addr: addr}
	switch need {
	case FaultWrite:
		f.flags = faultWrite
	case FaultUnshare:
		f.flags = faultUnshare
	case FaultPrivate:
		f.flags = faultPrivate
	}
	return m.s.handleFault(&f)
}

// Checker is an extra check that Check runs with every space locked and
// quiet, after its own: the pin package registers one that verifies its
// live pins.
type Checker func(a *folio.Arena) error

var (
	checkersMu sync.Mutex
	// +checklocks:checkersMu
	checkers []Checker
)

// RegisterChecker adds a check that Check runs.
func RegisterChecker(c Checker) {
	checkersMu.Lock()
	checkers = append(checkers, c)
	checkersMu.Unlock()
}

// pinnedPagesSource lists the pins held on an arena's pages, page by page:
// the pin package registers it in race and invariants builds, and Check
// then verifies how each pinned page is mapped.
var pinnedPagesSource atomic.Pointer[func(a *folio.Arena) map[folio.PFN]int]

// RegisterPinnedPages sets the source of the pins held page by page, and
// returns a function that restores the previous one.
func RegisterPinnedPages(f func(a *folio.Arena) map[folio.PFN]int) (restore func()) {
	prev := pinnedPagesSource.Swap(&f)
	return func() { pinnedPagesSource.Store(prev) }
}
