package slab

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// env is one test's arena, space and allocator. When the test ends the
// allocator is checked, then spacetest checks the spaces and counts every
// page back.
type env struct {
	*spacetest.Env
	s *cow.Space
	h *Allocator
}

func newEnv(t testing.TB, arena int64, opts cow.Options, sopts Options) *env {
	t.Helper()
	e := &env{Env: spacetest.New(t, arena, 0)}
	e.s = e.Space(opts)
	h, err := New(e.s, sopts)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	t.Cleanup(func() {
		if !t.Failed() && e.h != nil {
			check(t, e.h)
		}
	})
	return e
}

// check runs Check, after making sure that no class was left busy: outside
// a Fork's cut, every list change finishes (so no repair is ever needed).
func check(t testing.TB, h *Allocator) {
	t.Helper()
	a := newAccessor(h.st.s)
	for i := range h.st.cls {
		cg := &h.st.cls[i].geo
		if _, ok := h.st.s.Pagemap(cg.word); !ok {
			continue
		}
		if w, err := a.LoadUint64(cg.word); err == nil && w&busyBit != 0 {
			t.Fatalf("the %d-byte class was left busy (word %#x)", cg.size, w)
		}
	}
	if err := h.Check(); err != nil {
		t.Fatal(err)
	}
}

func mustAlloc(t testing.TB, h *Allocator, n int) cow.Addr {
	t.Helper()
	p, err := h.Alloc(n)
	if err != nil {
		t.Fatalf("Alloc(%d): %v", n, err)
	}
	return p
}

func mustFree(t testing.TB, h *Allocator, p cow.Addr) {
	t.Helper()
	if err := h.Free(p); err != nil {
		t.Fatalf("Free(%#x): %v", uint64(p), err)
	}
}

// pattern returns n bytes that depend on seed, never all zero.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	var w [8]byte
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(w[:], seed*0x9e3779b97f4a7c15+uint64(i)|1)
		copy(b[i:], w[:])
	}
	return b
}

// expectZero fails unless n bytes at p read zero.
func expectZero(t testing.TB, s *cow.Space, p cow.Addr, n int) {
	t.Helper()
	b := make([]byte, n)
	if _, err := s.ReadAt(b, int64(p)); err != nil {
		t.Fatalf("ReadAt(%#x, %d): %v", uint64(p), n, err)
	}
	if i := firstNonZero(b); i >= 0 {
		t.Fatalf("block at %#x reads %#x at +%d, want zero", uint64(p), b[i], i)
	}
}

// firstNonZero returns the index of the first byte of b that is not zero,
// or -1.
func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// randSize draws a request size: mostly small, some of a few KiB, a few
// large ones (up to maxLarge).
func randSize(r *rand.Rand, maxLarge int) int {
	switch x := r.IntN(100); {
	case x < 60:
		return 1 + r.IntN(256)
	case x < 90:
		return 257 + r.IntN(8<<10)
	case x < 98:
		return 8<<10 + r.IntN(56<<10)
	default:
		return 1 + r.IntN(maxLarge)
	}
}

// forget drops the registry's entry for (s, root), so that the next Open
// reads the header again as a fresh process would.
func forget(s *cow.Space, root cow.Addr) {
	registry.mu.Lock()
	delete(registry.m, regKey{s, root})
	registry.mu.Unlock()
}
