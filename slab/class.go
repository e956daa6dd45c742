package slab

import (
	"fmt"
	"math/bits"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// full is the bitmap of a slab with no free block.
const full = ^uint64(0)

// allocLocked hands out the lowest free block of the slab at the head of
// the partial list, carving a new slab when the list is empty. Setting the
// block's bit is the commit: once that store is done the block is the
// caller's, whatever happens to the list.
//
// +checklocks:c.mu
func (c *classState) allocLocked() (cow.Addr, error) {
	a := c.accessorLocked()
	g := &c.geo
	w, err := c.wordLocked(a)
	if err != nil {
		return 0, err
	}
	if wordHead(w) == 0 {
		if w, err = c.carveLocked(a, w); err != nil {
			return 0, err
		}
	}
	slab := wordHead(w) - 1
	d := g.slabDesc(slab)
	bm, err := a.LoadUint64(d)
	if err != nil {
		return 0, err
	}
	if bm == full {
		return 0, corrupt("%d-byte class: slab %d is on the partial list but full", g.size, slab)
	}
	// A tail bit that reads free would hand out the metadata past the
	// chunk's blocks.
	if rsv := g.reserved(slab); bm&rsv != rsv {
		return 0, corrupt("%d-byte class: slab %d has bitmap %#x, its tail %#x is not reserved", g.size, slab, bm, rsv)
	}
	bit := uint64(bits.TrailingZeros64(^bm))
	if bm|1<<bit == full {
		// The slab fills: it leaves the list. Mark the class busy first,
		// so that a Fork in between leaves a child that repairs the list.
		if err := a.StoreUint64(g.word, w|busyBit); err != nil {
			return 0, err
		}
	}
	if err := a.StoreUint64(d, bm|1<<bit); err != nil {
		return 0, err
	}
	if bm|1<<bit == full {
		c.popLocked(a, w, slab)
	}
	return g.blockAddr(slab, bit), nil
}

// popLocked takes the full slab at the head off the partial list and
// clears the busy bit. If it fails the busy bit stays, and the next
// operation that reads the class word repairs the list: the allocation it
// follows is already committed.
//
// +checklocks:c.mu
func (c *classState) popLocked(a accessor, w, slab uint64) {
	next, err := a.LoadUint64(c.geo.slabDesc(slab) + 8)
	if err != nil || next > wordSlabs(w) || next == slab+1 || next != 0 && !c.geo.valid(next-1) {
		return // a damaged link: leave the class busy, to be rebuilt
	}
	if a.StoreUint64(c.geo.word, classWord(next, wordSlabs(w))) == nil {
		c.head = next
	}
}

// carveLocked adds a slab to a class whose partial list is empty and makes
// it the list, in one store of the class word; it returns the new word.
//
// +checklocks:c.mu
func (c *classState) carveLocked(a accessor, w uint64) (uint64, error) {
	g := &c.geo
	n := g.nextSlab(wordSlabs(w))
	if n >= g.slabLimit {
		return 0, fmt.Errorf("%w: the %d-byte class is full (%d blocks; raise Options.ClassReserve)",
			folio.ErrNoMemory, g.size, g.slabLimit>>g.perShift*g.blocks)
	}
	// The new descriptor is not reachable until the class word says so.
	d := g.slabDesc(n)
	if err := a.StoreUint64(d, g.reserved(n)); err != nil {
		return 0, err
	}
	if err := a.StoreUint64(d+8, 0); err != nil {
		return 0, err
	}
	nw := classWord(n+1, n+1)
	if err := a.StoreUint64(g.word, nw); err != nil {
		return 0, err
	}
	c.head = n + 1
	return nw, nil
}

// freeLocked frees block bit of slab, at addr: it zeroes the block, then
// clears its bit (the commit). A slab that was full goes back on the
// partial list.
//
// +checklocks:c.mu
func (c *classState) freeLocked(addr cow.Addr, slab, bit uint64) error {
	a := c.accessorLocked()
	g := &c.geo
	d := g.slabDesc(slab)
	bm, err := a.LoadUint64(d)
	if err != nil {
		return err
	}
	if bm&(1<<bit) == 0 {
		return fmt.Errorf("%w: the %d-byte block at %#x is free", ErrNotAllocated, g.size, uint64(addr))
	}
	if err := c.clearLocked(a, addr); err != nil {
		return err
	}
	nb := bm &^ (1 << bit)
	if bm != full {
		if err := a.StoreUint64(d, nb); err != nil {
			return err
		}
		if nb == g.reserved(slab) && !g.large {
			c.releaseLocked(slab)
		}
		return nil
	}
	// The slab was full, so it is off the list: mark the class busy, free
	// the block, push the slab.
	w, err := c.wordLocked(a)
	if err != nil {
		return err
	}
	if err := a.StoreUint64(g.word, w|busyBit); err != nil {
		return err
	}
	if err := a.StoreUint64(d, nb); err != nil {
		return err
	}
	// If either store fails the class stays busy (the free is done) and
	// the next operation to read the class word rebuilds the list.
	if a.StoreUint64(d+8, wordHead(w)) == nil && a.StoreUint64(g.word, classWord(slab+1, wordSlabs(w))) == nil {
		c.head = slab + 1
	}
	return nil
}

// allocatedLocked reports whether block bit of slab is allocated (nil) or
// free (ErrNotAllocated).
//
// +checklocks:c.mu
func (c *classState) allocatedLocked(slab, bit uint64) error {
	bm, err := c.accessorLocked().LoadUint64(c.geo.slabDesc(slab))
	if err != nil {
		return err
	}
	if bm&(1<<bit) == 0 {
		return fmt.Errorf("%w: the %d-byte block at %#x is free", ErrNotAllocated, c.geo.size,
			uint64(c.geo.blockAddr(slab, bit)))
	}
	return nil
}

// wordLocked loads the class word, checks it, and repairs the partial list
// first if a change of it was cut short (the busy bit is set: a Fork or a
// failed store came in between).
//
// +checklocks:c.mu
func (c *classState) wordLocked(a accessor) (uint64, error) {
	w, err := a.LoadUint64(c.geo.word)
	if err != nil {
		return 0, err
	}
	if err := c.checkWord(w); err != nil {
		return 0, err
	}
	if w&busyBit != 0 {
		return c.repairLocked(a, w)
	}
	c.head = wordHead(w)
	return w, nil
}

// checkWord checks a class word's bounds.
func (c *classState) checkWord(w uint64) error {
	n, head := wordSlabs(w), wordHead(w)
	if n > c.geo.slabLimit || head > n || head != 0 && !c.geo.valid(head-1) {
		return corrupt("%d-byte class: class word %#x (head %d, next slab %d, limit %d)",
			c.geo.size, w, head, n, c.geo.slabLimit)
	}
	return nil
}
