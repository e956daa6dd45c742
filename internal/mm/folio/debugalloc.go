package folio

import (
	"fmt"
	"sync"
)

// The anonfolio_debug build tag turns on a quarantine for memory that was
// handed out through a pin or a Get, like the kernel's debug_pagealloc
// (which unmaps freed pages from the direct map) and page poisoning. When
// such a folio is freed (its last reference dropped, by the Release of a
// pin, or later by the unmap of its last mapping), it does not go back to
// the free lists at once: it is made inaccessible (mprotect PROT_NONE) and
// kept aside, so that a write through a Pages.Bytes slice kept after its
// Release crashes at the culprit instead of corrupting whoever gets the
// memory next. Where the pages cannot be protected on their own (the
// Go-heap backing of race builds, a folio smaller than a host page) they
// are filled with a poison byte instead, which is verified when they leave
// the quarantine: a write shows then, as a panic that names the page.
//
// Folios leave the quarantine oldest first once it holds more than an
// eighth of the arena, when an allocation would otherwise fail, and when
// the arena closes. What the quarantine cannot catch: a stale write to a
// page that its space still maps (the Release ended the pin, not the
// mapping), which lands in that space's own memory as a stale pointer
// would.
//
// Without the tag, debugPagealloc is a false constant and all of this
// compiles away.

// pgHeld marks a folio that a pin or a Get held at some point (debug only).
const pgHeld = 1 << 9

// poisonByte fills quarantined pages that cannot be protected (the kernel's
// POISON_FREE).
const poisonByte = 0x6b

type quarantine struct {
	mu sync.Mutex
	// +checklocks:mu
	fifo []quarantined
	// +checklocks:mu
	pages int64
}

type quarantined struct {
	head      PFN
	order     int
	protected bool // mprotect'ed, not poisoned
}

// FolioMarkHeld records that a pin or a Get hands out the folio's memory,
// so that the debug build quarantines it when it is freed. Without the
// anonfolio_debug tag it does nothing.
func (a *Arena) FolioMarkHeld(head PFN) {
	if debugPagealloc {
		a.pages[head].orFlags(pgHeld)
	}
}

// quarantineFolio takes a folio being freed that a pin or a Get held: it is
// protected or poisoned and kept aside. It reports false (free it as usual)
// without the debug tag or for a folio nobody held.
func (a *Arena) quarantineFolio(head PFN, order int) bool {
	if !debugPagealloc || a.pages[head].loadFlags()&pgHeld == 0 {
		return false
	}
	n := int64(1) << order
	a.pae.clear(int64(head), n)
	a.pages[head].storeFlags(uint32(order)) // not a head any more: lockless lookups fail
	mem := a.PageBytes(head, int(n))
	q := quarantined{head: head, order: order}
	if a.hostOrder >= 0 && order >= a.hostOrder {
		q.protected = sysProtect(mem, false)
	}
	if !q.protected {
		for i := range mem {
			mem[i] = poisonByte
		}
	}
	a.quar.mu.Lock()
	a.quar.fifo = append(a.quar.fifo, q)
	a.quar.pages += n
	var out []quarantined
	for a.quar.pages > a.nrPages/8 && len(a.quar.fifo) > 1 {
		out = append(out, a.quar.fifo[0])
		a.quar.pages -= int64(1) << a.quar.fifo[0].order
		a.quar.fifo = a.quar.fifo[1:]
	}
	a.quar.mu.Unlock()
	a.unquarantine(out)
	return true
}

// drainQuarantine frees every quarantined folio and reports whether there
// was any: for an allocation that found nothing free, and for Close.
func (a *Arena) drainQuarantine() bool {
	if !debugPagealloc {
		return false
	}
	a.quar.mu.Lock()
	out := a.quar.fifo
	a.quar.fifo, a.quar.pages = nil, 0
	a.quar.mu.Unlock()
	a.unquarantine(out)
	return len(out) > 0
}

// unquarantine makes folios accessible again, checks the poison of those
// that were not protected, and frees them. It panics, once all are free,
// naming the first page written while in quarantine.
func (a *Arena) unquarantine(qs []quarantined) {
	var bad string
	for _, q := range qs {
		n := int64(1) << q.order
		mem := a.PageBytes(q.head, int(n))
		if q.protected {
			if !sysProtect(mem, true) && bad == "" {
				bad = fmt.Sprintf("folio: cannot unprotect quarantined folio %#x", uint64(q.head))
			}
		} else if i := notPoison(mem); i >= 0 && bad == "" {
			bad = fmt.Sprintf("folio: page %#x was written after it was released (byte %d is %#x): a Pages.Bytes slice used after Release?",
				uint64(q.head)+uint64(i>>a.geo.PageShift), i&(a.geo.PageSize-1), mem[i])
		}
		a.freeBlock(q.head, q.order)
	}
	if bad != "" {
		panic(bad)
	}
}

// notPoison returns the index of the first byte of b that is not the
// poison, or -1.
func notPoison(b []byte) int {
	for i, c := range b {
		if c != poisonByte {
			return i
		}
	}
	return -1
}

// quarantined returns how many pages the quarantine holds.
func (a *Arena) quarantined() int64 {
	if !debugPagealloc {
		return 0
	}
	a.quar.mu.Lock()
	defer a.quar.mu.Unlock()
	return a.quar.pages
}

// Bounce buffers: in the debug build, a View hands its callback a copy of
// the memory in a buffer of its own, which is made inaccessible (or, where
// it cannot be, poisoned) once the callback returns, so that bytes kept
// past the callback fault at the culprit. The last bounceRing retired
// buffers stay retired; older ones are unmapped.

const bounceRing = 64

var bounces struct {
	mu sync.Mutex
	// +checklocks:mu
	retired [][]byte
}

// BounceBuffer returns n bytes of memory of their own for a debug View.
func BounceBuffer(n int) []byte {
	if b := sysMapBounce((n + 4095) &^ 4095); b != nil {
		return b[:n]
	}
	return make([]byte, n)
}

// RetireBounce makes a buffer BounceBuffer returned inaccessible (PROT_NONE)
// or, where it cannot, fills it with the poison byte.
func RetireBounce(b []byte) {
	full := b[:cap(b)]
	if !sysProtect(full, false) {
		for i := range b {
			b[i] = poisonByte
		}
		return
	}
	bounces.mu.Lock()
	bounces.retired = append(bounces.retired, full)
	var old []byte
	if len(bounces.retired) > bounceRing {
		old, bounces.retired = bounces.retired[0], bounces.retired[1:]
	}
	bounces.mu.Unlock()
	if old != nil {
		sysUnmapBounce(old)
	}
}
