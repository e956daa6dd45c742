package model

import (
	"bytes"
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
)

const ps = 4096

const rw = cow.ProtRead | cow.ProtWrite

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// read reads n bytes at addr and fails on an error.
func read(t *testing.T, s *Space, addr cow.Addr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if k, err := s.ReadAt(b, int64(addr)); err != nil || k != n {
		t.Fatalf("ReadAt(%#x) = %d, %v", uint64(addr), k, err)
	}
	return b
}

func write(t *testing.T, s *Space, addr cow.Addr, b []byte) {
	t.Helper()
	if k, err := s.WriteAt(b, int64(addr)); err != nil || k != len(b) {
		t.Fatalf("WriteAt(%#x) = %d, %v", uint64(addr), k, err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

const base = cow.Addr(1 << 32)

func TestAccess(t *testing.T) {
	s := NewSpace(ps)
	must(t, s.MapFixed(base, 4*ps, rw))
	if b := read(t, s, base, 4*ps); !bytes.Equal(b, make([]byte, 4*ps)) {
		t.Fatal("fresh memory is not zero")
	}
	write(t, s, base+ps-2, []byte("abcd"))
	if b := read(t, s, base+ps-2, 4); string(b) != "abcd" {
		t.Fatalf("read %q across a page boundary", b)
	}
	must(t, s.Protect(base+ps, ps, cow.ProtRead))
	n, err := s.WriteAt([]byte("xyz"), int64(base+ps-1))
	wantErr(t, err, cow.ErrProtection)
	if n != 1 {
		t.Fatalf("wrote %d bytes before the read-only page, want 1", n)
	}
	must(t, s.Protect(base+2*ps, ps, cow.ProtNone))
	_, err = s.ReadAt(make([]byte, 1), int64(base+2*ps))
	wantErr(t, err, cow.ErrProtection)
	must(t, s.Protect(base+3*ps, ps, cow.ProtWrite))
	read(t, s, base+3*ps, 1) // a writable region is readable
	must(t, s.Unmap(base+3*ps, ps))
	_, err = s.ReadAt(make([]byte, 1), int64(base+3*ps))
	wantErr(t, err, cow.ErrFault)
	wantErr(t, s.Protect(base, 4*ps, rw), cow.ErrFault)
	wantErr(t, s.Unmap(base+1, ps), cow.ErrInvalid)
	wantErr(t, s.MapFixed(base, ps, cow.Prot(8)), cow.ErrInvalid)
	wantErr(t, s.Advise(base, ps, cow.Advice(0)), cow.ErrInvalid)
	must(t, s.Advise(base, ps, cow.DontNeed))
	if b := read(t, s, base+ps-2, 2); !bytes.Equal(b, []byte{0, 0}) {
		t.Fatalf("read %q after DontNeed", b)
	}
	must(t, s.Close())
	must(t, s.Close())
	_, err = s.ReadAt(make([]byte, 1), int64(base))
	wantErr(t, err, cow.ErrClosed)
	wantErr(t, s.CheckMap(ps, rw), cow.ErrClosed)
}

func TestFork(t *testing.T) {
	s := NewSpace(ps)
	must(t, s.MapFixed(base, 3*ps, rw))
	write(t, s, base, bytes.Repeat([]byte("p"), 3*ps))
	must(t, s.Advise(base+ps, ps, cow.DontFork))
	must(t, s.Advise(base+2*ps, ps, cow.WipeOnFork))
	c, err := s.Fork()
	must(t, err)
	if b := read(t, c, base, 1); string(b) != "p" {
		t.Fatalf("child reads %q", b)
	}
	_, err = c.ReadAt(make([]byte, 1), int64(base+ps))
	wantErr(t, err, cow.ErrFault)
	if b := read(t, c, base+2*ps, 1); b[0] != 0 {
		t.Fatalf("wiped page reads %q", b)
	}
	write(t, c, base, []byte("c"))
	if b := read(t, s, base, 1); string(b) != "p" {
		t.Fatal("the child's write is seen by the parent")
	}
	must(t, s.Advise(base+ps, 2*ps, cow.DoFork))
	must(t, s.Advise(base+ps, 2*ps, cow.KeepOnFork))
	c2, err := s.Fork()
	must(t, err)
	if b := read(t, c2, base+ps, 2*ps); !bytes.Equal(b, bytes.Repeat([]byte("p"), 2*ps)) {
		t.Fatal("DoFork and KeepOnFork did not undo the advice")
	}
}

func TestRemap(t *testing.T) {
	s := NewSpace(ps)
	must(t, s.MapFixed(base, 2*ps, rw))
	write(t, s, base, []byte("ab"))
	wantErr(t, s.Remap(base, 2*ps, base+ps), cow.ErrInvalid) // overlap
	must(t, s.Protect(base+ps, ps, cow.ProtRead))
	wantErr(t, s.Remap(base, 2*ps, base+8*ps), cow.ErrFault) // two regions
	must(t, s.Remap(base, ps, base+8*ps))
	if b := read(t, s, base+8*ps, 2); string(b) != "ab" {
		t.Fatalf("moved page reads %q", b)
	}
	_, err := s.ReadAt(make([]byte, 1), int64(base))
	wantErr(t, err, cow.ErrFault)
}

// TestPins: a pin holds pages, which stay the parent's across Fork, follow
// Remap and keep their contents when the space drops them.
func TestPins(t *testing.T) {
	s := NewSpace(ps)
	must(t, s.MapFixed(base, 2*ps, rw))
	p, err := s.Take(base+ps-1, 2, pin.Write, true)
	must(t, err)
	p.WriteAt([]byte("xy"), 0)
	if b := read(t, s, base+ps-1, 2); string(b) != "xy" {
		t.Fatalf("the space reads %q after a write through the pin", b)
	}
	c, err := s.Fork()
	must(t, err)
	p.WriteAt([]byte("z"), 1)
	if b := read(t, c, base+ps, 1); string(b) != "y" {
		t.Fatalf("the child reads %q: a write through the parent's pin after the fork", b)
	}
	write(t, s, base+ps-1, []byte("w"))
	if string(p.Bytes()) != "wz" {
		t.Fatalf("the pin reads %q after a write through the space", p.Bytes())
	}
	must(t, s.Remap(base+ps, ps, base+4*ps))
	p.WriteAt([]byte("m"), 1)
	if b := read(t, s, base+4*ps, 1); string(b) != "m" {
		t.Fatalf("the moved page reads %q", b)
	}
	must(t, s.Advise(base, ps, cow.DontNeed))
	must(t, s.Close())
	if string(p.Bytes()) != "wm" {
		t.Fatalf("the pin reads %q after DontNeed and Close", p.Bytes())
	}
	_, err = s.Take(base, 1, 0, true)
	wantErr(t, err, cow.ErrClosed)
}

func TestTakeErrors(t *testing.T) {
	s := NewSpace(ps)
	must(t, s.MapFixed(base, 2*ps, cow.ProtRead))
	_, err := s.Take(base, ps+1, pin.Write, true)
	wantErr(t, err, cow.ErrProtection)
	_, err = s.Take(base+ps, ps+1, 0, false)
	wantErr(t, err, cow.ErrFault)
	_, err = s.Take(base, 0, 0, true)
	wantErr(t, err, cow.ErrInvalid)
	g, err := s.Take(base, ps, 0, false)
	must(t, err)
	if !bytes.Equal(g.Bytes(), make([]byte, ps)) {
		t.Fatal("a Get of unpopulated memory is not zero")
	}
}
