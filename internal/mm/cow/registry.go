package cow

import (
	"sync"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// arenaState is what the spaces of one arena share: the registry of live
// spaces (mm id to Space, for Check and for the deferred split, which must
// find a folio's mappings without a reverse map) and the deferred-split
// queue. The kernel keeps the latter per memcg/node; one arena is our node.
// It lives as long as the arena (attached to it), so that every Check and
// every split pass of an arena meet on the same locks.
type arenaState struct {
	a *folio.Arena

	// splitMu is held by the deferred split for a whole pass and by Check
	// for a whole check, before any map lock: the split holds a reference
	// on a queued folio while it locks the spaces that map it, which a
	// Check would count as a leak.
	splitMu sync.Mutex

	// regGate is held for reading by the registration of a new space and
	// for writing by Check, after it locked every space: a space created
	// while Check runs waits for it, so that Check never misses a space
	// (nor the folios it allocates). Fork registers its child with the
	// parent's map lock held, which Check takes before the gate.
	regGate sync.RWMutex

	mu sync.Mutex
	// +checklocks:mu
	spaces map[folio.MMID]*Space
	// +checklocks:mu
	deferred []deferredFolio
}

// deferredFolio is a large folio that was left partly mapped, with where the
// space that unmapped part of it maps its first page (the kernel finds it
// through folio->index and the anon_vma; we keep the address).
type deferredFolio struct {
	head folio.PFN
	mm   folio.MMID
	addr Addr // where head would be mapped in mm
}

// stateOf returns the state of arena a's spaces, made on first use.
func stateOf(a *folio.Arena) *arenaState {
	return a.Attached(func() any {
		return &arenaState{a: a, spaces: map[folio.MMID]*Space{}}
	}).(*arenaState)
}

// register adds s to its arena's state.
func register(s *Space) *arenaState {
	as := stateOf(s.a)
	as.regGate.RLock()
	defer as.regGate.RUnlock()
	as.mu.Lock()
	as.spaces[s.mm] = s
	as.mu.Unlock()
	return as
}

// unregister removes s; the last space out drops the deferred-split queue
// (nothing is mapped any more).
func (as *arenaState) unregister(s *Space) {
	as.mu.Lock()
	defer as.mu.Unlock()
	delete(as.spaces, s.mm)
	if len(as.spaces) == 0 {
		as.deferred = nil
	}
}

// space returns the live space with id mm, or nil.
func (as *arenaState) space(mm folio.MMID) *Space {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.spaces[mm]
}

// liveSpaces returns the live spaces of the arena.
func (as *arenaState) liveSpaces() []*Space {
	as.mu.Lock()
	defer as.mu.Unlock()
	out := make([]*Space, 0, len(as.spaces))
	for _, s := range as.spaces {
		out = append(out, s)
	}
	return out
}

// queuedFolios adds the folios on the deferred-split queue to set.
func (as *arenaState) queuedFolios(set map[folio.PFN]bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, q := range as.deferred {
		set[q.head] = true
	}
}
