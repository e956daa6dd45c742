//go:build race

package cow

// borrowAccessor returns an idle Accessor of s's, or a new one, which
// stays registered for the space's life (there are at most as many as
// calls ever ran at once); the caller gives it back with returnAccessor.
func (s *Space) borrowAccessor() *Accessor {
	as := &s.accs
	as.mu.Lock()
	defer as.mu.Unlock()
	if n := len(as.spare); n > 0 {
		a := as.spare[n-1]
		as.spare = as.spare[:n-1]
		return a
	}
	a := s.newAccessor()
	if as.live == nil {
		as.live = map[*Accessor]struct{}{}
	}
	as.live[a] = struct{}{}
	as.count()
	return a
}

// returnAccessor gives a borrowed Accessor back.
func (s *Space) returnAccessor(a *Accessor) {
	as := &s.accs
	as.mu.Lock()
	as.spare = append(as.spare, a)
	as.mu.Unlock()
}
