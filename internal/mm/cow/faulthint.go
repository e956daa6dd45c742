package cow

import (
	"math/bits"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// A region remembers where its last faults were, so that the fault paths
// can tell a sequential scan from sparse access and batch only the former,
// as the page cache's readahead does for files: a write fault on a none
// entry right after (or right before) the range its region's previous one
// mapped continues a scan, and maps a batch of order-0 pages at once
// (fault-around, anon.go); a COW fault right after the range the previous
// one copied copies a batch at once (copy-around, copyaround.go).
//
// The batch grows with the evidence, as the readahead window does: the
// n-th fault in a row maps (or copies) 2^n pages from the faulting one on,
// in the direction of the scan, up to the end of its aligned 64 KiB block.
// So a scan of many pages settles at one fault per block, and the pages
// mapped ahead of a scan that stops are never more than it touched: an
// 8 KiB write maps 3 pages, a 3-page write exactly its 3 (the second fault
// brings the third page in), and sparse access (one page per 64 KiB,
// random writes) never finds the page next to the previous one and faults
// one page at a time, resident memory the pages touched.
//
// The hint is lock-free: each word is read and replaced whole, and faults
// of several goroutines in one region just overwrite each other's. It is a
// hint only: a wrong guess costs a batch of pages (or copies) not needed
// yet, never correctness.
type faultHint struct {
	anon atomic.Uint64 // last write fault on none entries: the range it mapped
	cow  atomic.Uint64 // last COW fault: the range it copied
}

// faultAroundBytes is the size of the aligned block a batch stays within:
// the kernel's fault_around_bytes default, one contpte block of 4 KiB
// pages. With pages of 64 KiB or more there is no batching.
const faultAroundBytes = 64 << 10

// maxAround is the most pages a batch can have (4 KiB pages).
const maxAround = faultAroundBytes / 4096

// A hint word packs the range a fault mapped, [start, start+n pages), and
// how many faults in a row it continued (the streak, capped): start is
// page-aligned, and n and the streak fit in the bits below the smallest
// page size that it leaves clear.
const (
	hintNBits      = 5 // n <= maxAround
	hintStreakBits = 3
	maxStreak      = 1<<hintStreakBits - 1
)

func packHint(start Addr, n, streak int) uint64 {
	return uint64(start) | uint64(n) | uint64(min(streak, maxStreak))<<hintNBits
}

// continues returns the streak a fault at addr makes, given the last
// fault's word w: 0 if addr is not the page right after or right before
// the last range (or there is none), else the last streak plus one; and
// whether the scan goes up (addr after the range) or down.
func continues(w uint64, addr Addr, ps uint64) (streak int, up bool) {
	if w == 0 {
		return 0, false
	}
	start := w &^ (ps - 1)
	n := w & (1<<hintNBits - 1)
	last := int(w >> hintNBits & maxStreak)
	switch page := uint64(addr) &^ (ps - 1); {
	case page == start+n*ps:
		return last + 1, true
	case page+ps == start:
		return last + 1, false
	}
	return 0, false
}

// next returns the streak a fault at addr makes in hint word w (see
// continues); a nil hint (a region made without one) knows of no scan.
func (h *faultHint) next(w *atomic.Uint64, addr Addr, ps uint64) (streak int, up bool) {
	if h == nil {
		return 0, false
	}
	return continues(w.Load(), addr, ps)
}

// record remembers that a fault with the given streak mapped n pages from
// start in hint word w.
func (h *faultHint) record(w *atomic.Uint64, start Addr, n, streak int) {
	if h == nil {
		return
	}
	if v := packHint(start, n, streak); w.Load() != v {
		w.Store(v)
	}
}

// recordOne remembers a fault that mapped the one page at addr, with the
// streak it makes.
func (h *faultHint) recordOne(w *atomic.Uint64, addr Addr, ps uint64) {
	if h == nil {
		return
	}
	streak, _ := h.next(w, addr, ps)
	h.record(w, Addr(uint64(addr)&^(ps-1)), 1, streak)
}

// aroundWindow returns the entries [lo, hi) of l that a fault at entry i
// with the given streak batches: 2^streak entries from i on in the
// direction of the scan, cut at the end of i's aligned block, at region
// r's ends and at the leaf's.
func (s *Space) aroundWindow(l *pte.Leaf, i int, r region, streak int, up bool) (lo, hi int) {
	block := max(1, faultAroundBytes/int(s.ps))
	w := 1 << min(streak, bits.Len(uint(block))-1)
	lo, hi = i, i+1
	if up {
		hi = min(i+w, (i&^(block-1))+block)
	} else {
		lo = max(i-w+1, i&^(block-1))
	}
	if first := l.Index(uint64(max(r.start, Addr(l.Base())))); lo < first {
		lo = first
	}
	if r.end < Addr(l.Addr(hi)) {
		hi = l.Index(uint64(r.end))
	}
	return lo, hi
}
