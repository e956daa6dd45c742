package cow

import (
	"sync"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

// arenaState is what the spaces of one arena share: the registry of live
// spaces (mm id to Space, for Check and for the deferred split, which must
// find a folio's mappings without a reverse map) and the deferred-split
// queue. The kernel keeps the latter per memcg/node; one arena is our node.
type arenaState struct {
	a *folio.Arena

	// splitMu is held by the deferred split for a whole pass and by Check
	// for a whole check, before any map lock: the split holds a reference
	// on a queued folio while it locks the spaces that map it, which a
	// Check would count as a leak.
	splitMu sync.Mutex

	mu sync.Mutex
	// +checklocks:mu
	spaces map[folio.MMID]*Space
	// +checklocks:mu
	deferred []deferredFolio
	// dead is set when the last space left and the state was dropped from
	// the registry: a NewSpace that raced with that retries.
	// +checklocks:mu
	dead bool
}

// deferredFolio is a large folio that was left partly mapped, with where the
// space that unmapped part of it maps its first page (the kernel finds it
// through folio->index and the anon_vma; we keep the address).
type deferredFolio struct {
	head folio.PFN
	mm   folio.MMID
	addr Addr // where head would be mapped in mm
}

var arenas sync.Map // *folio.Arena → *arenaState

// register adds s to its arena's state, creating the state if needed.
func register(s *Space) *arenaState {
	for {
		v, _ := arenas.LoadOrStore(s.a, &arenaState{a: s.a, spaces: map[folio.MMID]*Space{}})
		as := v.(*arenaState)
		as.mu.Lock()
		if as.dead {
			as.mu.Unlock()
			continue
		}
		as.spaces[s.mm] = s
		as.mu.Unlock()
		return as
	}
}

// unregister removes s; the last space out drops the state.
func (as *arenaState) unregister(s *Space) {
	a := as.a
	as.mu.Lock()
	defer as.mu.Unlock()
	delete(as.spaces, s.mm)
	if len(as.spaces) == 0 {
		as.dead = true
		as.deferred = nil
		arenas.CompareAndDelete(a, as)
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
