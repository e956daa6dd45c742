package folio

import (
	"fmt"

	"github.com/anonfolio/anonfolio/internal/testhook"
)

// freeArea is the free list of one order and one residency: a doubly linked
// list threaded through the head pages of its blocks (w2 = next+1,
// w3 = prev+1; 0 ends the list).
type freeArea struct {
	first uint32 // pfn+1 of the first block, 0 when empty
	nr    int64  // blocks on the list
}

// Each order has two lists: blocks with at least one resident page, and
// blocks that are wholly released (not backed by host memory). Allocation
// prefers resident blocks (no kernel fault on first touch); the scavenger
// takes from the resident ones.
const (
	listResident = iota
	listReleased
	nrLists
)

// AllocFlags modify AllocFolio.
type AllocFlags uint

// AllocZero asks for a folio whose bytes are zero. Only the pages not known
// to be zero are cleared.
const AllocZero AllocFlags = 1 << iota

// AllocFolio allocates a naturally aligned folio of 2^order pages with
// refcount 1, mapcount 0 and no AnonExclusive page. It fails with ErrNoMemory
// (unwrapped, so that the fault path's order-by-order fallback does not
// allocate) when no free block of that order or larger is left.
func (a *Arena) AllocFolio(order int, flags AllocFlags) (PFN, error) {
	if order < 0 || order > a.geo.MaxOrder {
		return 0, fmt.Errorf("%w: folio order %d outside [0, %d]", ErrInvalid, order, a.geo.MaxOrder)
	}
	pfn, ok := PFN(0), false
	if order == 0 {
		pfn, ok = a.allocPage()
	}
	if !ok {
		var err error
		if pfn, err = a.allocBuddy(order); err != nil {
			return 0, err
		}
	}
	a.ostat.alloc[order].Add(1)
	// The block is ours: nobody else touches its bits or bytes. Its
	// metadata is written first, so that the cache miss on it overlaps the
	// clearing of its memory (and the caller's copy) instead of following
	// it; nobody can reach the folio before the caller maps it.
	n := int64(1) << order
	zeroed := a.zeroed.any(int64(pfn), n)
	a.prepFolio(pfn, order)
	if flags&AllocZero != 0 {
		a.zeroPages(pfn, n)
	}
	if zeroed {
		a.zeroed.clear(int64(pfn), n)
	}
	if a.released.any(int64(pfn), n) {
		a.released.clear(int64(pfn), n)
	}
	return pfn, nil
}

// AllocPages allocates up to len(out) order-0 folios into out, each as
// AllocFolio(0, flags) would return it, and returns how many it allocated:
// the batch allocator of a fault-around or a COW copy-around, which takes
// the caller's page cache once and refills it from the buddy allocator at
// most once for the whole batch (alloc_pages_bulk). It never drains the
// caches nor waits for the scavenger: fewer than asked (even none) means
// memory is short, and the caller falls back to AllocFolio one page at a
// time, which does.
func (a *Arena) AllocPages(out []PFN, flags AllocFlags) int {
	k := a.allocPages(out)
	if k == 0 {
		return 0
	}
	a.ostat.alloc[0].Add(uint64(k))
	cleared := 0
	for _, pfn := range out[:k] {
		// As in AllocFolio: metadata first, then the bytes.
		zeroed := a.zeroed.test(int64(pfn))
		a.prepFolio(pfn, 0)
		if flags&AllocZero != 0 && !zeroed {
			clear(a.PageBytes(pfn, 1))
			cleared++
		}
		if zeroed {
			a.zeroed.clear(int64(pfn), 1)
		}
		if a.released.test(int64(pfn)) {
			a.released.clear(int64(pfn), 1)
		}
	}
	if cleared > 0 {
		a.bytesZeroed.Add(uint64(cleared) << a.geo.PageShift)
	}
	return k
}

// allocBuddy takes a block of the order from the buddy allocator. Before it
// reports ErrNoMemory it waits for blocks the scavenger has out and drains
// the order-0 caches: free memory is never reported missing because it sat
// in a cache or in a madvise.
func (a *Arena) allocBuddy(order int) (PFN, error) {
	n := int64(1) << order
	for drained := false; ; drained = true {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return 0, ErrClosed
		}
		pfn, ok := a.allocLocked(order)
		for !ok && a.scavenging > 0 {
			a.scavReturned.Wait()
			pfn, ok = a.allocLocked(order)
		}
		if ok {
			a.nrFree -= n
			a.nrRetained -= n - a.released.count(int64(pfn), n)
			a.mu.Unlock()
			return pfn, nil
		}
		a.mu.Unlock()
		if drained {
			if a.drainQuarantine() {
				continue // drained stays true: one more try with what it freed
			}
			a.ostat.allocFail[order].Add(1)
			return 0, ErrNoMemory
		}
		a.drainPCP()
	}
}

