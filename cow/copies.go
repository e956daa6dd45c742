package cow

import (
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/folio"
)

// copyTable counts a space's COW copies in flight per folio. Every COW fault
// records one and removes it; only the rare reuse test of a folio that this
// space alone maps reads it. So recording is one CAS into a small array of
// slots (a slot holds head+1, 0 when free), and counting scans the slots;
// more copies in flight than slots at once spill into a map under a mutex.
type copyTable struct {
	slots [copySlots]atomic.Uint64
	spill atomic.Int32 // entries in over

	mu sync.Mutex
	// +checklocks:mu
	over map[folio.PFN]int32
}

const copySlots = 32

func (c *copyTable) add(head folio.PFN) {
	key := uint64(head) + 1
	for i := range c.slots {
		if c.slots[i].Load() == 0 && c.slots[i].CompareAndSwap(0, key) {
			return
		}
	}
	c.mu.Lock()
	if c.over == nil {
		c.over = map[folio.PFN]int32{}
	}
	c.over[head]++
	c.spill.Add(1)
	c.mu.Unlock()
}

func (c *copyTable) remove(head folio.PFN) {
	key := uint64(head) + 1
	for i := range c.slots {
		if c.slots[i].Load() == key && c.slots[i].CompareAndSwap(key, 0) {
			return
		}
	}
	c.mu.Lock()
	if c.over[head]--; c.over[head] <= 0 {
		delete(c.over, head)
	}
	c.spill.Add(-1)
	c.mu.Unlock()
}

// count returns how many copies of the folio are in flight. A copy counted
// here has its reference taken: add happens after the reference, remove
// before it is dropped, so the count never exceeds the references.
func (c *copyTable) count(head folio.PFN) int {
	key := uint64(head) + 1
	n := 0
	for i := range c.slots {
		if c.slots[i].Load() == key {
			n++
		}
	}
	if c.spill.Load() > 0 {
		c.mu.Lock()
		n += int(c.over[head])
		c.mu.Unlock()
	}
	return n
}
