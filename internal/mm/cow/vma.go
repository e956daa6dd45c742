package cow

import (
	"fmt"
	"slices"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// region is a VMA: [start, end) of anonymous memory with one protection and
// the fork advice.
type region struct {
	start, end Addr
	prot       Prot
	flags      regionFlags
	hint       *faultHint // where the last faults were: fault-around and copy-around (faulthint.go)
}

type regionFlags uint8

const (
	dontFork   regionFlags = 1 << iota // VM_DONTCOPY
	wipeOnFork                         // VM_WIPEONFORK
)

// vaLimit is the end of the address space.
const vaLimit = Addr(1) << pte.VABits

// String formats a region like a line of /proc/self/maps.
func (r region) String() string {
	f := ""
	if r.flags&dontFork != 0 {
		f += " dontfork"
	}
	if r.flags&wipeOnFork != 0 {
		f += " wipeonfork"
	}
	return fmt.Sprintf("%#x-%#x %s%s", uint64(r.start), uint64(r.end), r.prot, f)
}

// regionAt returns the region that contains addr.
//
// Preconditions: mapLock is held.
// +checklocksread:s.mapLock
func (s *Space) regionAt(addr Addr) (region, bool) {
	rs := s.regions
	i := endAfter(rs, addr)
	if i < len(rs) && rs[i].start <= addr {
		return rs[i], true
	}
	return region{}, false
}

// endAfter returns the index of the first region that ends after addr.
func endAfter(rs []region, addr Addr) int {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].end > addr {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// startFrom returns the index of the first region that starts at or after
// addr.
func startFrom(rs []region, addr Addr) int {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].start >= addr {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// coveredLocked reports whether regions cover [start, end) without a hole.
//
// +checklocksread:s.mapLock
func (s *Space) coveredLocked(start, end Addr) bool {
	for addr := start; addr < end; {
		r, ok := s.regionAt(addr)
		if !ok {
			return false
		}
		addr = r.end
	}
	return true
}

// splitAtLocked makes addr a region boundary if it falls inside a region.
// A huge entry across the new boundary is split into PTEs first
// (vma_adjust_trans_huge): a huge entry lies inside one region.
//
// +checklocks:s.mapLock
func (s *Space) splitAtLocked(addr Addr) {
	i := endAfter(s.regions, addr)
	if i == len(s.regions) || s.regions[i].start >= addr {
		return
	}
	if uint64(addr)%s.table.LeafSize() != 0 {
		if d := s.table.Dir(uint64(addr)); d != nil {
			di := d.Index(uint64(addr))
			d.Lock()
			if d.Huge(di).Present() {
				s.splitHugeLocked(d, di)
			}
			d.Unlock()
		}
	}
	r := s.regions[i]
	lo, hi := r, r
	lo.end, hi.start = addr, addr
	hi.hint = new(faultHint)
	s.regions = slices.Insert(s.regions, i+1, hi)
	s.regions[i] = lo
}

// spanLocked returns the index range [lo, hi) of the regions inside
// [start, end), after splitting at both ends.
//
// +checklocks:s.mapLock
func (s *Space) spanLocked(start, end Addr) (lo, hi int) {
	s.splitAtLocked(start)
	s.splitAtLocked(end)
	lo = startFrom(s.regions, start)
	hi = startFrom(s.regions, end)
	return lo, hi
}

// removeLocked deletes the regions inside [start, end) (after splitting).
// It does not touch page tables.
//
// +checklocks:s.mapLock
func (s *Space) removeLocked(start, end Addr) {
	lo, hi := s.spanLocked(start, end)
	s.regions = slices.Delete(s.regions, lo, hi)
}

// insertLocked adds r, which must not overlap any region, and merges it
// with equal neighbours.
//
// +checklocks:s.mapLock
func (s *Space) insertLocked(r region) {
	if r.hint == nil {
		r.hint = new(faultHint)
	}
	i := startFrom(s.regions, r.end)
	s.regions = slices.Insert(s.regions, i, r)
	s.mergeLocked()
}

// mergeLocked joins adjacent regions with the same protection and advice
// (vma_merge), so that advice undone and protections restored leave one
// region, as in the kernel.
//
// +checklocks:s.mapLock
func (s *Space) mergeLocked() {
	out := s.regions[:0]
	for _, r := range s.regions {
		if n := len(out); n > 0 && out[n-1].end == r.start && out[n-1].prot == r.prot && out[n-1].flags == r.flags {
			out[n-1].end = r.end
			continue
		}
		out = append(out, r)
	}
	s.regions = out
}

// checkRange validates a range argument: page-aligned, non-empty, not at
// address zero and inside the address space.
func (s *Space) checkRange(addr Addr, length int) error {
	switch {
	case length <= 0:
		return invalid("length %d", length)
	case uint64(addr)%s.ps != 0 || uint64(length)%s.ps != 0:
		return invalid("address %#x or length %#x not aligned to the %d-byte page", uint64(addr), length, s.ps)
	case addr == 0:
		return invalid("address zero is never mapped")
	case addr >= vaLimit || uint64(length) > uint64(vaLimit-addr):
		return invalid("range %#x+%#x beyond the %d-bit address space", uint64(addr), length, pte.VABits)
	}
	return nil
}

func checkProt(prot Prot) error {
	if prot&^protMask != 0 {
		return invalid("protection %#x", uint8(prot))
	}
	return nil
}

// lockForWrite takes mapLock for writing and fails if the space is closed.
//
// +checklocksacquire:s.mapLock
func (s *Space) lockForWrite() error {
	s.mapLock.Lock()
	if s.closed.Load() {
		return closedErr()
	}
	return nil
}

// Map maps length bytes of anonymous, zero-filled memory somewhere free and
// returns the address, aligned to the PMD size so that PMD-order folios fit.
// Nothing is allocated until the memory is touched.
func (s *Space) Map(length int, prot Prot) (Addr, error) {
	if err := checkProt(prot); err != nil {
		return 0, err
	}
	if length <= 0 || uint64(length)%s.ps != 0 {
		return 0, invalid("length %d is not a positive multiple of the %d-byte page", length, s.ps)
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return 0, err
	}
	addr, ok := s.findFreeLocked(uint64(length))
	if !ok {
		return 0, fmt.Errorf("%w: no room for %d bytes in the address space", folio.ErrNoMemory, length)
	}
	s.insertLocked(region{start: addr, end: addr + Addr(length), prot: prot})
	return addr, nil
}

// findFreeLocked finds a PMD-aligned gap of length bytes, first fit from
// the hint, then from the bottom.
//
// +checklocks:s.mapLock
func (s *Space) findFreeLocked(length uint64) (Addr, bool) {
	align := s.table.LeafSize()
	first := max(uint64(s.mapHint), mapBase)
	for _, from := range []uint64{first, align} {
		c := (from + align - 1) &^ (align - 1)
		for _, r := range s.regions {
			if uint64(r.end) <= c {
				continue
			}
			if c+length <= uint64(r.start) {
				break
			}
			c = (uint64(r.end) + align - 1) &^ (align - 1)
		}
		if c+length <= uint64(vaLimit) && c+length > c {
			s.mapHint = Addr(c + length)
			return Addr(c), true
		}
	}
	return 0, false
}

// mapBase is where Map starts placing regions.
const mapBase = 1 << 32

// MapFixed maps length bytes at addr, replacing whatever was mapped there
// (MAP_FIXED).
func (s *Space) MapFixed(addr Addr, length int, prot Prot) error {
	if err := checkProt(prot); err != nil {
		return err
	}
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	end := addr + Addr(length)
	s.zapRange(addr, end)
	s.noteReset(addr, end)
	s.removeLocked(addr, end)
	s.insertLocked(region{start: addr, end: end, prot: prot})
	return nil
}

// Unmap removes the mappings in [addr, addr+length); a part that is not
// mapped is no error (munmap).
func (s *Space) Unmap(addr Addr, length int) error { return s.unmap(addr, length, false) }

// unmap is Unmap, with the space quiesced for the zap if quiesce (see
// Discard).
func (s *Space) unmap(addr Addr, length int, quiesce bool) error {
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	end := addr + Addr(length)
	if quiesce {
		s.quiesceLocked()
		defer s.unquiesce()
	}
	s.zapRange(addr, end)
	s.noteReset(addr, end)
	s.removeLocked(addr, end)
	s.mergeLocked()
	return nil
}

// Protect changes the protection of [addr, addr+length), which must be
// mapped (ErrFault otherwise). Pages already mapped keep their data. An
// access that began before it (a WriteAt in flight) is done before it
// returns; every access after it sees the new protection.
// Upgrading to writable maps AnonExclusive pages writable at once
// (can_change_pte_writable); shared ones stay read-only and copy on their
// next write.
func (s *Space) Protect(addr Addr, length int, prot Prot) error {
	if err := checkProt(prot); err != nil {
		return err
	}
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	end := addr + Addr(length)
	if !s.coveredLocked(addr, end) {
		return unmappedErr("Protect", addr, length)
	}
	lo, hi := s.spanLocked(addr, end)
	for i := lo; i < hi; i++ {
		s.regions[i].prot = prot
	}
	s.mergeLocked()
	// A lockless access that found a page writable (or readable) must be
	// done before the protection is lower: the next access after Protect
	// returns faults.
	s.quiesceLocked()
	s.changeProtRange(addr, end, prot)
	s.unquiesce()
	return nil
}

// WriteProtect makes the pages mapped in [addr, addr+length) read-only
// while their regions stay as they are, as a soft-dirty reset does
// (writing 4 to /proc/pid/clear_refs) and as userfaultfd's write-protect
// does: the next write to each page faults. A page keeps AnonExclusive, so
// that fault reuses it in place and a pin on it stays coherent; a shared
// page is copied as before. A lockless write that began before it (a
// WriteAt in flight) is waited for, so it never lands after the return
// without a fault. The range must be mapped (ErrFault otherwise); regions
// that are not writable are left alone.
func (s *Space) WriteProtect(addr Addr, length int) error {
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	end := addr + Addr(length)
	if !s.coveredLocked(addr, end) {
		return unmappedErr("WriteProtect", addr, length)
	}
	lo, hi := s.spanLocked(addr, end)
	s.quiesceLocked() // a lockless write in flight lands before, not after
	defer s.unquiesce()
	for _, r := range s.regions[lo:hi] {
		if r.prot.writable() {
			// Read-only, whatever the region allows: a write-only
			// region's pages are readable too (readable()).
			s.changeProtRange(r.start, r.end, ProtRead)
		}
	}
	s.mergeLocked() // undo spanLocked's splits: no region changed
	return nil
}

// Remap moves the pages of [old, old+length) to [new, new+length), like
// mremap(MREMAP_MAYMOVE|MREMAP_FIXED): whatever was mapped at new is
// unmapped first, the old range must lie within one region, and the two
// ranges must not overlap. The folios move with their mappings; nothing is
// copied.
func (s *Space) Remap(old Addr, length int, new Addr) error {
	if err := s.checkRange(old, length); err != nil {
		return err
	}
	if err := s.checkRange(new, length); err != nil {
		return err
	}
	oldEnd, newEnd := old+Addr(length), new+Addr(length)
	if old < newEnd && new < oldEnd {
		return invalid("Remap of %#x+%#x onto overlapping %#x", uint64(old), length, uint64(new))
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	r, ok := s.regionAt(old)
	if !ok || r.end < oldEnd {
		return fmt.Errorf("%w: Remap source %#x+%#x is not within one region", ErrFault, uint64(old), length)
	}
	s.zapRange(new, newEnd)
	s.noteReset(new, newEnd)
	s.noteReset(old, oldEnd) // the moved pages are marked written at new
	s.removeLocked(new, newEnd)
	s.movePTEs(old, new, uint64(length))
	s.removeLocked(old, oldEnd)
	moved := r
	moved.start, moved.end = new, newEnd
	s.insertLocked(moved)
	return nil
}

// Advise applies advice to [addr, addr+length), which must be mapped
// (ErrFault otherwise).
func (s *Space) Advise(addr Addr, length int, advice Advice) error {
	if err := s.checkRange(addr, length); err != nil {
		return err
	}
	end := addr + Addr(length)
	if advice == PopulateRead || advice == PopulateWrite {
		return s.populate(addr, end, advice == PopulateWrite)
	}
	if advice == DontNeed {
		// A zap only needs the PTLs: the kernel's madvise(DONTNEED) takes
		// mmap_lock for reading too.
		s.mapLock.RLock()
		defer s.mapLock.RUnlock()
		if s.closed.Load() {
			return closedErr()
		}
		if !s.coveredLocked(addr, end) {
			return unmappedErr("Advise", addr, length)
		}
		s.zapRange(addr, end)
		s.noteReset(addr, end)
		return nil
	}
	var set, clear regionFlags
	switch advice {
	case Collapse:
	case DontFork:
		set = dontFork
	case DoFork:
		clear = dontFork
	case WipeOnFork:
		set = wipeOnFork
	case KeepOnFork:
		clear = wipeOnFork
	default:
		return invalid("advice %v", advice)
	}
	err := s.lockForWrite()
	defer s.mapLock.Unlock()
	if err != nil {
		return err
	}
	if !s.coveredLocked(addr, end) {
		return unmappedErr("Advise", addr, length)
	}
	if advice == Collapse {
		return s.collapse(addr, end)
	}
	lo, hi := s.spanLocked(addr, end)
	for i := lo; i < hi; i++ {
		s.regions[i].flags = s.regions[i].flags&^clear | set
	}
	s.mergeLocked()
	return nil
}