// zeroPages clears the pages of [pfn, pfn+n) that are not known to be zero.
func (a *Arena) zeroPages(pfn PFN, n int64) {
	end := int64(pfn) + n
	for i := a.zeroed.nextClear(int64(pfn), end); i < end; {
		j := a.zeroed.nextSet(i, end)
		clear(a.PageBytes(PFN(i), int(j-i)))
		a.bytesZeroed.Add(uint64(j-i) << a.geo.PageShift)
		i = a.zeroed.nextClear(j, end)
	}
}

// allocLocked takes the smallest free block of at least order and splits it
// down, returning the remainders to the free lists.
//
// Preconditions: a.mu is held.
// +checklocks:a.mu
func (a *Arena) allocLocked(order int) (PFN, bool) {
	for k := order; k <= a.geo.MaxOrder; k++ {
		for l := range nrLists {
			fa := &a.free[k][l]
			if fa.nr == 0 {
				continue
			}
			pfn := PFN(fa.first - 1)
			a.unlinkLocked(pfn, k, l)
			for k > order {
				k--
				a.pushLocked(pfn+PFN(1)<<k, k)
				a.stat.buddySplits++
			}
			return pfn, true
		}
	}
	return 0, false
}

// freeFolio returns a folio whose last reference is gone to the buddy
// allocator.
func (a *Arena) freeFolio(head PFN) {
	order := a.FolioOrder(head)
	if m, p := a.FolioMapcount(head), a.pincount(head, order); m != 0 || p != 0 {
		panic(fmt.Sprintf("folio: folio %d freed with mapcount %d, pincount %d", head, m, p))
	}
	a.ostat.free[order].Add(1)
	if a.quarantineFolio(head, order) {
		return // the debug build's quarantine frees it later
	}
	n := int64(1) << order
	a.pae.clear(int64(head), n)
	a.pages[head].storeFlags(uint32(order)) // not a head any more: lockless lookups fail
	a.freeBlock(head, order)
}

// freeBlock puts a block that is no longer a folio back: a page into the
// order-0 caches, larger blocks into the buddy allocator.
func (a *Arena) freeBlock(head PFN, order int) {
	n := int64(1) << order
	if order == 0 {
		a.freePage(head)
		return
	}
	a.mu.Lock()
	a.nrFree += n
	a.nrRetained += n
	a.freeBlockLocked(head, order)
	wake := a.overRetainLocked()
	a.mu.Unlock()
	if wake {
		a.wakeScavenger()
	}
}

// freePages frees single pages left over by a folio split (of a folio of
// splitOrder), under one acquisition of the lock.
func (a *Arena) freePages(pfns []PFN, splitOrder int) {
	for _, pfn := range pfns {
		a.pae.clear(int64(pfn), 1)
		a.pages[pfn].storeFlags(0)
	}
	a.mu.Lock()
	a.stat.folioSplits[splitOrder]++
	for _, pfn := range pfns {
		a.ostat.free[0].Add(1)
		a.nrFree++
		a.nrRetained++
		a.freeBlockLocked(pfn, 0)
	}
	wake := a.overRetainLocked()
	a.mu.Unlock()
	if wake {
		a.wakeScavenger()
	}
}

// freeBlockLocked puts a free block back, merging it with its buddy for as
// long as the buddy is a free block of the same order.
//
// Preconditions: a.mu is held; the block's pages are counted in nrFree.
// +checklocks:a.mu
func (a *Arena) freeBlockLocked(pfn PFN, order int) {
	for order < a.geo.MaxOrder {
		buddy := pfn ^ PFN(1)<<order
		bf := a.pages[buddy].loadFlags()
		if bf&pgFree == 0 || int(bf&pgOrderMask) != order {
			break
		}
		l := listResident
		if bf&pgReleased != 0 {
			l = listReleased
		}
		a.unlinkLocked(buddy, order, l)
		a.stat.buddyMerges++
		pfn &^= PFN(1) << order
		order++
	}
	a.pushLocked(pfn, order)
}

// pushLocked puts a free block at the front of the list that matches its
// residency.
//
// Preconditions: a.mu is held.
// +checklocks:a.mu
func (a *Arena) pushLocked(pfn PFN, order int) {
	l, flags := listResident, uint32(order)|pgFree
	if a.released.all(int64(pfn), int64(1)<<order) {
		l, flags = listReleased, flags|pgReleased
	}
	fa := &a.free[order][l]
	p := &a.pages[pfn]
	p.w2, p.w3 = int32(fa.first), 0 // plain: free-list links, under a.mu
	if fa.first != 0 {
		a.pages[fa.first-1].w3 = uint32(pfn + 1)
	}
	fa.first = uint32(pfn + 1)
	fa.nr++
	p.storeFlags(flags)
}

