package folio

import (
	"fmt"
	"runtime"
	"sync/atomic"
)

// PFN is the index of a base page in an arena's backing memory.
type PFN uint64

// page is the struct-page analog, one per base page; see the package doc for
// what each word means on head, tail and free pages.
//
// Access rules. flags and ref are read by lockless lookups of any page
// (through a PTE that may be stale), so they are written atomically; the one
// exception is prepTails. w2 and w3 are read only by whoever holds the page:
// atomically while it belongs to an allocated folio (its owners update them
// concurrently), and as plain free-list links, under Arena.mu, while it
// heads a free block. The refcount's atomic drop to zero and Arena.mu order
// the two uses.
type page struct {
	flags uint32       // pg* bits
	ref   atomic.Int32 // head of an allocated folio: refcount; 0 everywhere else
	w2    int32        // head: mapcount; tail 1: pincount; tail 2: entire mapcount; free head: next
	w3    uint32       // head: pincount (small) or mm ids (large); tail 1: per-mm mapcounts; free head: prev
}

// The accessors below are the atomic uses of the words; the plain ones are
// prepTails and the free-list code (see the access rules above).

// +checklocksignore
func (p *page) loadFlags() uint32 { return atomic.LoadUint32(&p.flags) }

// +checklocksignore
func (p *page) storeFlags(v uint32) { atomic.StoreUint32(&p.flags, v) }

// +checklocksignore
func (p *page) orFlags(v uint32) uint32 { return atomic.OrUint32(&p.flags, v) }

// +checklocksignore
func (p *page) andFlags(v uint32) uint32 { return atomic.AndUint32(&p.flags, v) }

// +checklocksignore
func (p *page) loadW2() int32 { return atomic.LoadInt32(&p.w2) }

// +checklocksignore
func (p *page) storeW2(v int32) { atomic.StoreInt32(&p.w2, v) }

// +checklocksignore
func (p *page) addW2(d int32) int32 { return atomic.AddInt32(&p.w2, d) }

// +checklocksignore
func (p *page) loadW3() uint32 { return atomic.LoadUint32(&p.w3) }

// +checklocksignore
func (p *page) storeW3(v uint32) { atomic.StoreUint32(&p.w3, v) }

// +checklocksignore
func (p *page) addW3(d uint32) uint32 { return atomic.AddUint32(&p.w3, d) }

// +checklocksignore
func (p *page) casW3(old, v uint32) bool { return atomic.CompareAndSwapUint32(&p.w3, old, v) }

// prepTails writes the order into the tail pages of a folio being
// allocated. It is the only plain write of flags, for speed: 511 atomic
// stores (XCHG on amd64) cost 2.6 µs per 2 MiB folio, plain ones 0.3 µs.
// The folio is ours (off the free lists, refcount 0 until prepFolio sets
// it), so the only accesses that can race are lockless lookups through stale
// PTEs; a word-sized store is not torn, and such a lookup reads either value
// and then fails on the head's flags or refcount, or is rechecked against
// its PTE. The atomic store of the head's flags that follows publishes
// these writes. Hence go:norace: the race is benign by design.
//
//go:norace
func prepTails(tails []page, order int) {
	for i := range tails {
		tails[i].flags = uint32(order)
	}
}

// page.flags bits.
const (
	pgOrderMask = 0x1f   // order of the folio this page belongs to (or of the free block it heads)
	pgHead      = 1 << 5 // first page of an allocated folio
	pgFree      = 1 << 6 // first page of a free block on a free list
	pgReleased  = 1 << 7 // free block on the released (non-resident) list
	pgDeferred  = 1 << 8 // head: queued for deferred split
)

// Head page w3 of a large folio: two 15-bit mm ids, the shared bit and the
// bit lock that serialises mapcount updates (folio_lock_large_mapcount).
const (
	mmIDBits  = 15
	mmIDMask  = 1<<mmIDBits - 1
	mmShared  = 1 << 30
	mmLockBit = 1 << 31
)

// MMID identifies an address space (a cow.Space) to the folio owner
// tracking, like the kernel's mm_id. Zero is "no space".
type MMID uint16

