package slab

import "github.com/anonfolio/anonfolio/cow"

// zeros is what small blocks are cleared with.
var zeros [16 << 10]byte // +checklocksignore: read only, so any lock or none

// clearLocked makes the block at addr read zero before it is freed. A
// large block (eight pages or more, page-aligned) gives its pages back to
// the arena: they read zero afterwards, and freeing them is the point. A
// smaller one is overwritten with zeros: dropping its pages and faulting
// them in again would cost 10 times as much for one page, 2 times for 16
// (go test -run '^$' -bench Clear -benchtime 1x ./slab).
//
// +checklocks:c.mu
func (c *classState) clearLocked(a accessor, addr cow.Addr) error {
	if c.geo.large {
		return c.st.s.Advise(addr, int(c.geo.size), cow.DontNeed)
	}
	for n := c.geo.size; n > 0; {
		k := min(n, uint64(len(zeros)))
		if _, err := a.WriteAt(zeros[:k], int64(addr)); err != nil {
			return err
		}
		addr += cow.Addr(k)
		n -= k
	}
	return nil
}

// releaseLocked gives back the whole pages of slab, whose blocks are all
// free (and zero), unless it heads the partial list: the next allocations
// go there, and an alloc and free of one block must not drop and refault a
// page each time. It is best effort: the pages read zero either way, and
// if the head hint is stale (after a ResetTo) the cost is one refault.
//
// +checklocks:c.mu
func (c *classState) releaseLocked(slab uint64) {
	if c.head == slab+1 {
		return
	}
	g := &c.geo
	ps := c.st.geo.ps
	start, end := g.slabBytes(slab)
	lo, hi := (start+ps-1)&^(ps-1), end&^(ps-1)
	if lo < hi {
		c.st.s.Advise(cow.Addr(lo), int(hi-lo), cow.DontNeed)
	}
}
