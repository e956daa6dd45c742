package cow

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// sections counts the lockless accesses (ReadAt, WriteAt, GUP-fast) in
// flight in one space, so that Fork and Check can wait for them: Fork makes
// wpSeq odd, then drains. An access enters (one increment), then reads wpSeq
// and backs out to the locked slow path if it is odd; Go's atomics are
// sequentially consistent, so either the access sees the odd count or the
// drain sees the access (Dekker). It is a percpu_rw_semaphore without
// per-CPU data: the counter is sharded by the goroutine's stack address,
// which is stable for one access and differs between goroutines, so
// concurrent accesses rarely share a cache line.
type sections struct {
	shard [nShards]struct {
		n atomic.Int64
		_ [56]byte // one cache line each
	}
}

const nShards = 16

// enter records an access in flight and returns the counter to pass to exit.
func (c *sections) enter() *atomic.Int64 {
	var probe byte
	i := uintptr(unsafe.Pointer(&probe)) >> 13 & (nShards - 1)
	n := &c.shard[i].n
	n.Add(1)
	return n
}

func exit(n *atomic.Int64) { n.Add(-1) }

// drain waits until no access that entered before the call is in flight.
// The caller has already made new accesses back out (wpSeq odd, or the
// space closed).
func (c *sections) drain() {
	for i := range c.shard {
		for spin := 0; c.shard[i].n.Load() != 0; spin++ {
			if spin&15 == 15 {
				runtime.Gosched()
			}
		}
	}
}
