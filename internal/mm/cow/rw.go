package cow

import (
	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
	"github.com/anonfolio/anonfolio/internal/seqlock"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// sectionBytes bounds how much one lockless section copies before it lets a
// waiting Fork in: a large WriteAt must not hold a snapshot up for long.
const sectionBytes = 256 << 10

// ReadAt reads len(p) bytes from address off, as a CPU load would: an
// unpopulated page reads zero (the shared zero page), a page in a region
// without read permission is ErrProtection, an address outside every region
// is ErrFault. It returns how many bytes it read before an error. It
// implements io.ReaderAt over the space's addresses.
func (s *Space) ReadAt(p []byte, off int64) (int, error) {
	return s.readAtPooled(p, off) // see accpool.go
}

// WriteAt writes p at address off, as CPU stores would: faulting pages in,
// copying shared ones on write. For each page the write lands wholly before
// or wholly after a concurrent Fork's snapshot. It returns how many bytes it
// wrote before an error. It implements io.WriterAt over the space's
// addresses.
func (s *Space) WriteAt(p []byte, off int64) (int, error) {
	return s.writeAtPooled(p, off)
}

// access is ReadAt and WriteAt through the software TLB tlb (a power of two
// of entries): lockless runs, and a page at a time under the map lock
// where they stop. The lockless runs are in sections of acc (an
// Accessor's, maybe a pooled one: see accsections.go and accpool.go).
func (s *Space) access(tlb []xlate, p []byte, off int64, write bool, acc *Accessor) (n int, err error) {
	if err := checkAccess(off, len(p)); err != nil || len(p) == 0 {
		return 0, err
	}
	addr := Addr(off)
	for n < len(p) {
		k, stuck := s.accessFast(tlb, addr, p[n:], write, acc)
		n += k
		addr += Addr(k)
		if !stuck {
			continue // done, or a section's worth: let a waiting Fork in
		}
		chunk := min(len(p)-n, int(s.ps-uint64(addr)%s.ps))
		if err := s.accessSlow(addr, p[n:n+chunk], write); err != nil {
			return n, err
		}
		s.tlbForget(tlb, addr) // the fault changed the slot: translate it again
		n += chunk
		addr += Addr(chunk)
	}
	return n, nil
}

// tlbForget drops the TLB entry of addr's slot.
func (s *Space) tlbForget(tlb []xlate, addr Addr) {
	tlb[(uint64(addr)>>s.leafShift)&uint64(len(tlb)-1)].slot = 0
}

// checkAccess checks the address and length of an access.
func checkAccess(off int64, n int) error {
	switch {
	case off < 0:
		return invalid("negative address %d", off)
	case n > 0 && (uint64(off) >= uint64(vaLimit) || uint64(n) > uint64(vaLimit)-uint64(off)):
		return faultErr(Addr(off))
	}
	return nil
}

// accessFast copies as much of p as it can through the software TLB tlb
// (a power-of-two number of entries), one run of physically contiguous
// pages at a time, up to sectionBytes, and returns how many bytes it did
// and whether it stopped at a page that needs the slow path. It runs in a
// lockless section: a reader's, which Close waits for (the memory stays
// mapped until it is done), or a writer's, which Fork, Close, Protect and
// Check wait for, and a zap too before it frees a page (see tlb.go). The section ends on a page
// boundary, so that each page of a write lands wholly before or wholly
// after a Fork that waits for it.
func (s *Space) accessFast(tlb []xlate, addr Addr, p []byte, write bool, acc *Accessor) (done int, stuck bool) {
	q := &acc.sec.rd
	if write {
		q = &acc.sec.wr
	}
	q.enter()
	if s.closed.Load() || write && s.wpSeq.Load()&1 != 0 {
		q.exit()
		return 0, true
	}
	done, stuck = s.accessRuns(tlb, addr, p, write)
	q.exit()
	return done, stuck
}

// accessRuns is accessFast's part inside the section.
func (s *Space) accessRuns(tlb []xlate, addr Addr, p []byte, write bool) (done int, stuck bool) {
	lim := min(len(p), sectionBytes-int(uint64(addr)%s.ps))
	for done < lim {
		var n int
		if write {
			n = s.writeRun(tlb, addr, p[done:lim])
		} else {
			n = s.readRun(tlb, addr, p[done:lim])
		}
		if n == 0 {
			return done, true
		}
		done += n
		addr += Addr(n)
	}
	return done, false
}

// tlbEntry returns the TLB entry for addr, translated and valid now, or nil
// if the slot maps nothing (the caller faults).
func (s *Space) tlbEntry(tlb []xlate, addr Addr) *xlate {
	t := &tlb[(uint64(addr)>>s.leafShift)&uint64(len(tlb)-1)]
	if t.slot != s.slotOf(addr) || t.genNow() != t.gen {
		if !s.fill(t, addr) {
			t.slot = 0
			return nil
		}
	}
	return t
}

// readRun copies into buf from the pages at addr, as far as they are
// consecutive pages mapped alike, by a seqlock read: no reference, no
// shared write; the copy is retried if the translation changed while it
// ran. It returns how many bytes it copied (0: the page needs the slow
// path).
func (s *Space) readRun(tlb []xlate, addr Addr, buf []byte) int {
	off := uint64(addr) % s.ps
	pages := int((off + uint64(len(buf)) + s.ps - 1) / s.ps)
	for range 4 {
		t := s.tlbEntry(tlb, addr)
		if t == nil {
			return 0
		}
		g := t.gen
		e, n := s.entry(t, addr, pages, false)
		switch {
		case !e.Present() || !e.Accessible():
			return 0 // nothing mapped, or PROT_NONE: the fault says which
		case e.Zero():
			k := min(len(buf), int(s.ps-off))
			clear(buf[:k]) // the zero page: nothing to validate
			return k
		}
		testhook.Run(testhook.LocklessAfterGrab)
		if debugRefReads {
			return s.readRunHeld(t, g, e, n, off, buf)
		}
		k := seqlock.Copy(buf, s.a.PageBytes(e.PFN(), n)[off:])
		seqlock.Fence()
		if t.genNow() == g {
			return k
		}
		// The bytes may be another space's, from a page reused meanwhile:
		// leave none of them behind, even if the read then fails.
		clear(buf[:k])
	}
	return 0 // the translation keeps changing: take the lock
}

// readRunHeld is readRun's copy in the anonfolio_debug build: with a
// reference on the folio, taken and validated before the copy, so that it
// never reads a page freed (and quarantined, inaccessible) under it.
func (s *Space) readRunHeld(t *xlate, g uint64, e pte.PTE, n int, off uint64, buf []byte) int {
	head, ok := s.a.FolioTryGet(e.PFN())
	if !ok {
		return 0
	}
	defer s.a.FolioPut(head, 1)
	if t.genNow() != g {
		return 0
	}
	n = min(n, int(head+folio.PFN(s.a.FolioNrPages(head))-e.PFN()))
	return copy(buf, s.a.PageBytes(e.PFN(), n)[off:])
}

// writeRun copies buf into the pages at addr, as far as they are writable
// consecutive pages mapped alike, and returns how many bytes it copied (0:
// the page needs the slow path). Called in a lockless section with wpSeq
// even: nothing frees or write-protects the pages until the section ends.
func (s *Space) writeRun(tlb []xlate, addr Addr, buf []byte) int {
	t := s.tlbEntry(tlb, addr)
	if t == nil {
		return 0
	}
	off := uint64(addr) % s.ps
	testhook.Run(testhook.LocklessBeforeEntry)
	e, n := s.entry(t, addr, int((off+uint64(len(buf))+s.ps-1)/s.ps), true)
	if !e.Write() || !e.Present() {
		return 0 // read-only (copy-on-write, or the region), or nothing mapped
	}
	if t.genNow() != t.gen {
		return 0 // the leaf may have left the slot since the translation: the entry may be another space's
	}
	testhook.Run(testhook.LocklessAfterGrab)
	testhook.Run(testhook.LocklessAfterRecheck)
	return copy(s.a.PageBytes(e.PFN(), n)[off:], buf)
}

// accessSlow does one page's worth of the access with mapLock held for
// reading, faulting until the entry allows it. Holding mapLock keeps Fork
// out, so a write lands wholly before or after a snapshot. Out of memory,
// it runs the deferred split (with no lock held) and tries once more.
func (s *Space) accessSlow(addr Addr, buf []byte, write bool) error {
	return s.retryAfterSplit(func() error { return s.accessSlowOnce(addr, buf, write) })
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
