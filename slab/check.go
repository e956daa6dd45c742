package slab

import (
	"fmt"

	"github.com/anonfolio/anonfolio/cow"
)

// Check walks the allocator's structures and returns the first
// inconsistency it finds, wrapped in ErrCorrupt: a class word out of
// bounds, a slab whose tail bits are not reserved, a partial list with a
// cycle, a full slab or a slab out of bounds, a slab with a free block that
// is not on the list (its blocks would be lost), a free block that does
// not read zero (written after it was freed?). It takes each class's lock
// in turn; a class a Fork left in the middle of a list change is repaired
// first, as its next operation would do. It reads the resident pages of
// every free block, so its cost grows with the memory in use: it is for
// tests and debugging.
func (h *Allocator) Check() error {
	if h == nil || h.st == nil {
		return errZero
	}
	if h.st.s.Closed() {
		return fmt.Errorf("slab: Check: %w", cow.ErrClosed)
	}
	for i := range h.st.cls {
		c := &h.st.cls[i]
		c.mu.Lock()
		err := c.checkLocked()
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("slab: Check: %w", err)
		}
	}
	return nil
}

// checkLocked checks one class.
//
// +checklocks:c.mu
func (c *classState) checkLocked() error {
	if !c.usedLocked() {
		return nil
	}
	g := &c.geo
	a := c.accessorLocked()
	w, err := c.wordLocked(a)
	if err != nil {
		return err
	}
	n := wordSlabs(w)
	bms := make([]uint64, n)
	for i := range bms {
		if !g.valid(uint64(i)) {
			bms[i] = full // no slab: nothing to list, no block to check
			continue
		}
		if bms[i], err = a.LoadUint64(g.slabDesc(uint64(i))); err != nil {
			return err
		}
		if rsv := g.reserved(uint64(i)); bms[i]&rsv != rsv {
			return corrupt("%d-byte class: slab %d has bitmap %#x, its tail %#x is not reserved", g.size, i, bms[i], rsv)
		}
	}
	listed := make([]bool, n)
	for h := wordHead(w); h != 0; {
		i := h - 1
		if listed[i] {
			return corrupt("%d-byte class: the partial list comes back to slab %d", g.size, i)
		}
		listed[i] = true
		if bms[i] == full {
			return corrupt("%d-byte class: slab %d is full but on the partial list", g.size, i)
		}
		next, err := a.LoadUint64(g.slabDesc(i) + 8)
		if err != nil {
			return err
		}
		if next > n || next != 0 && !g.valid(next-1) {
			return corrupt("%d-byte class: slab %d links to slab %d (next to carve: %d)", g.size, i, next-1, n)
		}
		h = next
	}
	for i, bm := range bms {
		if bm != full && !listed[i] {
			return corrupt("%d-byte class: slab %d has free blocks but is not on the partial list", g.size, i)
		}
	}
	return c.checkZeroLocked(a, bms)
}

// checkZeroLocked checks that every free block reads zero, reading only
// the pages that map something other than the zero page.
//
// +checklocks:c.mu
func (c *classState) checkZeroLocked(a accessor, bms []uint64) error {
	g := &c.geo
	s := c.st.s
	ps := c.st.geo.ps
	page := make([]byte, ps)
	cur, mapped := ^uint64(0), false
	for i, bm := range bms {
		for bit := range uint64(slabBlocks) {
			if bm&(1<<bit) != 0 {
				continue
			}
			start := uint64(g.blockAddr(uint64(i), bit))
			for p := start &^ (ps - 1); p < start+g.size; p += ps {
				if p != cur {
					cur = p
					pm, ok := s.Pagemap(cow.Addr(p))
					mapped = ok && !pm.Zero
					if mapped {
						if _, err := a.ReadAt(page, int64(p)); err != nil {
							return err
						}
					}
				}
				if !mapped {
					continue
				}
				lo, hi := max(start, p)-p, min(start+g.size, p+ps)-p
				for j := lo; j < hi; j++ {
					if page[j] != 0 {
						return corrupt("%d-byte class: the free block at %#x reads %#02x at +%d",
							g.size, start, page[j], p+j-start)
					}
				}
			}
		}
	}
	return nil
}