// MaxMMIDs is how many spaces an arena can have alive at once.
const MaxMMIDs = mmIDMask

// PageFolio returns the head and order of the folio page pfn belongs to; ok
// is false if pfn is free or its folio is being split. Lockless: the answer
// stays true only while the caller holds a mapping or a reference of the
// folio.
func (a *Arena) PageFolio(pfn PFN) (head PFN, order int, ok bool) {
	if pfn >= PFN(len(a.pages)) {
		return 0, 0, false
	}
	order = int(a.pages[pfn].loadFlags() & pgOrderMask)
	head = pfn &^ (PFN(1)<<order - 1)
	hf := a.pages[head].loadFlags()
	if hf&pgHead == 0 || int(hf&pgOrderMask) != order {
		return 0, 0, false
	}
	return head, order, true
}

// FolioOrder returns the order of the folio headed by head.
func (a *Arena) FolioOrder(head PFN) int { return int(a.pages[head].loadFlags() & pgOrderMask) }

// FolioNrPages returns the number of base pages of the folio headed by head.
func (a *Arena) FolioNrPages(head PFN) int { return 1 << a.FolioOrder(head) }

// FolioTryGet takes a reference on the folio that contains pfn unless its
// refcount is zero (folio_try_get): the lockless grab of GUP-fast and of
// lockless reads. It rechecks after the grab that pfn still belongs to the
// same folio (a split may have happened in between) and retries if not. The
// caller must still recheck whatever told it pfn (the PTE) and put the
// reference back if that changed.
func (a *Arena) FolioTryGet(pfn PFN) (head PFN, ok bool) { return a.FolioTryGetN(pfn, 1) }

// FolioTryGetN is FolioTryGet taking n references with the one atomic
// operation (try_grab_folio's refs): what a GUP-fast grab of a run of n
// pages of one folio, holding a reference per page, needs.
func (a *Arena) FolioTryGetN(pfn PFN, n int) (head PFN, ok bool) {
	for {
		head, order, ok := a.PageFolio(pfn)
		if !ok {
			return 0, false
		}
		ref := &a.pages[head].ref
		r := ref.Load()
		if r <= 0 {
			return 0, false
		}
		if !ref.CompareAndSwap(r, r+int32(n)) {
			continue
		}
		if h, o, ok := a.PageFolio(pfn); ok && h == head && o == order {
			return head, true
		}
		a.FolioPut(head, n)
	}
}

// FolioGet adds n references to a folio the caller already holds a
// reference or a mapping of (folio_ref_add).
func (a *Arena) FolioGet(head PFN, n int) {
	if r := a.pages[head].ref.Add(int32(n)); r <= int32(n) {
		panic(fmt.Sprintf("folio: FolioGet(%d, %d) on a folio with refcount %d", head, n, r-int32(n)))
	}
}

// FolioPut drops n references (folio_put_refs) and frees the folio when they
// were the last.
func (a *Arena) FolioPut(head PFN, n int) {
	r := a.pages[head].ref.Add(-int32(n))
	if r > 0 {
		return
	}
	if r < 0 {
		panic(fmt.Sprintf("folio: refcount of folio %d went negative (%d)", head, r))
	}
	a.freeFolio(head)
}

// FolioRef returns the folio's refcount.
func (a *Arena) FolioRef(head PFN) int { return int(a.pages[head].ref.Load()) }

// FolioRefFreeze sets the refcount to zero if it is exactly expected
// (folio_ref_freeze), so that no lockless grab can succeed while the caller
// rewrites the folio's metadata.
func (a *Arena) FolioRefFreeze(head PFN, expected int) bool {
	return a.pages[head].ref.CompareAndSwap(int32(expected), 0)
}

// FolioRefUnfreeze restores a frozen refcount.
func (a *Arena) FolioRefUnfreeze(head PFN, count int) {
	if !a.pages[head].ref.CompareAndSwap(0, int32(count)) {
		panic(fmt.Sprintf("folio: unfreeze of folio %d that was not frozen", head))
	}
}

