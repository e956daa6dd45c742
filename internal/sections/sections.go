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

// wait spins until generation g of every shard is empty (see backoff).
func (c *Counter) wait(g int) {
	var b backoff
	for i := range c.shard {
		for c.shard[i].n[g].Load() != 0 {
			b.pause()
		}
	}
}

// spinFor is how long a waiter spins before it yields its P: longer than
// a section that is running takes to finish (a lockless access copies at
// most 256 KiB), so that the common wait never yields. A yield sends the
// waiter to the back of the global run queue, behind the GC's workers and
// every other runnable goroutine: under load that cost Fork milliseconds,
// for a section that was done a microsecond later.
const spinFor = 50 * time.Microsecond

// backoff is a waiter's spin: with one P, a section in flight can only
// finish if the waiter yields, so it yields at once; with more, it spins
// for up to spinFor, then yields on every check: its P (runtime.Gosched),
// so that a section whose goroutine was preempted gets one, and its CPU
// (sched_yield), so that a section whose thread the kernel descheduled
// (a loaded machine) gets one. A Gosched alone keeps the thread spinning
// in the scheduler, and the section's thread off the CPU.
type backoff struct {
	n        int
	deadline time.Time
	yield    bool
}

func (b *backoff) pause() {
	if b.n == 0 {
		b.yield = runtime.GOMAXPROCS(0) == 1
		b.deadline = time.Now().Add(spinFor)
	}
	b.n++
	if !b.yield && b.n&63 == 0 && time.Now().After(b.deadline) {
		b.yield = true
	}
	if b.yield {
		runtime.Gosched()
		osYield()
	}
	if debugStuck > 0 && b.n&1023 == 0 && time.Now().After(b.deadline.Add(debugStuck)) {
		panic("anonfolio: waited 10 s for a lockless section of a space to end: " +
			"is a View callback calling Fork, Close, Protect, Unmap or Advise on its own space?")
	}
}
