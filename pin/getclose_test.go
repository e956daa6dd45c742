package pin

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestGetBeforeForkOneSideCloses is cow.c's "vmsplice() before fork(), unmap
// in parent", with exit in place of munmap, in both directions. A Get taken
// before a Fork holds the page as it was at the Fork: on-demand fork shares
// the leaf without write-protecting it, and when one side closes the leaf
// goes back to the other alone; its next write must copy (the reference
// outnumbers the mappings), not land in place under the Get.
func TestGetBeforeForkOneSideCloses(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		for _, closer := range []string{"parent", "child"} {
			t.Run(fmt.Sprintf("%s/%s closes", cfg.Name, closer), func(t *testing.T) {
				e := spacetest.New(t, 32<<20, page)
				s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
				const size = 2 << 20
				addr := e.Map(s, size, cow.ProtRead|cow.ProtWrite)
				before := spacetest.Pattern('a', size, page)
				e.Write(s, addr, before)
				g, err := Get(s, addr, size, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Release()
				c := e.Fork(s)
				gone, writer := s, c
				if closer == "child" {
					gone, writer = c, s
				}
				if err := gone.Close(); err != nil {
					t.Fatal(err)
				}
				e.Write(writer, addr, spacetest.Pattern('A', size, page))
				if got := spacetest.Join(g.Bytes()); !bytes.Equal(got, before) {
					i := 0
					for got[i] == before[i] {
						i++
					}
					t.Fatalf("the Get reads %q at byte %d, written by the %s after the Fork; want %q",
						got[i:i+1], i, map[bool]string{true: "child", false: "parent"}[writer == c], before[i:i+1])
				}
				e.Check()
			})
		}
	}
}

// TestZeroPageGetKeepsArenaOpen: a read-only Get of a page never written
// holds the shared zero page, which has no folio and so no refcount; the
// arena must still refuse to close (and unmap it) until the Get is
// released, or reading it afterwards faults the whole process.
func TestZeroPageGetKeepsArenaOpen(t *testing.T) {
	a, err := folio.NewArena(folio.Config{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Get(s, addr, page, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = a.Close()
	if !errors.Is(err, folio.ErrBusy) {
		t.Fatalf("Arena.Close with a Get of the zero page held: %v, want ErrBusy", err)
	}
	if !strings.Contains(err.Error(), "zero page") {
		t.Errorf("ErrBusy does not say what holds the arena: %v", err)
	}
	if got := spacetest.Join(g.Bytes()); !bytes.Equal(got, make([]byte, page)) {
		t.Fatalf("the Get reads %q…, want zeros", spacetest.Head(got))
	}
	g.Release()
	if err := a.Close(); err != nil {
		t.Fatalf("Arena.Close after the Release: %v", err)
	}
}

// TestFastOnlyClosedSpace: FastOnly on a closed space is ErrClosed, as the
// slow path says, not ErrFastFailed (which invites a retry that can never
// succeed).
func TestFastOnlyClosedSpace(t *testing.T) {
	e := spacetest.New(t, 8<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, []byte("x"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, take := range []func(*cow.Space, cow.Addr, int, Flags) (*Pages, error){Pin, Get} {
		if p, err := take(s, addr, page, FastOnly); !errors.Is(err, cow.ErrClosed) || p != nil {
			t.Errorf("FastOnly on a closed space: %v, %v; want ErrClosed", p, err)
		}
	}
}

// TestString: Pages print as one line, before and after Release.
func TestString(t *testing.T) {
	e := spacetest.New(t, 8<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 1<<20, cow.ProtRead|cow.ProtWrite)
	p, err := Pin(s, addr, 3*page, Write|Longterm)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pin.Pages(Pin of %#x+%d in 1 contiguous pieces, flags Write|Longterm)", uint64(addr), 3*page)
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	p.Release()
	if got := p.String(); !strings.HasSuffix(got, "released)") {
		t.Errorf("String() after Release = %q", got)
	}
	if got := (*Pages)(nil).String(); got != "pin.Pages(nil)" {
		t.Errorf("nil String() = %q", got)
	}
}