// pincountWord returns the word that holds the folio's pincount: the head's
// w3 for a small folio, tail 1's w2 for a large one.
func (a *Arena) pincount(head PFN, order int) int32 {
	if order == 0 {
		return int32(a.pages[head].loadW3())
	}
	return a.pages[head+1].loadW2()
}

func (a *Arena) pincountAdd(head PFN, order int, n int32) int32 {
	if order == 0 {
		return int32(a.pages[head].addW3(uint32(n)))
	}
	return a.pages[head+1].addW2(n)
}

// FolioPin adds n pins (FOLL_PIN) to a folio the caller holds a reference or
// a mapping of: a reference each, and the pincount. The reference comes
// first, so whoever sees the pincount also sees the reference.
func (a *Arena) FolioPin(head PFN, n int) {
	a.FolioGet(head, n)
	a.pincountAdd(head, a.FolioOrder(head), int32(n))
}

// FolioTryPin is FolioTryGet followed by a pin: the lockless grab of
// GUP-fast. The caller must recheck the PTE afterwards and FolioUnpin if it
// changed.
func (a *Arena) FolioTryPin(pfn PFN) (head PFN, ok bool) { return a.FolioTryPinN(pfn, 1) }

// FolioTryPinN is FolioTryGetN followed by n pins: one atomic operation for
// the references, one for the pincount.
func (a *Arena) FolioTryPinN(pfn PFN, n int) (head PFN, ok bool) {
	head, ok = a.FolioTryGetN(pfn, n)
	if ok {
		a.pincountAdd(head, a.FolioOrder(head), int32(n))
	}
	return head, ok
}

// FolioUnpin drops n pins and their references (gup_put_folio): the pincount
// first, then the references, which may free the folio.
func (a *Arena) FolioUnpin(head PFN, n int) {
	if c := a.pincountAdd(head, a.FolioOrder(head), -int32(n)); c < 0 {
		panic(fmt.Sprintf("folio: pincount of folio %d went negative (%d)", head, c))
	}
	a.FolioPut(head, n)
}

// FolioPincount returns the number of pins on the folio.
func (a *Arena) FolioPincount(head PFN) int { return int(a.pincount(head, a.FolioOrder(head))) }

// FolioMaybeDMAPinned reports whether the folio is pinned
// (folio_maybe_dma_pinned). Our pincount is exact for every order, so
// unlike the kernel's small-folio estimate this has no false positives.
func (a *Arena) FolioMaybeDMAPinned(head PFN) bool { return a.FolioPincount(head) > 0 }

// PageAnonExclusive reports whether page pfn is AnonExclusive: mapped by one
// space only, and safe to write (or pin) without copying.
func (a *Arena) PageAnonExclusive(pfn PFN) bool { return a.pae.test(int64(pfn)) }

// SetPageAnonExclusive marks pages [pfn, pfn+nr) AnonExclusive. Called with
// the PTL of their mappings held.
func (a *Arena) SetPageAnonExclusive(pfn PFN, nr int) { a.pae.set(int64(pfn), int64(nr)) }

// ClearPageAnonExclusive clears AnonExclusive on pages [pfn, pfn+nr). Called
// with the PTL of their mappings held, after checking the folio for pins
// (a pinned page stays exclusive).
func (a *Arena) ClearPageAnonExclusive(pfn PFN, nr int) { a.pae.clear(int64(pfn), int64(nr)) }

// AnyPageAnonExclusive reports whether any page of [pfn, pfn+nr) is
// AnonExclusive.
func (a *Arena) AnyPageAnonExclusive(pfn PFN, nr int) bool { return a.pae.any(int64(pfn), int64(nr)) }

// PagesAnonExclusive reports whether every page of [pfn, pfn+nr) is
// AnonExclusive.
func (a *Arena) PagesAnonExclusive(pfn PFN, nr int) bool { return a.pae.all(int64(pfn), int64(nr)) }

// PageBytes returns the memory of pages [pfn, pfn+nr). It is valid while the
// caller holds a reference or a mapping of the folio(s) it covers.
func (a *Arena) PageBytes(pfn PFN, nr int) []byte {
	lo := int(pfn) << a.geo.PageShift
	hi := lo + nr<<a.geo.PageShift
	return a.mem[lo:hi:hi]
}

