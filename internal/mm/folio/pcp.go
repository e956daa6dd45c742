package folio

import (
	"sync"
	"unsafe"
)

// Order-0 pages are freed into and allocated from small caches in front of
// the buddy allocator, as the kernel's per-CPU page lists (pcp) do: a fault
// or COW copy that frees and allocates single pages then skips the buddy's
// split and merge and its list surgery, and takes Arena.mu once per batch
// instead of once per page. Go has no per-CPU data, so the caches are
// sharded by the goroutine's stack address, like the lockless-section
// counters of cow: one goroutine keeps using one shard, and goroutines
// rarely share one.
//
// A cached page is free: it counts in FreePages, has refcount 0, no
// AnonExclusive bit, and flags that name no head, so lockless lookups fail
// on it. It is not on a buddy list, so anything that needs the buddy to see
// every free page (an allocation that would otherwise fail, Close, Check)
// drains the caches first. Lock order: a shard's mu → Arena.mu.

const (
	nPCP     = 8  // shards
	pcpHigh  = 64 // pages a shard holds at most
	pcpBatch = 16 // pages moved between a shard and the buddy at once
)

type pcpList struct {
	mu sync.Mutex
	// +checklocks:mu
	n int
	// +checklocks:mu
	pfn [pcpHigh]PFN
	_   [64]byte // keep shards off each other's cache lines
}

// pcpShard returns the caller's shard.
func (a *Arena) pcpShard() *pcpList {
	var probe byte
	return &a.pcp[uintptr(unsafe.Pointer(&probe))>>13&(nPCP-1)]
}

// allocPage takes a page from the caller's shard, refilling it from the
// buddy allocator when it is empty. ok is false when the buddy had nothing
// either.
func (a *Arena) allocPage() (pfn PFN, ok bool) {
	c := a.pcpShard()
	c.mu.Lock()
	if c.n == 0 && !a.pcpRefillLocked(c) {
		c.mu.Unlock()
		return 0, false
	}
	c.n--
	pfn = c.pfn[c.n]
	c.mu.Unlock()
	return pfn, true
}

// allocPages takes up to len(out) pages from the caller's shard, refilling
// it from the buddy allocator at most once, and returns how many it took:
// the batch form of allocPage, one lock round trip for a block's worth of
// pages.
func (a *Arena) allocPages(out []PFN) int {
	want := min(len(out), pcpHigh)
	c := a.pcpShard()
	c.mu.Lock()
	if c.n < want {
		a.pcpRefillNLocked(c, max(pcpBatch, want-c.n))
	}
	k := min(want, c.n)
	copy(out[:k], c.pfn[c.n-k:c.n])
	c.n -= k
	c.mu.Unlock()
	return k
}

// pcpRefillLocked moves a batch of order-0 pages from the buddy allocator to
// shard c.
//
// Preconditions: c.mu is held.
// +checklocks:c.mu
func (a *Arena) pcpRefillLocked(c *pcpList) bool { return a.pcpRefillNLocked(c, pcpBatch) }

// pcpRefillNLocked moves up to want order-0 pages (as many as fit) from the
// buddy allocator to shard c and reports whether it moved any.
//
// Preconditions: c.mu is held.
// +checklocks:c.mu
func (a *Arena) pcpRefillNLocked(c *pcpList, want int) bool {
	want = min(want, pcpHigh-c.n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	k := 0
	for ; k < want; k++ {
		pfn, ok := a.allocLocked(0)
		if !ok {
			break
		}
		a.nrFree--
		a.nrRetained -= 1 - a.released.count(int64(pfn), 1)
		c.pfn[c.n] = pfn
		c.n++
	}
	return k > 0
}

// freePage puts an order-0 page, whose metadata is already that of a free
// page, into the caller's shard, first returning a batch to the buddy
// allocator if the shard is full.
func (a *Arena) freePage(pfn PFN) {
	c := a.pcpShard()
	c.mu.Lock()
	if c.n == pcpHigh {
		a.pcpDrainLocked(c, pcpBatch)
	}
	c.pfn[c.n] = pfn
	c.n++
	c.mu.Unlock()
}

// pcpDrainLocked returns the k oldest pages of shard c to the buddy
// allocator, where they merge with their buddies.
//
// Preconditions: c.mu is held.
// +checklocks:c.mu
func (a *Arena) pcpDrainLocked(c *pcpList, k int) {
	k = min(k, c.n)
	if k == 0 {
		return
	}
	a.mu.Lock()
	for _, pfn := range c.pfn[:k] {
		a.nrFree++
		// A page refilled but never allocated may still be released.
		a.nrRetained += 1 - a.released.count(int64(pfn), 1)
		a.freeBlockLocked(pfn, 0)
	}
	wake := a.overRetainLocked()
	a.mu.Unlock()
	copy(c.pfn[:], c.pfn[k:c.n])
	c.n -= k
	if wake {
		a.wakeScavenger()
	}
}

// pcpPages returns how many pages the caches hold.
func (a *Arena) pcpPages() int64 {
	var n int64
	for i := range a.pcp {
		c := &a.pcp[i]
		c.mu.Lock()
		n += int64(c.n)
		c.mu.Unlock()
	}
	return n
}

// drainPCP returns every cached page to the buddy allocator, so that it sees
// all free memory: before an allocation gives up, before Close, for Check.
func (a *Arena) drainPCP() {
	for i := range a.pcp {
		c := &a.pcp[i]
		c.mu.Lock()
		a.pcpDrainLocked(c, c.n)
		c.mu.Unlock()
	}
}
