package slab

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/anonfolio/anonfolio/cow"
)

// accessor is the part of cow.Accessor the allocator uses for its metadata:
// one goroutine's handle on a space (here: one lock holder's), with 8-byte
// atomics in native byte order on 8-aligned addresses.
type accessor interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	LoadUint64(addr cow.Addr) (uint64, error)
	StoreUint64(addr cow.Addr, v uint64) error
	AddUint64(addr cow.Addr, delta uint64) (uint64, error)
	CompareAndSwapUint64(addr cow.Addr, old, new uint64) (bool, error)
	Close() error
}

// newAccessor returns an accessor on s.
//
// It is a stand-in until cow.Space.NewAccessor exists: it goes through
// Space.ReadAt and Space.WriteAt (about 100 ns a word, against a few for
// the Accessor's software TLB) and serialises its read-modify-write
// atomics with one Go mutex. Replace its body with `return s.NewAccessor()`
// and delete spaceAccessor; nothing else in the package changes.
func newAccessor(s *cow.Space) accessor { return &spaceAccessor{s: s} }

// spaceAccessor is the stand-in accessor over a space's ReadAt and WriteAt.
type spaceAccessor struct {
	s      *cow.Space
	closed bool
}

// standInAtomics makes the stand-in's Add and CompareAndSwap atomic against
// each other (a placeholder: the allocator itself only loads and stores,
// under its class locks).
var standInAtomics sync.Mutex

func (a *spaceAccessor) ReadAt(p []byte, off int64) (int, error) {
	if a.closed {
		return 0, cow.ErrClosed
	}
	return a.s.ReadAt(p, off)
}

func (a *spaceAccessor) WriteAt(p []byte, off int64) (int, error) {
	if a.closed {
		return 0, cow.ErrClosed
	}
	return a.s.WriteAt(p, off)
}

func (a *spaceAccessor) LoadUint64(addr cow.Addr) (uint64, error) {
	if addr%8 != 0 {
		return 0, fmt.Errorf("%w: 8-byte load at %#x", cow.ErrInvalid, uint64(addr))
	}
	var b [8]byte
	if _, err := a.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

func (a *spaceAccessor) StoreUint64(addr cow.Addr, v uint64) error {
	if addr%8 != 0 {
		return fmt.Errorf("%w: 8-byte store at %#x", cow.ErrInvalid, uint64(addr))
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	_, err := a.WriteAt(b[:], int64(addr))
	return err
}

func (a *spaceAccessor) AddUint64(addr cow.Addr, delta uint64) (uint64, error) {
	standInAtomics.Lock()
	defer standInAtomics.Unlock()
	v, err := a.LoadUint64(addr)
	if err != nil {
		return 0, err
	}
	return v + delta, a.StoreUint64(addr, v+delta)
}

func (a *spaceAccessor) CompareAndSwapUint64(addr cow.Addr, old, new uint64) (bool, error) {
	standInAtomics.Lock()
	defer standInAtomics.Unlock()
	v, err := a.LoadUint64(addr)
	if err != nil || v != old {
		return false, err
	}
	return true, a.StoreUint64(addr, new)
}

func (a *spaceAccessor) Close() error {
	a.closed = true
	return nil
}