// ZeroPage returns the shared zero page: PageSize bytes of zeros that are
// never allocated to anyone. On Linux it is mapped read-only, as the
// kernel's is: writing to it faults.
func (a *Arena) ZeroPage() []byte { return a.zeroPage }

// lockMapcount takes the large folio's mapcount lock (a bit in the head's
// w3) and returns w3 as it was, without the lock bit. Critical sections are
// a few loads and stores, so it spins, yielding now and then.
func (a *Arena) lockMapcount(head PFN) uint32 {
	p := &a.pages[head]
	for spin := 0; ; spin++ {
		v := p.loadW3()
		if v&mmLockBit == 0 && p.casW3(v, v|mmLockBit) {
			return v
		}
		if spin&15 == 15 {
			runtime.Gosched()
		}
	}
}

// unlockMapcount stores the new ids and shared bit and drops the lock.
func (a *Arena) unlockMapcount(head PFN, ids uint32) {
	a.pages[head].storeW3(ids &^ mmLockBit)
}

func mmIDAt(ids uint32, slot int) MMID { return MMID(ids >> (slot * mmIDBits) & mmIDMask) }

func setMMIDAt(ids uint32, slot int, mm MMID) uint32 {
	shift := slot * mmIDBits
	return ids&^(mmIDMask<<shift) | uint32(mm)<<shift
}

// per-mm mapcounts of a large folio: two 16-bit counts in tail 1's w3.
func mmCount(c uint32, slot int) int32 { return int32(c >> (slot * 16) & 0xffff) }

func setMMCount(c uint32, slot int, n int32) uint32 {
	shift := slot * 16
	return c&^(0xffff<<shift) | uint32(n)&0xffff<<shift
}

// FolioAddMapcount records that space mm mapped nr more pages of the folio
// with PTEs, and returns the folio's new mapcount
// (folio_add_return_large_mapcount). The caller took the references first:
// refcount before mapcount when mapping.
func (a *Arena) FolioAddMapcount(head PFN, nr int, mm MMID) int {
	if a.FolioOrder(head) == 0 {
		return int(a.pages[head].addW2(int32(nr)))
	}
	return a.largeMapcountAdd(head, int32(nr), mm)
}

// FolioSubMapcount records that mm unmapped nr PTE-mapped pages of the folio
// and returns the new mapcount (folio_sub_return_large_mapcount). The caller
// drops the references afterwards: mapcount before refcount when unmapping.
func (a *Arena) FolioSubMapcount(head PFN, nr int, mm MMID) int {
	if a.FolioOrder(head) == 0 {
		n := a.pages[head].addW2(-int32(nr))
		if n < 0 {
			panic(fmt.Sprintf("folio: mapcount of folio %d went negative", head))
		}
		return int(n)
	}
	return a.largeMapcountAdd(head, -int32(nr), mm)
}

// FolioAddEntireMapcount records that mm mapped the whole folio with one
// huge (PMD-level) entry: the entire mapcount and the mapcount each go up
// by one.
func (a *Arena) FolioAddEntireMapcount(head PFN, mm MMID) int {
	a.pages[head+2].addW2(1)
	return a.largeMapcountAdd(head, 1, mm)
}

// FolioSubEntireMapcount undoes FolioAddEntireMapcount.
func (a *Arena) FolioSubEntireMapcount(head PFN, mm MMID) int {
	if a.pages[head+2].addW2(-1) < 0 {
		panic(fmt.Sprintf("folio: entire mapcount of folio %d went negative", head))
	}
	return a.largeMapcountAdd(head, -1, mm)
}

// FolioEntireMapcount returns how many huge entries map the whole folio.
func (a *Arena) FolioEntireMapcount(head PFN) int {
	if a.FolioOrder(head) < 2 {
		return 0
	}
	return int(a.pages[head+2].loadW2())
}

