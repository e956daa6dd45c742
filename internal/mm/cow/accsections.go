package cow

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
	"weak"

	"github.com/anonfolio/anonfolio/internal/membarrier"
	"github.com/anonfolio/anonfolio/internal/seqlock"
)

// An Accessor's lockless sections cost no atomic read-modify-write and no
// fence: the asymmetric Dekker of package membarrier. The Accessor
// announces a section by making its published sequence odd with a plain
// store, and even again at the end with a store-release; the events that
// must wait for sections (Fork, Close, Protect, WriteProtect, Collapse and
// Check quiescing the space; a zap before it frees pages) first make their
// change (wpSeq odd, closed, entries cleared), then call membarrier.Barrier,
// then wait for every odd sequence they see to move. Either the Accessor's
// announcement is visible to them after the barrier, or its loads came
// after its own barrier and see their change. Where membarrier(2) is not
// available the announcement is a fenced store instead, and the waiters
// skip the barrier. (ReadAt and WriteAt of a Space borrow a pooled
// Accessor: accpool.go.)

// relaxedAnnounce is whether an Accessor announces a section with a plain
// store (the waiters call membarrier) rather than a fenced one. Decided
// once; never in race builds, whose detector sees only sync/atomic.
var relaxedAnnounce = membarrier.Available() && !raceBuild

// sectionSeq is an Accessor's section sequence: odd while it is in a
// section. mine is the owner's copy; pub is what waiters read.
type sectionSeq struct {
	pub  atomic.Uint32 // stored by the owner (enter, exit), loaded by waiters
	mine uint32        // the owner's; handed over with the Accessor (under the caller's lock)
}

// enter begins a section: the caller's loads of shared state come after.
func (q *sectionSeq) enter() {
	q.mine++
	if relaxedAnnounce {
		seqlock.StoreRelaxed32(q.word(), q.mine)
	} else {
		q.pub.Store(q.mine)
	}
}

// exit ends it, after every access the section made.
func (q *sectionSeq) exit() {
	q.mine++
	if raceBuild {
		q.pub.Store(q.mine)
	} else {
		seqlock.StoreRelease32(q.word(), q.mine)
	}
}

// endIfOpen ends a section the owner is still in: one that a panic left,
// in a copy to or from the caller's buffer (ReadAt and WriteAt, which
// defer it). A buffer can fault (a mapped file truncated under a program
// that set debug.SetPanicOnFault) and the program recover; a section left
// open is one Fork, Close and every zap would wait for forever. After a
// normal return the section is over and it only tests mine.
func (q *sectionSeq) endIfOpen() {
	if q.mine&1 != 0 {
		q.exit()
	}
}

// word is pub for seqlock's plain stores, which are atomic too (an aligned
// 32-bit store) but order less than sync/atomic's.
func (q *sectionSeq) word() *uint32 { return (*uint32)(unsafe.Pointer(&q.pub)) }

// accSections are an Accessor's two kinds of section, on a cache line of
// their own. A zap and a quiesce wait for writes only: a seqlock read of a
// page freed under it is harmless (it fails its recheck), and a read
// paused in its section must not hold up the zap. Close waits for both,
// for after it the arena may unmap the memory.
type accSections struct {
	rd, wr sectionSeq
	_      [48]byte
}

// accessorSet is a space's open Accessors: those of NewAccessor, and the
// pooled ones of Space.ReadAt and WriteAt (accpool.go), which it holds
// weakly so that the pool can drop them.
type accessorSet struct {
	n  atomic.Int32 // len(live)+len(pooled): a waiter with no Accessor to wait for skips the barrier
	mu sync.Mutex
	// +checklocks:mu
	live map[*Accessor]struct{}
	// +checklocks:mu
	pooled map[weak.Pointer[Accessor]]struct{}
	pool   sync.Pool // of *Accessor, registered in pooled (accpool_norace.go)
	// spare are the idle pooled Accessors of race builds (accpool_race.go).
	// +checklocks:mu
	spare []*Accessor
}

func (as *accessorSet) add(a *Accessor) {
	as.mu.Lock()
	if as.live == nil {
		as.live = map[*Accessor]struct{}{}
	}
	as.live[a] = struct{}{}
	as.count()
	as.mu.Unlock()
}

func (as *accessorSet) remove(a *Accessor) {
	as.mu.Lock()
	delete(as.live, a)
	as.count()
	as.mu.Unlock()
}

// count stores n.
//
// +checklocks:as.mu
func (as *accessorSet) count() { as.n.Store(int32(len(as.live) + len(as.pooled))) }

// each calls f with every registered Accessor still alive.
//
// +checklocks:as.mu
func (as *accessorSet) each(f func(a *Accessor)) {
	for a := range as.live {
		f(a)
	}
	for w := range as.pooled {
		if a := w.Value(); a != nil {
			f(a)
		}
	}
}

// wait returns once every write section (and with reads, every read
// section too) of the space's Accessors that began before the call has
// ended. The caller made its change first.
func (as *accessorSet) wait(reads bool) {
	if as.n.Load() == 0 {
		return
	}
	if relaxedAnnounce {
		membarrier.Barrier()
	}
	type inFlight struct {
		q   *sectionSeq
		seq uint32
	}
	var small [8]inFlight
	busy := small[:0]
	as.mu.Lock()
	as.each(func(a *Accessor) {
		if seq := a.sec.wr.pub.Load(); seq&1 != 0 {
			busy = append(busy, inFlight{&a.sec.wr, seq})
		}
		if !reads {
			return
		}
		if seq := a.sec.rd.pub.Load(); seq&1 != 0 {
			busy = append(busy, inFlight{&a.sec.rd, seq})
		}
	})
	as.mu.Unlock()
	for _, b := range busy {
		for spin := 0; b.q.pub.Load() == b.seq; spin++ {
			if spin&15 == 15 {
				runtime.Gosched() // the Accessor's goroutine may be waiting for this P
			}
		}
	}
}
