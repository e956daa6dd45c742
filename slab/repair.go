package slab

// repairLocked rebuilds a class's partial list from its bitmaps and clears
// the busy bit; it returns the new class word.
//
// The bitmaps are the truth: a block is allocated exactly when its bit is
// set, and each bit changes in one store. The partial list (every slab
// with a free block, linked from the class word) is derived from them, and
// the two or three stores that change it run with the busy bit set. So a
// space forked (or a store failed) in the middle of such a change holds a
// class word with the busy bit, good bitmaps and a list that may be off by
// one slab; the first operation that reads the word calls this. The busy
// bit stays set until the last store, so a repair cut short is redone.
// The cost grows with the class's slabs, once.
//
// +checklocks:c.mu
func (c *classState) repairLocked(a accessor, w uint64) (uint64, error) {
	g := &c.geo
	n := wordSlabs(w)
	head := uint64(0)
	for i := n; i > 0; i-- { // push from the top, so the lowest slab ends first in line
		if !g.valid(i - 1) {
			continue
		}
		d := g.slabDesc(i - 1)
		bm, err := a.LoadUint64(d)
		if err != nil {
			return 0, err
		}
		if bm != full {
			if err := a.StoreUint64(d+8, head); err != nil {
				return 0, err
			}
			head = i
		}
	}
	nw := classWord(head, n)
	if err := a.StoreUint64(g.word, nw); err != nil {
		return 0, err
	}
	c.head = head
	return nw, nil
}
