package cow

import (
	"errors"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/sections"
)

// sectionBytes bounds how much one lockless section copies before it lets a
// waiting Fork in: a large WriteAt must not hold a snapshot up for long.
const sectionBytes = 256 << 10

// ReadAt reads len(p) bytes from address off, as a CPU load would: an
// unpopulated page reads zero (the shared zero page), a page in a region
// without read permission is ErrProtection, an address outside every region
// is ErrFault. It returns how many bytes it read before an error. It
// implements io.ReaderAt over the space's addresses.
func (s *Space) ReadAt(p []byte, off int64) (int, error) { return s.access(p, off, false) }

// WriteAt writes p at address off, as CPU stores would: faulting pages in,
// copying shared ones on write. For each page the write lands wholly before
// or wholly after a concurrent Fork's snapshot. It returns how many bytes it
// wrote before an error. It implements io.WriterAt over the space's
// addresses.
func (s *Space) WriteAt(p []byte, off int64) (int, error) { return s.access(p, off, true) }

func (s *Space) access(p []byte, off int64, write bool) (n int, err error) {
	if off < 0 {
		return 0, invalid("negative address %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if uint64(off) >= uint64(vaLimit) || uint64(len(p)) > uint64(vaLimit)-uint64(off) {
		return 0, faultErr(Addr(off))
	}
	addr := Addr(off)
	for n < len(p) {
		k, stuck := s.accessFast(addr, p[n:], write)
		n += k
		addr += Addr(k)
		if !stuck {
			continue // done, or a section's worth: let a waiting Fork in
		}
		chunk := min(len(p)-n, int(s.ps-uint64(addr)%s.ps))
		if err := s.accessSlow(addr, p[n:n+chunk], write); err != nil {
			return n, err
		}
		n += chunk
		addr += Addr(chunk)
	}
	return n, nil
}

// accessFast copies as much of p as it can without a lock, one run of
// physically contiguous pages at a time, up to sectionBytes, and returns how
// many bytes it did and whether it stopped at a page that needs the slow
// path. It runs in a lockless section: Fork and Check wait for it.
func (s *Space) accessFast(addr Addr, p []byte, write bool) (done int, stuck bool) {
	sec := s.inflight.Enter()
	defer sections.Exit(sec)
	if s.wpSeq.Load()&1 != 0 || s.closed.Load() {
		return 0, true
	}
	// The section ends on a page boundary, so that each page of a write
	// lands wholly before or wholly after a Fork that waits for it.
	lim := min(len(p), sectionBytes-int(uint64(addr)%s.ps))
	for done < lim {
		n := s.runFast(addr, p[done:lim], write)
		if n == 0 {
			return done, true
		}
		done += n
		addr += Addr(n)
	}
	return done, false
}

// runFast copies to or from the pages at addr without a lock, as far as
// they are consecutive pages of one folio mapped alike (a contpte block, a
// large folio, a huge entry), and returns how many bytes it did (0: the
// first page needs the slow path).
func (s *Space) runFast(addr Addr, buf []byte, write bool) int {
	off := uint64(addr) % s.ps
	pages := int((off + uint64(len(buf)) + s.ps - 1) / s.ps) // pages the buffer touches
	var want Want
	if write {
		want = WantWrite
	}
	run, ok := s.GrabLockless(addr, pages, want)
	switch {
	case !ok:
		return 0
	case run.Zero:
		n := min(len(buf), int(s.ps-off))
		clear(buf[:n])
		return n
	}
	return s.copyRun(run.Head, run.PFN, run.N, off, buf, write)
}

// copyRun copies between buf and n pages from pfn on (from byte off of the
// first), drops the reference the caller took on head, and returns the
// bytes copied.
func (s *Space) copyRun(head, pfn folio.PFN, n int, off uint64, buf []byte, write bool) int {
	mem := s.a.PageBytes(pfn, n)[off:]
	var k int
	if write {
		k = copy(mem, buf)
	} else {
		k = copy(buf, mem)
	}
	s.a.FolioPut(head, 1)
	return k
}

// accessSlow does one page's worth of the access with mapLock held for
// reading, faulting until the entry allows it. Holding mapLock keeps Fork
// out, so a write lands wholly before or after a snapshot. Out of memory,
// it runs the deferred split (with no lock held) and tries once more.
func (s *Space) accessSlow(addr Addr, buf []byte, write bool) error {
	err := s.accessSlowOnce(addr, buf, write)
	if errors.Is(err, folio.ErrNoMemory) && s.as.splitDeferred() > 0 {
		err = s.accessSlowOnce(addr, buf, write)
	}
	return err
}

func (s *Space) accessSlowOnce(addr Addr, buf []byte, write bool) error {
	s.mapLock.RLock()
	defer s.mapLock.RUnlock()
	if s.closed.Load() {
		return closedErr()
	}
	f := fault{addr: addr}
	if write {
		f.flags, f.data = faultWrite, buf
	}
	// The lockless path just failed here: fault first (a fault on an entry
	// that already allows the access returns at once), then access, unless
	// the fault stored the bytes itself.
	for {
		if err := s.handleFault(&f); err != nil {
			return err
		}
		if f.applied || s.accessLocked(addr, buf, write) {
			return nil
		}
	}
}

// accessLocked does the access if the entry allows it and reports false if
// it does not.
//
// +checklocksread:s.mapLock
func (s *Space) accessLocked(addr Addr, buf []byte, write bool) bool {
	e, head, ok := s.followPage(addr, write)
	if !ok {
		return false
	}
	if e.Zero() {
		clear(buf)
		return true
	}
	page := s.a.PageBytes(e.PFN(), 1)[uint64(addr)%s.ps:]
	if write {
		copy(page, buf)
	} else {
		copy(buf, page)
	}
	s.a.FolioPut(head, 1)
	return true
}

// followPage returns the entry that maps the page at addr (for a huge
// entry, the page's share of it) if it allows the access, with a reference
// taken on its folio (none for the zero page), translating under the PTL or
// the directory lock (follow_page_pte). ok is false if there is no entry
// or it does not allow the access: the caller faults and tries again.
//
// +checklocksread:s.mapLock
func (s *Space) followPage(addr Addr, write bool) (e pte.PTE, head folio.PFN, ok bool) {
	d := s.table.Dir(uint64(addr))
	if d == nil {
		return 0, 0, false
	}
	di := d.Index(uint64(addr))
	if d.Huge(di).Present() {
		d.Lock()
		defer d.Unlock()
		h := d.Huge(di)
		e = h.Advance(int((uint64(addr) - d.Addr(di)) / s.ps))
		if !h.Present() || !e.Accessible() || write && !e.Write() {
			return 0, 0, false
		}
		s.a.FolioGet(h.PFN(), 1)
		return e, h.PFN(), true
	}
	l := d.Leaf(di)
	if l == nil {
		return 0, 0, false
	}
	// relock: a leaf this space no longer uses (dropped or unshared while
	// we waited) may live on for another space, whose pages it now maps.
	mine := relock(d, di, l)
	defer l.Unlock()
	e = l.Get(l.Index(uint64(addr)))
	if !mine || !e.Accessible() || write && (!e.Write() || l.Shared()) {
		return 0, 0, false
	}
	if e.Zero() {
		return e, 0, true
	}
	head, _ = s.pageFolio(e.PFN())
	s.a.FolioGet(head, 1)
	return e, head, true
}