// largeMapcountAdd is the kernel's CONFIG_MM_ID bookkeeping: the total
// mapcount plus, for up to two spaces, their own mapcounts; a third space
// (or one that arrives while the slots are taken) makes the folio "maybe
// mapped shared" until one tracked space owns every mapping again.
func (a *Arena) largeMapcountAdd(head PFN, diff int32, mm MMID) int {
	ids := a.lockMapcount(head)
	total := a.pages[head].loadW2() + diff
	if total < 0 {
		a.unlockMapcount(head, ids)
		panic(fmt.Sprintf("folio: mapcount of folio %d went negative", head))
	}
	a.pages[head].storeW2(total)
	tail := &a.pages[head+1]
	c := tail.loadW3()
	slot := -1
	switch {
	case mmIDAt(ids, 0) == mm:
		slot = 0
	case mmIDAt(ids, 1) == mm:
		slot = 1
	}
	if diff > 0 {
		switch {
		case slot >= 0:
			c = setMMCount(c, slot, mmCount(c, slot)+diff)
		case mmIDAt(ids, 0) == 0:
			ids = setMMIDAt(ids, 0, mm)
			c = setMMCount(c, 0, diff)
			if total != diff { // mappings of spaces we do not track
				ids |= mmShared
			}
		case mmIDAt(ids, 1) == 0:
			ids = setMMIDAt(ids, 1, mm)
			c = setMMCount(c, 1, diff)
			ids |= mmShared // slot 0 has mappings too
		default:
			ids |= mmShared
		}
	} else if slot >= 0 {
		// A space that mapped pages while the slots were taken may unmap
		// more than its slot counted: clamp and free the slot.
		n := mmCount(c, slot) + diff
		if n <= 0 {
			n = 0
			ids = setMMIDAt(ids, slot, 0)
		}
		c = setMMCount(c, slot, n)
	}
	// One tracked space owns every mapping (or none is left): exclusive.
	// Checked on every removal, including an untracked space's, which the
	// kernel skips; that keeps "maybe shared" from outliving the third space.
	if diff < 0 && (mmCount(c, 0) == total || mmCount(c, 1) == total) {
		ids &^= mmShared
	}
	tail.storeW3(c)
	a.unlockMapcount(head, ids)
	return int(total)
}

// FolioMapcountOf returns how many mappings of a large folio space mm has,
// as the owner tracking counts them, and whether mm is tracked at all.
func (a *Arena) FolioMapcountOf(head PFN, mm MMID) (int, bool) {
	ids, counts, _ := a.FolioOwners(head)
	for k := range 2 {
		if ids[k] == mm {
			return counts[k], true
		}
	}
	return 0, false
}

// FolioMapcount returns the number of mappings of the folio: PTEs plus
// huge entries, over all spaces.
func (a *Arena) FolioMapcount(head PFN) int { return int(a.pages[head].loadW2()) }

// FolioMaybeMappedShared reports whether more than one space may map the
// folio (folio_maybe_mapped_shared): for a small folio a mapcount above one,
// for a large one the shared bit.
func (a *Arena) FolioMaybeMappedShared(head PFN) bool {
	if a.FolioOrder(head) == 0 {
		return a.pages[head].loadW2() > 1
	}
	return a.pages[head].loadW3()&mmShared != 0
}

// FolioExclusiveTo reports whether every reference to the folio is a
// mapping by space mm, apart from extra references the caller accounts for
// itself (its own copies in flight): nobody else maps it and there is no
// pin, no plain reference and nothing else in flight. It is the test of
// wp_can_reuse_anon_folio (small: refcount 1) and of
// __wp_can_reuse_large_anon_folio (large: not shared, mapcount equal to the
// refcount, rechecked under the mapcount lock, and mm one of the tracked
// spaces). Called with the PTL of a mapping of the folio in mm held.
func (a *Arena) FolioExclusiveTo(head PFN, mm MMID, extra int) bool {
	p := &a.pages[head]
	refs := p.ref.Load() - int32(extra)
	if a.FolioOrder(head) == 0 {
		return refs == 1
	}
	if p.loadW3()&mmShared != 0 || p.loadW2() != refs {
		return false
	}
	ids := a.lockMapcount(head)
	ok := ids&mmShared == 0 && p.loadW2() == p.ref.Load()-int32(extra) &&
		(mmIDAt(ids, 0) == mm || mmIDAt(ids, 1) == mm)
	a.unlockMapcount(head, ids)
	return ok
}

