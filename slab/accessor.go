package slab

import "github.com/anonfolio/anonfolio/cow"

// accessor is the part of cow.Accessor the allocator uses for its metadata:
// one goroutine's handle on a space (here: one lock holder's), with 8-byte
// atomics in native byte order on 8-aligned addresses. An interface so
// that tests can wrap it (hooks between writes, pinned views).
type accessor interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	LoadUint64(addr cow.Addr) (uint64, error)
	StoreUint64(addr cow.Addr, v uint64) error
	AddUint64(addr cow.Addr, delta uint64) (uint64, error)
	CompareAndSwapUint64(addr cow.Addr, old, new uint64) (bool, error)
	Close() error
}

// newAccessor returns an accessor on s: the space's own Accessor, whose
// software TLB makes a metadata word a few nanoseconds away.
func newAccessor(s *cow.Space) accessor { return s.NewAccessor() }
