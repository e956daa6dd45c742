//go:build !race

package cow

import (
	"runtime"
	"weak"
)

// The pool drops Accessors at garbage collections; the space holds them
// weakly (accessorSet.pooled), and a cleanup unregisters one once the
// collector took it. A collected Accessor is in no section: a goroutine in
// one holds it.

// borrowAccessor returns an Accessor of s's pool, or a new one; the caller
// gives it back with returnAccessor when it is done.
func (s *Space) borrowAccessor() *Accessor {
	if a, ok := s.accs.pool.Get().(*Accessor); ok {
		return a
	}
	a := s.newAccessor()
	as := &s.accs
	w := weak.Make(a)
	as.mu.Lock()
	if as.pooled == nil {
		as.pooled = map[weak.Pointer[Accessor]]struct{}{}
	}
	as.pooled[w] = struct{}{}
	as.count()
	as.mu.Unlock()
	runtime.AddCleanup(a, as.forget, w)
	return a
}

// returnAccessor gives a borrowed Accessor back.
func (s *Space) returnAccessor(a *Accessor) { s.accs.pool.Put(a) }

// forget unregisters a pooled Accessor the collector took.
func (as *accessorSet) forget(w weak.Pointer[Accessor]) {
	as.mu.Lock()
	delete(as.pooled, w)
	as.count()
	as.mu.Unlock()
}