// unlinkLocked takes a block off free list l of its order.
//
// Preconditions: a.mu is held; the block is on that list.
// +checklocks:a.mu
func (a *Arena) unlinkLocked(pfn PFN, order, l int) {
	fa := &a.free[order][l]
	p := &a.pages[pfn]
	next, prev := uint32(p.w2), p.w3 // plain: free-list links, under a.mu
	if prev != 0 {
		a.pages[prev-1].w2 = int32(next)
	} else {
		fa.first = next
	}
	if next != 0 {
		a.pages[next-1].w3 = prev
	}
	fa.nr--
	p.storeFlags(uint32(order))
	p.w2, p.w3 = 0, 0
}

// overRetainLocked reports whether more free memory is resident than the
// arena keeps, so that the scavenger should run.
//
// Preconditions: a.mu is held.
// +checklocks:a.mu
func (a *Arena) overRetainLocked() bool {
	return a.retainPages >= 0 && a.releaseOrder >= 0 && a.nrRetained > a.retainPages && !a.closed
}

// wakeScavenger starts the background scavenger on first use and pokes it.
func (a *Arena) wakeScavenger() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	if !a.scavStarted {
		a.scavStarted = true
		go a.scavengeLoop()
	}
	a.mu.Unlock()
	select {
	case a.scavWake <- struct{}{}:
	default: // already poked
	}
}

// scavengeLoop is the background scavenger: each poke releases large free
// blocks until no more than RetainFree bytes of free memory stay resident.
func (a *Arena) scavengeLoop() {
	defer close(a.scavDone)
	for {
		select {
		case <-a.scavStop:
			return
		case <-a.scavWake:
			a.scavenge(a.retainPages, a.releaseOrder)
		}
	}
}

// Scavenge returns free memory to the kernel until at most keep bytes of
// free memory remain resident, releasing the largest blocks first, and
// returns how many bytes it released. The background scavenger does the
// same on its own once RetainFree is exceeded; Scavenge is for callers that
// know they are done (after closing a large snapshot, say).
func (a *Arena) Scavenge(keep int64) int64 {
	if a.hostOrder < 0 {
		return 0
	}
	a.drainPCP() // the cached pages are free memory too
	return a.scavenge(max(keep, 0)>>a.geo.PageShift, a.hostOrder) << a.geo.PageShift
}

// scavenge releases resident free blocks of at least minOrder, largest
// first, until at most keep free pages are resident. Each block is taken off
// its list for the duration of the madvise, so the lock is not held across
// the system call; it stays counted as free.
func (a *Arena) scavenge(keep int64, minOrder int) (released int64) {
	for {
		a.mu.Lock()
		if a.closed || a.nrRetained <= keep {
			a.mu.Unlock()
			return released
		}
		pfn, order, ok := a.takeResidentLocked(minOrder)
		if !ok {
			a.mu.Unlock()
			return released
		}
		n := int64(1) << order
		resident := n - a.released.count(int64(pfn), n)
		a.nrRetained -= resident
		a.scavenging += n
		a.mu.Unlock()

		testhook.Run(testhook.ScavengeMadvise)
		rel, zero := sysUnused(a.PageBytes(pfn, int(n)), a.lazyFree)
		if rel {
			if zero {
				a.zeroed.set(int64(pfn), n)
			}
			a.released.set(int64(pfn), n)
		}

		a.mu.Lock()
		a.scavenging -= n
		a.scavReturned.Broadcast()
		if rel {
			a.stat.releases++
			a.stat.bytesReleased += uint64(resident) << a.geo.PageShift
			released += resident
		} else {
			a.nrRetained += resident
		}
		a.freeBlockLocked(pfn, order)
		a.mu.Unlock()
		if !rel {
			return released
		}
	}
}

// takeResidentLocked takes the largest resident free block of at least
// minOrder off its list.
//
// Preconditions: a.mu is held.
// +checklocks:a.mu
func (a *Arena) takeResidentLocked(minOrder int) (PFN, int, bool) {
	for k := a.geo.MaxOrder; k >= minOrder; k-- {
		if fa := &a.free[k][listResident]; fa.nr > 0 {
			pfn := PFN(fa.first - 1)
			a.unlinkLocked(pfn, k, listResident)
			return pfn, k, true
		}
	}
	return 0, 0, false
}
