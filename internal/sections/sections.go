// Package sections counts the sections in flight of some kind (the lockless
// accesses of one space, the releases of one arena's pins) so that a
// quiescing writer can wait for them: a percpu_rw_semaphore without
// per-CPU data. Entering and leaving are one atomic add each on a counter
// sharded by the goroutine's stack address, which is stable for one section
// and differs between goroutines, so concurrent sections rarely share a
// cache line. The caller keeps its own "come back later" flag (an odd
// sequence count, a closed gate): a section enters, then reads the flag and
// leaves at once if it is set; the writer sets the flag, then drains. Go's
// atomics are sequentially consistent, so either the section sees the flag
// or the drain sees the section (Dekker).
package sections

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Counter counts sections in flight. The zero value is ready.
type Counter struct {
	shard [nShards]struct {
		n atomic.Int64
		_ [56]byte // one cache line each
	}
}

const nShards = 16

// Enter records a section in flight and returns the counter to pass to
// Exit.
func (c *Counter) Enter() *atomic.Int64 {
	var probe byte
	i := uintptr(unsafe.Pointer(&probe)) >> 13 & (nShards - 1)
	n := &c.shard[i].n
	n.Add(1)
	return n
}

// Exit ends the section Enter began.
func Exit(n *atomic.Int64) { n.Add(-1) }

// Drain waits until no section that entered before the call is in flight.
// The caller has already made new sections back out (its flag is set).
func (c *Counter) Drain() {
	for i := range c.shard {
		for spin := 0; c.shard[i].n.Load() != 0; spin++ {
			if spin&15 == 15 {
				runtime.Gosched()
			}
		}
	}
}
