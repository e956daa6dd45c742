package slab

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// TestMisuse: every misuse returns its sentinel, changes nothing, and
// leaves the other blocks' contents and the allocator whole.
func TestMisuse(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	h := e.h
	keep := mustAlloc(t, h, 100)
	e.Write(e.s, keep, pattern(7, 100))
	p := mustAlloc(t, h, 64)
	big := mustAlloc(t, h, 100<<10)
	freed := mustAlloc(t, h, 64)
	mustFree(t, h, freed)
	user := e.Map(e.s, 1<<20, cow.ProtRead|cow.ProtWrite)
	other, err := New(e.s, Options{ClassReserve: minClassReserve})
	if err != nil {
		t.Fatal(err)
	}
	foreign := mustAlloc(t, other, 64)
	cg := &h.st.cls[classOf(64)].geo
	before, _ := h.Stats()

	for _, n := range []int{0, -1, -1 << 62} {
		if _, err := h.Alloc(n); !errors.Is(err, cow.ErrInvalid) {
			t.Errorf("Alloc(%d): %v, want cow.ErrInvalid", n, err)
		}
	}
	if _, err := h.Alloc(1 << 62); !errors.Is(err, folio.ErrNoMemory) {
		t.Errorf("Alloc(1<<62): %v, want folio.ErrNoMemory", err)
	}
	bad := []struct {
		name string
		addr cow.Addr
		want error
	}{
		{"double free", freed, ErrNotAllocated},
		{"never handed out", p + 64*10, ErrNotAllocated},
		{"interior", p + 8, ErrNotBlock},
		{"interior of a large block", big + cow.Addr(e.s.PageSize()), ErrNotBlock},
		{"nil", 0, ErrNotBlock},
		{"root", h.Root(), ErrNotBlock},
		{"header area", h.Root() + 4096, ErrNotBlock},
		{"class word", cg.word, ErrNotBlock},
		{"descriptor", cg.slabDesc(0), ErrNotBlock},
		{"past the reservation", h.Root() + cow.Addr(h.st.geo.reserve), ErrNotBlock},
		{"below the reservation", h.Root() - 8, ErrNotBlock},
		{"a user region", user, ErrNotBlock},
		{"another allocator's block", foreign, ErrNotBlock},
		{"the top of the address space", ^cow.Addr(0) &^ 7, ErrNotBlock},
	}
	for _, b := range bad {
		if err := h.Free(b.addr); !errors.Is(err, b.want) {
			t.Errorf("Free(%s %#x): %v, want %v", b.name, uint64(b.addr), err, b.want)
		}
		if _, err := h.Size(b.addr); !errors.Is(err, b.want) {
			t.Errorf("Size(%s %#x): %v, want %v", b.name, uint64(b.addr), err, b.want)
		}
	}
	e.Expect(e.s, keep, pattern(7, 100))
	if after, _ := h.Stats(); after.Blocks != before.Blocks || after.InUse != before.InUse {
		t.Errorf("misuse changed the stats: %+v, then %+v", before, after)
	}
	check(t, h)
	check(t, other)

	var zero Allocator
	if _, err := zero.Alloc(8); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("zero Allocator Alloc: %v", err)
	}
	if err := zero.Free(p); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("zero Allocator Free: %v", err)
	}
	if zero.Root() != 0 {
		t.Errorf("zero Allocator Root = %#x", uint64(zero.Root()))
	}
	if _, err := New(e.s, Options{ClassReserve: 3 << 20}); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("New with ClassReserve 3 MiB: %v, want cow.ErrInvalid", err)
	}
}

// TestClosedSpace: an allocator whose space is closed reports cow.ErrClosed.
func TestClosedSpace(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	h, s := e.h, e.s
	p := mustAlloc(t, h, 64)
	root := h.Root()
	s.Close()
	if _, err := h.Alloc(64); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Alloc on a closed space: %v", err)
	}
	if err := h.Free(p); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Free on a closed space: %v", err)
	}
	if _, err := h.Size(p); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Size on a closed space: %v", err)
	}
	if err := h.Check(); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Check on a closed space: %v", err)
	}
	if _, err := h.Stats(); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Stats on a closed space: %v", err)
	}
	forget(s, root)
	if _, err := Open(s, root); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("Open on a closed space: %v", err)
	}
	if _, err := New(s, Options{}); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("New on a closed space: %v", err)
	}
	e.h = nil
}

// TestDamagedMetadata: metadata overwritten by a stray write is reported
// as ErrCorrupt by the operations that meet it and by Check; nothing
// panics.
func TestDamagedMetadata(t *testing.T) {
	put := func(e *env, addr cow.Addr, v uint64) {
		t.Helper()
		if err := newAccessor(e.s).StoreUint64(addr, v); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		break_ func(e *env, cg *classGeo)
	}{
		{"slab count past the area", func(e *env, cg *classGeo) { put(e, cg.word, classWord(1, cg.slabLimit+1)) }},
		{"head past the slabs", func(e *env, cg *classGeo) { put(e, cg.word, classWord(5, 2)) }},
		{"full slab at the head", func(e *env, cg *classGeo) { put(e, cg.slabDesc(1), full) }},
		{"link past the slabs", func(e *env, cg *classGeo) { put(e, cg.slabDesc(1)+8, 9) }},
		{"cycle", func(e *env, cg *classGeo) { put(e, cg.slabDesc(1)+8, 2) }},
		{"tail bits not reserved", func(e *env, cg *classGeo) {
			put(e, cg.slabDesc(cg.perChunk-1), 0)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 16<<20, cow.Options{}, Options{})
			// 48-byte blocks: slabs 0 and 1, slab 0 full, slab 1 partial.
			var ps []cow.Addr
			for range 70 {
				ps = append(ps, mustAlloc(t, e.h, 48))
			}
			cg := &e.h.st.cls[classOf(48)].geo
			if tc.name == "tail bits not reserved" {
				// Carve the whole first chunk, so its short last slab exists.
				for range cg.blocks - 70 {
					ps = append(ps, mustAlloc(t, e.h, 48))
				}
			}
			tc.break_(e, cg)
			if err := e.h.Check(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
			for range 3 {
				if _, err := e.h.Alloc(48); err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Alloc: %v, want ErrCorrupt or success", err)
				}
				if err := e.h.Free(ps[0]); err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotAllocated) {
					t.Fatalf("Free: %v", err)
				}
			}
			if _, err := e.h.Stats(); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Stats: %v", err)
			}
			e.h = nil // no Check at the end: the state is damaged on purpose
		})
	}
}

// TestCheckUseAfterFree: a write into a freed block breaks the promise that
// blocks read zero when handed out; Check finds it.
func TestCheckUseAfterFree(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	p := mustAlloc(t, e.h, 200)
	q := mustAlloc(t, e.h, 200)
	mustFree(t, e.h, p)
	check(t, e.h)
	e.Write(e.s, p+100, []byte{1})
	if err := e.h.Check(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Check after a write into a freed block: %v, want ErrCorrupt", err)
	}
	e.Write(e.s, p+100, []byte{0})
	mustFree(t, e.h, q)
}
