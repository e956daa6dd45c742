package cow

import (
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/pte"
)

// A region remembers where its last faults were, so that the fault paths
// can tell a sequential scan from sparse access and batch only the former
// (the anonymous-memory analog of the page cache's readahead state): a write
// fault on a none entry right after (or right before) the range the
// previous one in the region mapped is sequential, and maps a block of
// order-0 pages at once (fault-around, anon.go); a COW fault right after
// the range the previous one copied is sequential, and copies a block at
// once (copy-around, wp.go). Sparse access (one page per 64 KiB, random
// writes) never finds the adjacent page and keeps faulting one page, so it
// does not grow its resident memory.
//
// The hint is lock-free: each word is read and replaced whole, and faults
// of several goroutines in one region just overwrite each other's. It is a
// hint only: a wrong guess costs a batch of pages (or copies) that were
// not needed yet, never correctness.
type faultHint struct {
	anon atomic.Uint64 // last write fault on none entries: the range it mapped
	cow  atomic.Uint64 // last COW fault: the range it copied
}

// faultAroundBytes is the size of the aligned block fault-around and
// copy-around fill at most: the kernel's fault_around_bytes default, one
// contpte block of 4 KiB pages. With pages of 64 KiB or more there is no
// batching.
const faultAroundBytes = 64 << 10

// maxAround is the most pages a batch can have (4 KiB pages).
const maxAround = faultAroundBytes / 4096

// hintRange packs a range of n pages from page-aligned start into one
// word: n fits below the page size, in the bits start leaves clear.
func hintRange(start Addr, n int) uint64 { return uint64(start) | uint64(n) }

// adjacent reports whether the page at addr is the page right after or
// right before the range packed in w (0: no range yet).
func adjacent(w uint64, addr Addr, ps uint64) bool {
	if w == 0 {
		return false
	}
	start, n := w&^(ps-1), w&(ps-1)
	page := uint64(addr) &^ (ps - 1)
	return page == start+n*ps || page+ps == start
}

// record remembers that a fault mapped n pages from start in word w; a nil
// hint (a region made without one) remembers nothing.
func (h *faultHint) record(w *atomic.Uint64, start Addr, n int) {
	if h != nil && w.Load() != hintRange(start, n) {
		w.Store(hintRange(start, n))
	}
}

// anonSequential reports whether a write fault on a none entry at addr
// continues the region's last one.
func (h *faultHint) anonSequential(addr Addr, ps uint64) bool {
	return h != nil && adjacent(h.anon.Load(), addr, ps)
}

// cowSequential reports whether a COW fault at addr continues the region's
// last one.
func (h *faultHint) cowSequential(addr Addr, ps uint64) bool {
	return h != nil && adjacent(h.cow.Load(), addr, ps)
}

// aroundPages returns how many entries a fault-around or copy-around block
// has in this space (1: no batching).
func (s *Space) aroundPages() int { return max(1, faultAroundBytes/int(s.ps)) }

// aroundBlock returns the entries [lo, hi) of l's aligned block around
// entry i that lie in region r.
func (s *Space) aroundBlock(l *pte.Leaf, i int, r region) (lo, hi int) {
	n := s.aroundPages()
	lo = i &^ (n - 1)
	hi = lo + n
	if first := l.Index(uint64(max(r.start, Addr(l.Base())))); lo < first {
		lo = first
	}
	if r.end < Addr(l.Addr(hi)) {
		hi = l.Index(uint64(r.end))
	}
	return lo, hi
}
