package pin

import (
	"errors"
	"fmt"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// TestPagesValue: a Pages value takes ranges one after the other, Pin or
// Get, and holds exactly what the functions Pin and Get would: the bytes
// of the range, writes seen both ways for a pin, the pins and references
// counted, nothing once released. A Pages that still holds pages refuses
// to take others and keeps its own; a failed take leaves it empty.
func TestPagesValue(t *testing.T) {
	e := spacetest.New(t, 16<<20, 0)
	s := e.Space(cow.Options{Orders: cow.Orders(4)})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('v', 2<<20))

	var p Pages
	if p.Bytes() != nil || p.String() != "pin.Pages(empty)" {
		t.Fatalf("a zero Pages: Bytes %v, %v", p.Bytes(), &p)
	}
	p.Release() // a no-op on a zero Pages
	for round, c := range []struct {
		off, length int
		get         bool
	}{
		{100, 10, false},             // within one page
		{page - 3, 7, true},          // across two pages of one folio
		{15 * page, 2 * page, false}, // across two folios
		{0, 40 * page, false},        // two folios and a half
		{5, 1, true},
	} {
		var err error
		if c.get {
			err = p.Get(s, addr+cow.Addr(c.off), c.length, 0)
		} else {
			err = p.Pin(s, addr+cow.Addr(c.off), c.length, Write)
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := 0
		for _, b := range p.Bytes() {
			for _, x := range b {
				if x != 'v' {
					t.Fatalf("round %d: read %q through the pages", round, x)
				}
			}
			got += len(b)
		}
		if got != c.length {
			t.Fatalf("round %d: %d bytes in %d pieces, want %d", round, got, len(p.Bytes()), c.length)
		}
		pages := int64((c.off+c.length-1)/page - c.off/page + 1)
		if c.get {
			ledgerIs(t, e, 0, pages)
		} else {
			ledgerIs(t, e, pages, 0)
			writeThrough(&p, 0, []byte("W"))
			e.Expect(s, addr+cow.Addr(c.off), []byte("W"))
			e.Write(s, addr+cow.Addr(c.off), []byte("v"))
		}
		if err := p.Pin(s, addr, page, 0); !errors.Is(err, cow.ErrInvalid) || p.Bytes() == nil {
			t.Fatalf("round %d: a Pin into Pages that hold pages: %v, Bytes %d pieces", round, err, len(p.Bytes()))
		}
		if err := cow.Check(s); err != nil {
			t.Fatal(err)
		}
		p.Release()
		p.Release()
		ledgerIs(t, e, 0, 0)
		if p.Bytes() != nil {
			t.Fatalf("round %d: Bytes after Release", round)
		}
	}
	if err := p.Pin(s, addr+4<<20, page, 0); !errors.Is(err, cow.ErrFault) || p.Bytes() != nil {
		t.Fatalf("a Pin outside every region: %v, Bytes %v", err, p.Bytes())
	}
	ledgerIs(t, e, 0, 0)
	if err := p.Pin(s, addr, page, 0); err != nil {
		t.Fatalf("a Pin after a failed one: %v", err)
	}
	p.Release()
}

// TestPinAllocations: a Pages value reused for Pin and Release, or Get
// and Release, allocates nothing, on the fast path and the slow one, for
// a page, a contpte folio, a huge entry, and a range of 16 order-0 folios
// (once a first round sized its arrays). Race and invariants builds
// register every Pages in a map, which allocates: the count is the
// default build's (see alloc_test.go).
func TestPinAllocations(t *testing.T) {
	if !allocFree {
		t.Skip("race and invariants builds register every Pages (a map insert): -race allocates by design")
	}
	for _, fs := range folioSizes {
		for _, m := range pinModes {
			t.Run(fmt.Sprintf("%s/%s", fs.name, m.name), func(t *testing.T) {
				s, addr, n := benchSpace(t, fs.order)
				var p Pages
				take := m.cycle(t, &p, s, addr, n)
				take() // sizes the arrays
				if allocs := testing.AllocsPerRun(200, take); allocs != 0 {
					t.Fatalf("%.1f allocations per take and release of a reused Pages", allocs)
				}
			})
		}
	}
	t.Run("16 folios", func(t *testing.T) {
		e := spacetest.New(t, 16<<20, 0)
		s := e.Space(cow.Options{Orders: cow.Orders()})
		addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
		e.Write(s, addr, spacetest.Fill('x', 16*page))
		var p Pages
		take := func() {
			if err := p.Pin(s, addr+1, 16*page-2, Write); err != nil {
				t.Fatal(err)
			}
			p.Release()
		}
		take()
		if allocs := testing.AllocsPerRun(200, take); allocs != 0 {
			t.Fatalf("%.1f allocations per take and release of 16 folios", allocs)
		}
	})
}
