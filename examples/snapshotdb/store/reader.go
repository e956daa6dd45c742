package store

// Reader is one goroutine's handle for reading the store faster: its
// reads go through an Accessor of its own (cow.Accessor: a software TLB
// and seqlock reads that write nothing shared), not through the Space's
// shared page-table walk. The server gives each connection one. A Reader
// is not for concurrent use; Close it when done.
//
// Writers need no handle: each shard's writers hold its lock alone and
// share the shard's Accessor.
type Reader struct {
	s *Store
	m mem
}

// NewReader returns a Reader of the store.
func (s *Store) NewReader() *Reader {
	return &Reader{s: s, m: mem{acc: s.sp.NewAccessor(), sp: s.sp}}
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (r *Reader) Get(key []byte) ([]byte, error) { return r.s.appendGet(r.m, nil, key) }

// AppendGet is Store.AppendGet, through the Reader's Accessor.
func (r *Reader) AppendGet(dst, key []byte) ([]byte, error) { return r.s.appendGet(r.m, dst, key) }

// Close releases the Reader's Accessor. Closing twice is a no-op.
func (r *Reader) Close() error { return r.m.acc.Close() }
