package slab

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// Options configure a new allocator. The zero value works.
type Options struct {
	// ClassReserve is the address space each size class reserves for its
	// blocks: a power of two from 2 MiB to 64 GiB; 0 means 16 GiB. It caps
	// what one class can hand out (Alloc returns folio.ErrNoMemory past
	// it), and the largest block is ClassReserve/8 (2 GiB by default).
	// New reserves (classes+1) × ClassReserve bytes of the space's
	// addresses, about 3.2 TiB by default; only the pages written use
	// memory, and only the page tables of the parts in use are made.
	ClassReserve int64
}

// Allocator hands out blocks of a Space, with all of its state in that
// space. It is safe for concurrent use. The zero value is not usable: make
// one with New or Open.
type Allocator struct {
	st *state
}

// New makes an allocator in s: it maps the allocator's reservation and
// writes its header there. Every byte of its state lives in s, so a Fork of
// s (or an image of it) carries the allocator along with the blocks, and
// Open finds it again at Root.
func New(s *cow.Space, opts Options) (*Allocator, error) {
	reserve := opts.ClassReserve
	if reserve == 0 {
		reserve = defaultClassReserve
	}
	if reserve < minClassReserve || reserve > maxClassReserve || reserve&(reserve-1) != 0 {
		return nil, fmt.Errorf("%w: slab: ClassReserve %d is not a power of two from %d to %d",
			cow.ErrInvalid, opts.ClassReserve, minClassReserve, maxClassReserve)
	}
	ps := uint64(s.PageSize())
	shift := uint(bits.TrailingZeros64(uint64(reserve)))
	size := reserveBytes(shift)
	root, err := s.Map(int(size), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		return nil, fmt.Errorf("slab: New: reserving %d bytes: %w", size, err)
	}
	g := newGeometry(root, ps, shift)
	if _, err := s.WriteAt(g.encodeHeader(), int64(root)); err != nil {
		s.Unmap(root, int(size))
		return nil, fmt.Errorf("slab: New: writing the header: %w", err)
	}
	registry.mu.Lock()
	st := newStateLocked(s, g)
	registry.mu.Unlock()
	return &Allocator{st: st}, nil
}

// Open returns the allocator whose root is root in s: in the space New made
// it in, in a Fork of that space, or in a space loaded from an image of it.
// It checks the header's magic, version and checksum and reads nothing
// else, so its cost does not grow with the blocks. If a handle on the same
// space and root is alive, the new one shares its state.
func Open(s *cow.Space, root cow.Addr) (*Allocator, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if st := lookupLocked(regKey{s, root}); st != nil {
		return &Allocator{st: st}, nil
	}
	ps := uint64(s.PageSize())
	if uint64(root)%ps != 0 {
		return nil, fmt.Errorf("%w: %#x is not page-aligned", ErrNotAllocator, uint64(root))
	}
	b := make([]byte, headerLen)
	if _, err := s.ReadAt(b, int64(root)); err != nil {
		if errors.Is(err, cow.ErrClosed) {
			return nil, fmt.Errorf("slab: Open: %w", err)
		}
		return nil, fmt.Errorf("%w at %#x: %w", ErrNotAllocator, uint64(root), err)
	}
	g, err := decodeHeader(b, root, ps)
	if err != nil {
		return nil, err
	}
	return &Allocator{st: newStateLocked(s, g)}, nil
}

// Root returns the address Open needs to find the allocator again: the
// start of its reservation. It is 0 for the zero Allocator.
func (h *Allocator) Root() cow.Addr {
	if h == nil || h.st == nil {
		return 0
	}
	return h.st.geo.root
}

// errZero is returned by every method of the zero Allocator.
var errZero = fmt.Errorf("%w: slab: the zero Allocator (use New or Open)", cow.ErrInvalid)

