package slab

import (
	"fmt"
	"math/bits"

	"github.com/anonfolio/anonfolio/cow"
)

// ClassStats describe one size class.
type ClassStats struct {
	Size       int   // bytes of each block
	Blocks     int64 // blocks allocated
	FreeBlocks int64 // free blocks in the slabs carved
	Slabs      int64 // slabs carved: runs of 64 blocks (the class's last may hold fewer)
	FullSlabs  int64 // slabs with no free block
	EmptySlabs int64 // slabs with no allocated block
}

// Stats describe an allocator: what its blocks hold and what they waste.
type Stats struct {
	// Classes are the classes that carved a slab, smallest first.
	Classes []ClassStats
	// Blocks is the number of allocated blocks; InUse their bytes at their
	// class sizes (what rounding up to a class costs is InUse minus the
	// bytes asked for, which the allocator does not record).
	Blocks int64
	InUse  int64
	// Free is the bytes of free blocks in carved slabs of the classes
	// below eight pages: memory the allocator may hold for later blocks
	// (free large blocks hold none, and blocks never written take none).
	Free int64
	// Fragmentation is Free / (InUse + Free), 0 when both are 0.
	Fragmentation float64
}

// Stats walks every class's bitmaps, one class lock at a time, so the
// figures of different classes may be from different instants. It writes
// nothing, and reads nothing of a class never used. Its cost grows with the
// slabs carved.
func (h *Allocator) Stats() (Stats, error) {
	if h == nil || h.st == nil {
		return Stats{}, errZero
	}
	if h.st.s.Closed() {
		return Stats{}, fmt.Errorf("slab: Stats: %w", cow.ErrClosed)
	}
	var st Stats
	for i := range h.st.cls {
		c := &h.st.cls[i]
		c.mu.Lock()
		cs, err := c.statsLocked()
		c.mu.Unlock()
		if err != nil {
			return Stats{}, fmt.Errorf("slab: Stats: %w", err)
		}
		if cs.Slabs == 0 {
			continue
		}
		st.Classes = append(st.Classes, cs)
		st.Blocks += cs.Blocks
		st.InUse += cs.Blocks * int64(cs.Size)
		if !c.geo.large {
			st.Free += cs.FreeBlocks * int64(cs.Size)
		}
	}
	if st.InUse+st.Free > 0 {
		st.Fragmentation = float64(st.Free) / float64(st.InUse+st.Free)
	}
	return st, nil
}

// statsLocked counts one class's blocks and slabs.
//
// +checklocks:c.mu
func (c *classState) statsLocked() (ClassStats, error) {
	g := &c.geo
	cs := ClassStats{Size: int(g.size)}
	if !c.usedLocked() {
		return cs, nil
	}
	a := c.accessorLocked()
	w, err := a.LoadUint64(g.word)
	if err != nil {
		return cs, err
	}
	if err := c.checkWord(w); err != nil {
		return cs, err
	}
	for i := range wordSlabs(w) {
		if !g.valid(i) {
			continue
		}
		cs.Slabs++
		bm, err := a.LoadUint64(g.slabDesc(i))
		if err != nil {
			return cs, err
		}
		rsv := g.reserved(i)
		used := int64(bits.OnesCount64(bm &^ rsv))
		cs.Blocks += used
		cs.FreeBlocks += int64(bits.OnesCount64(^bm))
		switch {
		case bm == full:
			cs.FullSlabs++
		case used == 0:
			cs.EmptySlabs++
		}
	}
	return cs, nil
}

// usedLocked reports whether the class's first page was ever touched: a
// class never used has nothing to read, and reading would map the zero
// page into its area for nothing.
//
// +checklocks:c.mu
func (c *classState) usedLocked() bool {
	_, ok := c.st.s.Pagemap(c.geo.word)
	return ok
}
