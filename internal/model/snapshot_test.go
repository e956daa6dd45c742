package model

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/pin"
	"github.com/anonfolio/anonfolio/snapshot"
)

func TestResetTo(t *testing.T) {
	s, snap := NewSpace(ps), NewSpace(ps)
	must(t, snap.MapFixed(base, 2*ps, rw))
	write(t, snap, base, []byte("snap"))
	must(t, snap.Advise(base+ps, ps, cow.DontFork))
	must(t, s.MapFixed(base+4*ps, ps, rw))
	write(t, s, base+4*ps, []byte("mine"))
	p, err := s.Take(base+4*ps, ps, pin.Write, true)
	must(t, err)

	must(t, s.ResetTo(snap))
	if got := read(t, s, base, 4); string(got) != "snap" {
		t.Fatalf("after ResetTo s reads %q", got)
	}
	if _, err := s.ReadAt(make([]byte, 1), int64(base+4*ps)); !errors.Is(err, cow.ErrFault) {
		t.Fatalf("s still maps its old page: %v", err)
	}
	if !bytes.HasPrefix(p.Bytes(), []byte("mine")) {
		t.Fatal("the pin lost its page")
	}
	want := []cow.Region{{Addr: base, Length: ps, Prot: rw}, {Addr: base + ps, Length: ps, Prot: rw, DontFork: true}}
	if got := s.Regions(); !slices.Equal(got, want) {
		t.Fatalf("Regions() = %v, want %v", got, want)
	}
	write(t, s, base, []byte("S"))
	if got := read(t, snap, base, 1); string(got) != "s" {
		t.Fatal("a write after ResetTo reached the snapshot")
	}
	wantErr(t, s.ResetTo(nil), cow.ErrInvalid)
	must(t, s.ResetTo(s))
	snap.Close()
	wantErr(t, s.ResetTo(snap), cow.ErrClosed)
}

func TestCheckSave(t *testing.T) {
	s := NewSpace(ps)
	wantErr(t, s.CheckSave(true), snapshot.ErrNoBase)
	must(t, s.CheckSave(false))
	s.Saved()
	c, _ := s.Fork()
	must(t, c.CheckSave(true))
	r := NewSpace(ps)
	must(t, r.ResetTo(c))
	must(t, r.CheckSave(true))
	r.Close()
	wantErr(t, r.CheckSave(false), cow.ErrClosed)
}
