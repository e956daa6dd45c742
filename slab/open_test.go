package slab

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// TestOpenShares: New then Open of its root in the same space share one
// state, so each sees the other's blocks at once; a Fork's Open does not.
func TestOpenShares(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	h2, err := Open(e.s, e.h.Root())
	if err != nil {
		t.Fatal(err)
	}
	if h2.st != e.h.st {
		t.Fatal("Open of a live allocator's root made a second state")
	}
	var ps []cow.Addr
	for i := range 200 {
		h := e.h
		if i%2 == 1 {
			h = h2
		}
		ps = append(ps, mustAlloc(t, h, 40))
	}
	seen := map[cow.Addr]bool{}
	for _, p := range ps {
		if seen[p] {
			t.Fatalf("two handles handed out %#x twice", uint64(p))
		}
		seen[p] = true
	}
	for i, p := range ps {
		h := h2
		if i%2 == 1 {
			h = e.h
		}
		mustFree(t, h, p)
	}
	c := e.Fork(e.s)
	hc, err := Open(c, e.h.Root())
	if err != nil {
		t.Fatal(err)
	}
	if hc.st == e.h.st {
		t.Fatal("Open in a Fork shares the parent's state")
	}
	check(t, hc)
}

// TestOpenGarbage: Open of something that is not an allocator, or of a
// damaged one, is a clear error and touches nothing.
func TestOpenGarbage(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	root := e.h.Root()
	user := e.Map(e.s, 1<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(e.s, user, pattern(3, 4096))
	p := mustAlloc(t, e.h, 64)

	for _, tc := range []struct {
		name string
		addr cow.Addr
		want error
	}{
		{"unmapped", 1 << 46, ErrNotAllocator},
		{"nil", 0, ErrNotAllocator},
		{"misaligned", root + 8, ErrNotAllocator},
		{"random bytes", user, ErrNotAllocator},
		{"zero page", user + 1<<19, ErrNotAllocator},
		{"a block", p &^ cow.Addr(e.s.PageSize()-1), ErrNotAllocator},
	} {
		if _, err := Open(e.s, tc.addr); !errors.Is(err, tc.want) {
			t.Errorf("Open(%s): %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Open(e.s, 1<<46); !errors.Is(err, cow.ErrFault) {
		t.Errorf("Open of an unmapped root should wrap cow.ErrFault: %v", err)
	}

	// Damage the header of a Fork's copy field by field.
	hdr := make([]byte, headerLen)
	if _, err := e.s.ReadAt(hdr, int64(root)); err != nil {
		t.Fatal(err)
	}
	reseal := func(b []byte) { binary.LittleEndian.PutUint32(b[56:], crc32.Checksum(b[:56], castagnoli)) }
	for _, tc := range []struct {
		name   string
		damage func(b []byte)
		want   error
	}{
		{"magic", func(b []byte) { b[0] ^= 1 }, ErrNotAllocator},
		{"a bit under the checksum", func(b []byte) { b[33] ^= 4 }, ErrCorrupt},
		{"the checksum", func(b []byte) { b[57] ^= 1 }, ErrCorrupt},
		{"version", func(b []byte) { b[8] = 2; reseal(b) }, ErrVersion},
		{"header length", func(b []byte) { b[12] = 48; reseal(b) }, ErrCorrupt},
		{"page size", func(b []byte) { binary.LittleEndian.PutUint32(b[16:], 1<<20); reseal(b) }, ErrCorrupt},
		{"class count", func(b []byte) { b[20]++; reseal(b) }, ErrCorrupt},
		{"reserve shift", func(b []byte) { b[24] = 60; reseal(b) }, ErrCorrupt},
		{"reserve shift in range, sizes not", func(b []byte) { b[24]++; reseal(b) }, ErrCorrupt},
		{"root", func(b []byte) { b[34]++; reseal(b) }, ErrCorrupt},
		{"byte order", func(b []byte) { b[48], b[55] = b[55], b[48]; reseal(b) }, ErrCorrupt},
	} {
		c := e.Fork(e.s)
		b := append([]byte(nil), hdr...)
		tc.damage(b)
		e.Write(c, root, b)
		if _, err := Open(c, root); !errors.Is(err, tc.want) {
			t.Errorf("Open with a damaged %s: %v, want %v", tc.name, err, tc.want)
		}
		c.Close()
	}
	// The original still opens, from scratch.
	forget(e.s, root)
	h, err := Open(e.s, root)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.Size(p); err != nil || n != 64 {
		t.Fatalf("Size after reopening: %d, %v", n, err)
	}
	e.h = h
}

// TestRegistryForgets: once no handle is left, the shared state goes and
// the registry forgets it; Open then reads the header again.
func TestRegistryForgets(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	p := mustAlloc(t, e.h, 64)
	root := e.h.Root()
	e.h = nil
	registered := func() bool {
		registry.mu.Lock()
		defer registry.mu.Unlock()
		_, ok := registry.m[regKey{e.s, root}]
		return ok
	}
	for deadline := time.Now().Add(10 * time.Second); registered(); {
		if time.Now().After(deadline) {
			t.Fatal("the registry still holds the state of an allocator with no handle")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	h, err := Open(e.s, root)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.Size(p); err != nil || n != 64 {
		t.Fatalf("Size after the state was collected: %d, %v", n, err)
	}
	e.h = h
}
