package cow

// Space.ReadAt and WriteAt borrow an Accessor from a pool of the space's,
// and so run on the Accessor's machinery: its warm TLB, and sections that
// are a plain store each. (A locked instruction in each call, as a shared
// section counter needs, also waits for the loads before it: random reads
// of memory that misses the cache would no longer overlap from one call
// to the next.)
//
// The pool is a sync.Pool (accpool_norace.go): per-P, so a borrow and a
// return cost no atomic read-modify-write. In race builds, where a
// sync.Pool drops a quarter of what it is given on purpose (so that every
// ReadAt would allocate), it is a list under the set's lock instead
// (accpool_race.go).

// ReadAt through a borrowed Accessor: see the doc comment in rw.go.
func (s *Space) readAtPooled(p []byte, off int64) (int, error) {
	a := s.borrowAccessor()
	n, err := a.ReadAt(p, off)
	s.returnAccessor(a)
	return n, err
}

// WriteAt through a borrowed Accessor.
func (s *Space) writeAtPooled(p []byte, off int64) (int, error) {
	a := s.borrowAccessor()
	n, err := a.WriteAt(p, off)
	s.returnAccessor(a)
	return n, err
}
