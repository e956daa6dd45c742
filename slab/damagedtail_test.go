package slab

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
)

// TestAllocDamagedTail: a chunk's last slab is short, and the bits of
// its bitmap past the chunk's blocks are reserved (set for good). Metadata
// damaged so that they read clear (a stray write) must be ErrCorrupt at the
// Alloc that meets it, as the package doc promises, not an "allocated"
// address past the chunk's blocks, in the slab descriptors and the class
// word: the caller's writes into that block would overwrite the
// allocator's own metadata, and neither Free nor Size accepts it.
func TestAllocDamagedTail(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	const size = 48
	cg := &e.h.st.cls[classOf(size)].geo
	last := cg.perChunk - 1 // chunk 0's last slab
	rsv := cg.reserved(last)
	if rsv == 0 {
		t.Fatalf("the %d-byte class's chunk has no short last slab: pick another class", size)
	}
	a := newAccessor(e.s)
	defer a.Close()
	// The last slab heads the partial list, its existing blocks all
	// allocated, its tail bits damaged to read free.
	if err := a.StoreUint64(cg.slabDesc(last), ^rsv); err != nil {
		t.Fatal(err)
	}
	if err := a.StoreUint64(cg.word, classWord(last+1, last+1)); err != nil {
		t.Fatal(err)
	}
	h := e.h
	p, err := h.Alloc(size)
	e.h = nil // damaged on purpose: no Check at the end
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Alloc over a damaged bitmap: %v, want ErrCorrupt", err)
		}
		return
	}
	metadata := uint64(cg.chunk(0)) + cg.meta
	if uint64(p)+size > metadata {
		t.Errorf("Alloc over a damaged bitmap returned %#x, whose %d bytes run into the metadata at %#x (class word %#x)",
			uint64(p), size, metadata, uint64(cg.word))
	}
	if _, err := h.Size(p); err != nil {
		t.Errorf("Size of the block Alloc just returned: %v", err)
	}
}
