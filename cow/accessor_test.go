package cow_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

func newSpace(t *testing.T) (*folio.Arena, *cow.Space, cow.Addr) {
	t.Helper()
	a, err := folio.NewArena(folio.Config{Size: 16 << 20, PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Map(2<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	return a, s, addr
}

// TestAccessorSemantics pins down what users rely on: the Space's errors,
// ErrInvalid for a misaligned word, native byte order, ErrClosed after
// Close (a second Close is nil), an Accessor of a closed space, and an
// arena that will not close while an Accessor is open.
func TestAccessorSemantics(t *testing.T) {
	a, s, addr := newSpace(t)
	acc := s.NewAccessor()
	if err := acc.StoreUint64(addr, 0x0102030405060708); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if _, err := s.ReadAt(b, int64(addr)); err != nil || binary.NativeEndian.Uint64(b) != 0x0102030405060708 {
		t.Fatalf("the word reads back as % x, %v: not in native byte order", b, err)
	}
	if v, err := acc.AddUint64(addr, 1); err != nil || v != 0x0102030405060709 {
		t.Fatalf("AddUint64 = %#x, %v", v, err)
	}
	if ok, err := acc.CompareAndSwapUint64(addr, 1, 2); ok || err != nil {
		t.Fatalf("a CAS that does not match: %v, %v", ok, err)
	}
	if ok, err := acc.CompareAndSwapUint64(addr, 0x0102030405060709, 7); !ok || err != nil {
		t.Fatalf("a CAS that matches: %v, %v", ok, err)
	}
	for _, bad := range []cow.Addr{addr + 1, addr + 4, addr + 7} {
		if _, err := acc.LoadUint64(bad); !errors.Is(err, cow.ErrInvalid) {
			t.Errorf("LoadUint64 at misaligned %#x: %v, want ErrInvalid", uint64(bad), err)
		}
		if err := acc.StoreUint64(bad, 1); !errors.Is(err, cow.ErrInvalid) {
			t.Errorf("StoreUint64 at misaligned %#x: %v, want ErrInvalid", uint64(bad), err)
		}
	}
	if _, err := acc.LoadUint64(addr + 4<<20); !errors.Is(err, cow.ErrFault) {
		t.Errorf("LoadUint64 outside every region: %v, want ErrFault", err)
	}
	if _, err := acc.ReadAt(b, int64(addr+4<<20)); !errors.Is(err, cow.ErrFault) {
		t.Errorf("ReadAt outside every region: %v, want ErrFault", err)
	}
	warm := s.NewAccessor() // left open: it must not keep the arena mapped
	if _, err := warm.LoadUint64(addr); err != nil {
		t.Fatal(err)
	}
	if err := acc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := acc.Close(); err != nil {
		t.Errorf("a second Close: %v, want nil", err)
	}
	if _, err := acc.LoadUint64(addr); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("LoadUint64 after Close: %v, want ErrClosed", err)
	}
	if _, err := acc.WriteAt(b, int64(addr)); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("WriteAt after Close: %v, want ErrClosed", err)
	}
	s.Close()
	late := s.NewAccessor()
	if _, err := late.LoadUint64(addr); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("an Accessor of a closed space: %v, want ErrClosed", err)
	}
	late.Close()
	if err := a.Close(); err != nil {
		t.Errorf("Arena.Close once its spaces are closed, an Accessor still open: %v", err)
	}
	// The open Accessor's TLB still maps addr: it must see the space
	// closed rather than touch memory the arena has unmapped.
	if _, err := warm.LoadUint64(addr); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("LoadUint64 through an open Accessor of a closed space: %v, want ErrClosed", err)
	}
	if err := warm.StoreUint64(addr, 1); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("StoreUint64 through an open Accessor of a closed space: %v, want ErrClosed", err)
	}
	if _, err := warm.ReadAt(b, int64(addr)); !errors.Is(err, cow.ErrClosed) {
		t.Errorf("ReadAt through an open Accessor of a closed space: %v, want ErrClosed", err)
	}
	warm.Close()
}

// TestAccessorAllocatesNothing: a call through a warm Accessor allocates
// no Go memory.
func TestAccessorAllocatesNothing(t *testing.T) {
	a, s, addr := newSpace(t)
	defer a.Close()
	defer s.Close()
	acc := s.NewAccessor()
	defer acc.Close()
	buf := make([]byte, 64)
	acc.WriteAt(buf, int64(addr)) // fault the page in
	calls := map[string]func(){
		"LoadUint64":           func() { acc.LoadUint64(addr) },
		"StoreUint64":          func() { acc.StoreUint64(addr, 1) },
		"AddUint64":            func() { acc.AddUint64(addr, 1) },
		"CompareAndSwapUint64": func() { acc.CompareAndSwapUint64(addr, 1, 2) },
		"ReadAt":               func() { acc.ReadAt(buf, int64(addr)) },
		"WriteAt":              func() { acc.WriteAt(buf, int64(addr)) },
		"Space.ReadAt":         func() { s.ReadAt(buf, int64(addr)) },
		"Space.WriteAt":        func() { s.WriteAt(buf, int64(addr)) },
	}
	for name, call := range calls {
		if n := testing.AllocsPerRun(100, call); n != 0 {
			t.Errorf("%s allocates %.1f times per call", name, n)
		}
	}
}

// TestZeroAccessor: an Accessor that NewAccessor did not make (the zero
// value, new(cow.Accessor)) reports ErrInvalid from every method, the
// address that wraps the TLB key (-1) included; it never crashes.
func TestZeroAccessor(t *testing.T) {
	a := new(cow.Accessor)
	b := make([]byte, 8)
	for _, off := range []int64{0, 4096, -1, -8} {
		if _, err := a.ReadAt(b[:1], off); !errors.Is(err, cow.ErrInvalid) {
			t.Errorf("ReadAt at %d: %v", off, err)
		}
		if _, err := a.WriteAt(b[:1], off); !errors.Is(err, cow.ErrInvalid) {
			t.Errorf("WriteAt at %d: %v", off, err)
		}
	}
	if _, err := a.LoadUint64(8); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("LoadUint64: %v", err)
	}
	if err := a.StoreUint64(8, 1); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("StoreUint64: %v", err)
	}
	if _, err := a.AddUint64(8, 1); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("AddUint64: %v", err)
	}
	if _, err := a.CompareAndSwapUint64(8, 0, 1); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("CompareAndSwapUint64: %v", err)
	}
	if err := a.View(0, 8, false, func([]byte) error { return nil }); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("View: %v", err)
	}
	if err := a.Close(); !errors.Is(err, cow.ErrInvalid) {
		t.Errorf("Close: %v", err)
	}
}
