package folio

import "fmt"

// Check verifies the allocator and the metadata: every page belongs to
// exactly one free block or one allocated folio; free blocks are naturally
// aligned, on the list their flags and residency say, with consistent links
// and counts; allocated folios have a head with a positive refcount that
// covers their mappings and pins, tails that name the head's order and a
// zero refcount; free pages are neither referenced nor AnonExclusive. It
// returns the first inconsistency found, naming the page and the counts.
//
// Check reads folio metadata without locks: call it when no other goroutine
// allocates, frees or changes references in this arena.
func (a *Arena) Check() error {
	// The order-0 caches and the debug build's quarantine go back to the
	// buddy first, so that every free page is on a free list.
	a.drainQuarantine()
	a.drainPCP()
	a.mu.Lock()
	for a.scavenging > 0 { // a block is off its list for a madvise: wait
		a.scavReturned.Wait()
	}
	defer a.mu.Unlock()

	inFree := newBitmap(a.nrPages)
	var freePages, resident int64
	for order := 0; order <= a.geo.MaxOrder; order++ {
		for l := range nrLists {
			fa := &a.free[order][l]
			var n int64
			prev := uint32(0)
			for link := fa.first; link != 0; link = uint32(a.pages[link-1].w2) {
				pfn := PFN(link - 1)
				size := int64(1) << order
				if n++; n > fa.nr {
					return fmt.Errorf("free list order %d/%d: more blocks than its count %d (a cycle?)", order, l, fa.nr)
				}
				if pfn&PFN(size-1) != 0 || int64(pfn)+size > a.nrPages {
					return fmt.Errorf("free block %d of order %d is misaligned or out of range", pfn, order)
				}
				f := a.pages[pfn].loadFlags()
				wantRel := uint32(0)
				if l == listReleased {
					wantRel = pgReleased
				}
				if f&(pgFree|pgHead|pgReleased|pgOrderMask) != pgFree|wantRel|uint32(order) {
					return fmt.Errorf("free block %d on list order %d/%d has flags %#x", pfn, order, l, f)
				}
				if a.pages[pfn].w3 != prev {
					return fmt.Errorf("free block %d: back link %d, want %d", pfn, a.pages[pfn].w3, prev)
				}
				if inFree.any(int64(pfn), size) {
					return fmt.Errorf("free block %d of order %d overlaps another free block", pfn, order)
				}
				inFree.set(int64(pfn), size)
				rel := a.released.count(int64(pfn), size)
				if l == listReleased && rel != size {
					return fmt.Errorf("free block %d on the released list has %d resident pages", pfn, size-rel)
				}
				if l == listResident && rel == size {
					return fmt.Errorf("free block %d on the resident list is wholly released", pfn)
				}
				freePages += size
				resident += size - rel
				prev = link
			}
			if n != fa.nr {
				return fmt.Errorf("free list order %d/%d: %d blocks, count says %d", order, l, n, fa.nr)
			}
		}
	}
	if freePages != a.nrFree {
		return fmt.Errorf("free lists hold %d pages, nrFree is %d", freePages, a.nrFree)
	}
	if resident != a.nrRetained {
		return fmt.Errorf("free lists hold %d resident pages, nrRetained is %d", resident, a.nrRetained)
	}

	for pfn := int64(0); pfn < a.nrPages; {
		if inFree.test(pfn) {
			if r := a.pages[pfn].ref.Load(); r != 0 {
				return fmt.Errorf("free page %d has refcount %d", pfn, r)
			}
			if a.pae.test(pfn) {
				return fmt.Errorf("free page %d is AnonExclusive", pfn)
			}
			pfn++
			continue
		}
		if err := a.checkFolio(PFN(pfn)); err != nil {
			return err
		}
		pfn += 1 << (a.pages[pfn].loadFlags() & pgOrderMask)
	}
	return nil
}

// checkFolio checks one allocated folio whose head is pfn.
func (a *Arena) checkFolio(head PFN) error {
	f := a.pages[head].loadFlags()
	order := int(f & pgOrderMask)
	if f&pgHead == 0 || f&pgFree != 0 || order > a.geo.MaxOrder || head&(PFN(1)<<order-1) != 0 {
		return fmt.Errorf("page %d is neither free nor the head of a folio (flags %#x)", head, f)
	}
	ref, mapc, pins := a.pages[head].ref.Load(), a.FolioMapcount(head), a.pincount(head, order)
	if ref <= 0 || mapc < 0 || pins < 0 || int(ref) < mapc+int(pins) {
		return fmt.Errorf("folio %d (order %d): refcount %d < mapcount %d + pincount %d", head, order, ref, mapc, pins)
	}
	for i := PFN(1); i < PFN(1)<<order; i++ {
		if tf := a.pages[head+i].loadFlags(); tf&(pgHead|pgFree|pgOrderMask) != uint32(order) {
			return fmt.Errorf("folio %d (order %d): tail page %d has flags %#x", head, order, head+i, tf)
		}
		if r := a.pages[head+i].ref.Load(); r != 0 {
			return fmt.Errorf("folio %d (order %d): tail page %d has refcount %d", head, order, head+i, r)
		}
	}
	if order > 0 {
		ids, counts, shared := a.FolioOwners(head)
		if counts[0]+counts[1] > mapc || (!shared && counts[0] != mapc && counts[1] != mapc) {
			return fmt.Errorf("folio %d (order %d): owners %v with mapcounts %v (shared %v) disagree with mapcount %d",
				head, order, ids, counts, shared, mapc)
		}
	}
	return nil
}

// ForEachFolio calls fn with the head and order of every allocated folio in
// address order until fn returns false. Like Check, it reads metadata
// without locks: the caller keeps the arena quiet.
func (a *Arena) ForEachFolio(fn func(head PFN, order int) bool) {
	for pfn := int64(0); pfn < a.nrPages; {
		f := a.pages[pfn].loadFlags()
		order := int(f & pgOrderMask)
		switch {
		case f&pgFree != 0:
			pfn += 1 << order
		case f&pgHead != 0:
			if !fn(PFN(pfn), order) {
				return
			}
			pfn += 1 << order
		default:
			pfn++
		}
	}
}