// FolioOwners returns the owner tracking of a large folio: the two tracked
// spaces with their mapcounts, and the shared bit. A small folio has none.
func (a *Arena) FolioOwners(head PFN) (ids [2]MMID, counts [2]int, shared bool) {
	if a.FolioOrder(head) == 0 {
		return ids, counts, a.FolioMaybeMappedShared(head)
	}
	w := a.lockMapcount(head)
	c := a.pages[head+1].loadW3()
	a.unlockMapcount(head, w)
	for s := range 2 {
		ids[s], counts[s] = mmIDAt(w, s), int(mmCount(c, s))
	}
	return ids, counts, w&mmShared != 0
}

// FolioTestSetDeferred marks the folio as queued for deferred split and
// reports whether it already was.
func (a *Arena) FolioTestSetDeferred(head PFN) bool {
	return a.pages[head].orFlags(pgDeferred)&pgDeferred != 0
}

// FolioClearDeferred clears the deferred-split mark.
func (a *Arena) FolioClearDeferred(head PFN) { a.pages[head].andFlags(^uint32(pgDeferred)) }

// FolioDeferred reports whether the folio is queued for deferred split.
func (a *Arena) FolioDeferred(head PFN) bool { return a.pages[head].loadFlags()&pgDeferred != 0 }

// prepFolio initialises the metadata of a freshly allocated folio: every page
// records the order, the head gets refcount 1 and zero counts.
func (a *Arena) prepFolio(head PFN, order int) {
	n := PFN(1) << order
	prepTails(a.pages[head+1:head+n], order)
	for i := PFN(0); i < min(n, 3); i++ {
		// Plain: only the folio's holders read these words, and it has
		// none yet (see the access rules on page).
		a.pages[head+i].w2, a.pages[head+i].w3 = 0, 0
	}
	a.pages[head].ref.Store(1)
	a.pages[head].storeFlags(uint32(order) | pgHead)
}

// FolioSplit splits a large folio whose refcount the caller froze into
// order-0 folios (split_folio to order 0). mapcount(i) says how many
// mappings page head+i has; each page becomes a folio with that many
// mappings and references, and pages nobody maps are freed. Preconditions:
// the refcount was frozen at exactly the mapcount (no pin, no plain
// reference, nothing in flight) and the folio is not mapped by a huge entry.
// It returns how many pages were freed.
func (a *Arena) FolioSplit(head PFN, mapcount func(i int) int) (freed int) {
	order := a.FolioOrder(head)
	if order == 0 || a.pages[head].ref.Load() != 0 || a.FolioEntireMapcount(head) != 0 {
		panic(fmt.Sprintf("folio: FolioSplit of folio %d (order %d) that is not frozen or is PMD-mapped", head, order))
	}
	n := 1 << order
	held := a.pages[head].loadFlags() & pgHeld // the debug build's mark, for every page
	var unmapped, quarantine []PFN
	// Tails first, the head last: a lockless grab through a page that still
	// names the old head finds its refcount frozen at zero; one that sees a
	// page's new head flags finds its refcount already set.
	for i := n - 1; i >= 0; i-- {
		pfn := head + PFN(i)
		p := &a.pages[pfn]
		m := mapcount(i)
		p.storeW2(int32(m))
		p.storeW3(0)
		if m == 0 {
			if held != 0 {
				// A folio of its own, freed through the quarantine.
				p.storeFlags(pgHead | pgHeld)
				quarantine = append(quarantine, pfn)
				continue
			}
			unmapped = append(unmapped, pfn)
			continue
		}
		p.ref.Store(int32(m))
		p.storeFlags(pgHead | held)
	}
	a.freePages(unmapped, order)
	for _, pfn := range quarantine {
		a.ostat.free[0].Add(1)
		a.quarantineFolio(pfn, 0)
	}
	return len(unmapped) + len(quarantine)
}