// Alloc returns a block of at least n bytes, 8-aligned (aligned to its size
// when that is a power of two up to the PMD size), that reads as zero. n must
// be positive (cow.ErrInvalid otherwise) and at most the largest block,
// Options.ClassReserve/8 (folio.ErrNoMemory otherwise).
func (h *Allocator) Alloc(n int) (cow.Addr, error) {
	if h == nil || h.st == nil {
		return 0, errZero
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: slab: Alloc(%d): the size must be positive", cow.ErrInvalid, n)
	}
	st := h.st
	if max := st.geo.maxSize(); uint64(n) > max {
		return 0, fmt.Errorf("%w: slab: Alloc(%d): larger than the largest block (%d bytes, Options.ClassReserve/8)",
			folio.ErrNoMemory, n, max)
	}
	c := &st.cls[classOf(uint64(n))]
	c.mu.Lock()
	addr, err := c.allocLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, wrap(err, "Alloc(%d)", n)
	}
	return addr, nil
}

// Free gives back the block at addr, which must be an address Alloc
// returned and not freed since: ErrNotBlock for any other address (outside
// the allocator, in its metadata, inside a block), ErrNotAllocated for a
// block that is free (a double free). A misuse changes nothing. The block's
// bytes are zeroed now; a block of eight pages or more gives its pages back
// to the arena instead.
func (h *Allocator) Free(addr cow.Addr) error {
	if h == nil || h.st == nil {
		return errZero
	}
	c, slab, bit, err := h.st.locate(addr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	err = c.freeLocked(addr, slab, bit)
	c.mu.Unlock()
	if err != nil {
		return wrap(err, "Free(%#x)", uint64(addr))
	}
	return nil
}

// Size returns the usable bytes of the allocated block at addr: its class's
// size, at least the n it was allocated with. Errors as for Free.
func (h *Allocator) Size(addr cow.Addr) (int, error) {
	if h == nil || h.st == nil {
		return 0, errZero
	}
	c, slab, bit, err := h.st.locate(addr)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	err = c.allocatedLocked(slab, bit)
	c.mu.Unlock()
	if err != nil {
		return 0, wrap(err, "Size(%#x)", uint64(addr))
	}
	return int(c.geo.size), nil
}

// Quiesce waits for the operations in flight to finish and holds new ones
// back until resume is called: between the two the allocator's state in
// the space is complete, with no operation half done. It is what
// snapshot.Options.Quiesce wants. A Fork needs it only to line the
// allocator up with the caller's own data; the allocator itself survives a
// Fork at any instant (see the package documentation). Until resume, every
// call of the allocator waits, the caller's included: call none in
// between. Calling resume more than once is a no-op.
//
// +checklocksignore: it locks every class, and resume unlocks them.
func (h *Allocator) Quiesce() (resume func()) {
	if h == nil || h.st == nil {
		return func() {}
	}
	cls := h.st.cls
	for i := range cls {
		cls[i].mu.Lock()
	}
	var once sync.Once
	return func() { once.Do(func() { unlockAll(cls) }) }
}

// unlockAll unlocks every class, in reverse order.
//
// +checklocksignore: Quiesce locked them.
func unlockAll(cls []classState) {
	for i := len(cls) - 1; i >= 0; i-- {
		cls[i].mu.Unlock()
	}
}

// locate returns the class, slab and bit of the block that starts at addr.
func (st *state) locate(addr cow.Addr) (c *classState, slab, bit uint64, err error) {
	g := &st.geo
	off := uint64(addr) - uint64(g.root)
	if addr < g.root || off >= g.reserve {
		return nil, 0, 0, fmt.Errorf("%w: %#x is outside the allocator at %#x", ErrNotBlock, uint64(addr), uint64(g.root))
	}
	area := off >> g.shift
	if area == 0 {
		return nil, 0, 0, fmt.Errorf("%w: %#x is in the header area of the allocator at %#x", ErrNotBlock, uint64(addr), uint64(g.root))
	}
	c = &st.cls[area-1]
	cg := &c.geo
	rel := uint64(addr - cg.area)
	chunk, in := rel>>cg.chunkShift, rel&(1<<cg.chunkShift-1)
	j := cg.bySize.div(in)
	if j >= cg.blocks {
		return nil, 0, 0, fmt.Errorf("%w: %#x is in the metadata of the %d-byte class", ErrNotBlock, uint64(addr), cg.size)
	}
	if j*cg.size != in {
		return nil, 0, 0, fmt.Errorf("%w: %#x is inside the %d-byte block at %#x", ErrNotBlock, uint64(addr), cg.size, uint64(addr)-(in-j*cg.size))
	}
	return c, chunk<<cg.perShift | j/slabBlocks, j % slabBlocks, nil
}
