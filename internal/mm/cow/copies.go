package cow

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// copyTable records a space's COW copies in flight per folio. Every COW
// fault records one and removes it; only the rare reuse test of a folio
// that this space alone maps reads it. So recording is one CAS into a small
// array of slots, and reading scans the slots; more copies in flight than
// slots at once spill into a map under a mutex.
//
// A slot holds the folio's head+1 in its low slotKeyBits (0 when free) and a
// generation in the bits above, bumped each time the slot is taken: a slot
// read twice with the same value held the same copy, and so the same
// reference, all along.
type copyTable struct {
	slots [copySlots]atomic.Uint64

	mu sync.Mutex
	// +checklocks:mu
	over map[folio.PFN]int32
}

const (
	copySlots   = 32
	slotKeyBits = 40 // PFNs below 2^40: 4 PiB of 4 KiB pages
	slotKeyMask = 1<<slotKeyBits - 1
	slotGen     = 1 << slotKeyBits
)

// add records a copy of the folio. The caller took its reference first.
func (c *copyTable) add(head folio.PFN) {
	key := uint64(head) + 1
	for i := range c.slots {
		v := c.slots[i].Load()
		if v&slotKeyMask == 0 && c.slots[i].CompareAndSwap(v, (v+slotGen)|key) {
			return
		}
	}
	c.mu.Lock()
	if c.over == nil {
		c.over = map[folio.PFN]int32{}
	}
	c.over[head]++
	c.mu.Unlock()
}

// remove records that a copy of the folio is over. The caller drops its
// reference afterwards.
func (c *copyTable) remove(head folio.PFN) {
	key := uint64(head) + 1
	for i := range c.slots {
		v := c.slots[i].Load()
		if v&slotKeyMask == key && c.slots[i].CompareAndSwap(v, v&^slotKeyMask) {
			return
		}
	}
	c.mu.Lock()
	if c.over[head]--; c.over[head] <= 0 {
		delete(c.over, head)
	}
	c.mu.Unlock()
}

// copySnap is the slots that held copies of one folio at some instant.
type copySnap struct {
	mask uint32 // which slots
	vals [copySlots]uint64
	n    int // how many
}

// snap returns the copies of the folio in flight in the slots now (those
// spilled to the map are left out: the count may only err low).
func (c *copyTable) snap(head folio.PFN) (s copySnap) {
	key := uint64(head) + 1
	for i := range c.slots {
		if v := c.slots[i].Load(); v&slotKeyMask == key {
			s.mask |= 1 << i
			s.vals[i] = v
			s.n++
		}
	}
	return s
}

// unchanged reports whether every copy of s is still in flight: each then
// held its reference from the snap to now, so a refcount read in between
// counted it.
func (c *copyTable) unchanged(s *copySnap) bool {
	for m := s.mask; m != 0; m &= m - 1 {
		i := bits.TrailingZeros32(m)
		if c.slots[i].Load() != s.vals[i] {
			return false
		}
	}
	return true
}

// checkIdle reports a copy recorded in flight: with the map lock held for
// writing there can be none, and a stale record would let a reuse ignore a
// reference it must not.
func (c *copyTable) checkIdle() error {
	for i := range c.slots {
		if v := c.slots[i].Load(); v&slotKeyMask != 0 {
			return fmt.Errorf("a COW copy of folio %#x is recorded in flight with the space quiet", v&slotKeyMask-1)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for head := range c.over {
		return fmt.Errorf("a COW copy of folio %#x is recorded in flight with the space quiet", uint64(head))
	}
	return nil
}
