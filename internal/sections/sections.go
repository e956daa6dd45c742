// Package sections counts the sections in flight of some kind (the lockless
// accesses of one space, the releases of one arena's pins) so that a writer
// can wait for them: a percpu_rw_semaphore, and SRCU's grace period,
// without per-CPU data. Entering and leaving are one atomic add each on a
// counter sharded by the goroutine's stack address, which is stable for one
// section and differs between goroutines, so concurrent sections rarely
// share a cache line.
//
// Two ways to wait:
//
//   - Drain waits for every section in flight. The caller first makes new
//     sections back out with a flag of its own (an odd sequence count, a
//     closed gate) that a section reads after it enters: Go's atomics are
//     sequentially consistent, so either the section sees the flag or the
//     drain sees the section (Dekker). Without the flag, a stream of new
//     sections could keep a drain waiting.
//   - Synchronize waits only for the sections that entered before it began,
//     as synchronize_srcu does: the counters come in two generations, a
//     section counts itself in the current one, and Synchronize flips the
//     current generation and waits for the previous one to empty. New
//     sections go on entering meanwhile. A section that will act on shared
//     state must read that state after it entered: then whatever changed
//     the state before calling Synchronize is either seen by the section
//     or waited for.
package sections

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Counter counts sections in flight. The zero value is ready.
type Counter struct {
	// gen's low bit says which of each shard's two counters new sections
	// count themselves in.
	gen atomic.Uint32
	// syncMu serialises Synchronize: two at once would flip the generation
	// back under each other, and new sections would keep the first
	// waiting.
	syncMu sync.Mutex
	shard  [nShards]struct {
		n [2]atomic.Int64
		_ [48]byte // one cache line each
	}
}

const nShards = 16

// Enter records a section in flight and returns the counter to pass to
// Exit.
func (c *Counter) Enter() *atomic.Int64 {
	var probe byte
	sh := &c.shard[uintptr(unsafe.Pointer(&probe))>>13&(nShards-1)]
	for {
		g := c.gen.Load() & 1
		n := &sh.n[g]
		n.Add(1)
		// A Synchronize that flipped between the load and the add may
		// have found this generation empty already: count in the new one.
		if c.gen.Load()&1 == g {
			return n
		}
		n.Add(-1)
	}
}

// Exit ends the section Enter began.
func Exit(n *atomic.Int64) { n.Add(-1) }

// Drain waits until no section is in flight. The caller has already made
// new sections back out (its flag is set).
func (c *Counter) Drain() {
	for g := range 2 {
		c.wait(g)
	}
}

// Synchronize waits until every section that entered before the call has
// exited. Sections that enter meanwhile are not waited for.
func (c *Counter) Synchronize() {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	old := (c.gen.Add(1) - 1) & 1
	c.wait(int(old))
}

// wait spins until generation g of every shard is empty, yielding now and
// then so that a section preempted on this P can finish.
func (c *Counter) wait(g int) {
	var start time.Time
	for i := range c.shard {
		for spin := 0; c.shard[i].n[g].Load() != 0; spin++ {
			if spin&15 == 15 {
				runtime.Gosched()
			}
			if debugStuck > 0 && spin&1023 == 1023 {
				if start.IsZero() {
					start = time.Now()
				} else if time.Since(start) > debugStuck {
					panic("anonfolio: waited 10 s for a lockless section of a space to end: " +
						"is a View callback calling Fork, Close, Protect, Unmap or Advise on its own space?")
				}
			}
		}
	}
}
