package slab

import (
	"runtime"
	"sync"
	"weak"

	"github.com/anonfolio/anonfolio/cow"
	"golang.org/x/sys/cpu"
)

// state is what every handle on one allocator (one space, one root) shares:
// the immutable geometry and the Go-side locks. The allocator's data all
// lives in the space; the state caches none of it (classState.head is a
// hint), so handles made by New and by Open see each other's changes at
// once.
type state struct {
	s    *cow.Space
	geo  geometry
	cls  []classState // one per size class, each on its own cache lines
	accs *accessorSet // every accessor made, closed when the state is collected
}

// classState is one size class: its lock and the accessor its holder uses.
type classState struct {
	_  cpu.CacheLinePad
	mu sync.Mutex
	// acc is made on first use.
	// +checklocks:mu
	acc accessor
	// head is the head of the partial list in the class word this state
	// last read or wrote. It is a hint, for releaseLocked only: a ResetTo
	// of the space may change the word behind it.
	// +checklocks:mu
	head uint64
	// geo and st are fixed when the state is made.
	geo classGeo
	st  *state // +checklocksignore: fixed, read with or without the lock
	_   cpu.CacheLinePad
}

// accessorSet records the accessors of a state so that a cleanup can close
// them once no handle is left (the cleanup cannot refer to the state).
type accessorSet struct {
	mu sync.Mutex
	// +checklocks:mu
	list []accessor
}

func (as *accessorSet) add(a accessor) {
	as.mu.Lock()
	as.list = append(as.list, a)
	as.mu.Unlock()
}

func (as *accessorSet) closeAll() {
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, a := range as.list {
		a.Close()
	}
	as.list = nil
}

// wrapAccessor, if set (by tests only), wraps each accessor the allocator
// makes on a space: the tests use it to Fork between any two writes.
var wrapAccessor func(*cow.Space, accessor) accessor

// accessorLocked returns the class's accessor, made on first use.
//
// +checklocks:c.mu
func (c *classState) accessorLocked() accessor {
	if c.acc == nil {
		a := newAccessor(c.st.s)
		if wrapAccessor != nil {
			a = wrapAccessor(c.st.s, a)
		}
		c.st.accs.add(a)
		c.acc = a
	}
	return c.acc
}

// regKey names one allocator: its space and its root.
type regKey struct {
	s    *cow.Space
	root cow.Addr
}

// registry finds the shared state of an allocator that already has a live
// handle. Entries go when their state is collected.
var registry struct {
	mu sync.Mutex
	// +checklocks:mu
	m map[regKey]weak.Pointer[state]
}

// lookupLocked returns the live state registered for k, or nil.
//
// +checklocks:registry.mu
func lookupLocked(k regKey) *state {
	return registry.m[k].Value()
}

// newState makes the state of the allocator with geometry g in s and
// registers it, replacing any earlier entry for the same root.
//
// +checklocks:registry.mu
func newStateLocked(s *cow.Space, g geometry) *state {
	st := &state{s: s, geo: g, accs: &accessorSet{}}
	st.cls = make([]classState, len(g.classes))
	for i := range st.cls {
		st.cls[i].geo = g.classes[i]
		st.cls[i].st = st
	}
	k := regKey{s, g.root}
	if registry.m == nil {
		registry.m = make(map[regKey]weak.Pointer[state])
	}
	registry.m[k] = weak.Make(st)
	runtime.AddCleanup(st, func(k regKey) {
		registry.mu.Lock()
		if wp, ok := registry.m[k]; ok && wp.Value() == nil {
			delete(registry.m, k)
		}
		registry.mu.Unlock()
	}, k)
	runtime.AddCleanup(st, (*accessorSet).closeAll, st.accs)
	return st
}
