package pin

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

const page = 4096

// ledgerIs checks the pins and plain references outstanding (the ledger in
// race and invariants builds, the folios' counts in the default build).
func ledgerIs(t *testing.T, e *spacetest.Env, pins, gets int64) {
	t.Helper()
	if p, g, _ := engine(e.A).Outstanding(); p != pins || g != gets {
		t.Fatalf("ledger: %d pins, %d gets outstanding; want %d and %d", p, g, pins, gets)
	}
}

// TestCoherence is the matrix of issue 4: read-only and read-write pins,
// longterm or not, taken by the fast or the slow path, before or after a
// Fork, with the child alive or closed, for every folio configuration.
// Writes through the space are seen through the pin and, for read-write
// pins, the other way round; the child never sees the pinner's writes and
// the pin never sees the child's.
func TestCoherence(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		for _, flags := range []Flags{0, Write, Longterm, Write | Longterm} {
			for _, path := range []string{"fast", "slow"} {
				for _, when := range []string{"beforeFork", "afterFork"} {
					for _, child := range []string{"alive", "closed"} {
						if when == "afterFork" && path == "fast" {
							continue // a page shared by a fork needs the slow path
						}
						name := fmt.Sprintf("%s/flags%d/%s/%s/child-%s", cfg.Name, flags, path, when, child)
						t.Run(name, func(t *testing.T) { coherence(t, cfg, flags, path, when, child) })
					}
				}
			}
		}
	}
}

func coherence(t *testing.T, cfg spacetest.Config, flags Flags, path, when, child string) {
	e := spacetest.New(t, 32<<20, page)
	s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
	const size = 2 << 20
	addr := e.Map(s, 2*size, cow.ProtRead|cow.ProtWrite)
	orig := spacetest.Pattern('a', size, page)
	if path == "fast" {
		e.Write(s, addr, orig) // populated and exclusive: the fast path can pin
	} else {
		// Unpopulated: the fast path cannot; the slow path faults, then
		// fills through the space.
		if _, err := Pin(s, addr, size, flags|FastOnly); !errors.Is(err, ErrFastFailed) {
			t.Fatalf("FastOnly pin of unpopulated memory: %v, want ErrFastFailed", err)
		}
		ledgerIs(t, e, 0, 0)
	}
	pinRange := func() *Pages {
		f := flags
		if path == "fast" && when == "beforeFork" {
			f |= FastOnly // proves the fast path took it
		}
		p, err := Pin(s, addr+page, size-2*page, f)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var p *Pages
	var c *cow.Space
	if when == "beforeFork" {
		p = pinRange()
		if path == "slow" {
			e.Write(s, addr, orig)
		}
		c = e.Fork(s)
	} else {
		if path == "slow" {
			e.Write(s, addr, orig)
		}
		c = e.Fork(s)
		p = pinRange()
	}
	ledgerIs(t, e, int64(size/page-2), 0)
	if child == "closed" {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	e.Check()
	got := spacetest.Join(p.Bytes())
	if !bytes.Equal(got, orig[page:size-page]) {
		t.Fatalf("the pin reads %q…, want %q…", spacetest.Head(got), spacetest.Head(orig[page:]))
	}
	// The space writes: the pin sees it.
	e.Write(s, addr+3*page+5, []byte("space"))
	if got := spacetest.Join(p.Bytes())[2*page+5:]; !bytes.HasPrefix(got, []byte("space")) {
		t.Fatalf("a write through the space is not seen through the pin: %q", spacetest.Head(got))
	}
	// The pin writes (read-write pins): the space sees it.
	if flags&Write != 0 {
		writeThrough(p, 7*page+9, []byte("pinned"))
		e.Expect(s, addr+8*page+9, []byte("pinned"))
	}
	if child == "alive" {
		// The child has the memory as it was at the Fork: neither the
		// space's nor the pin's writes since.
		e.Expect(c, addr+3*page, orig[3*page:4*page])
		e.Expect(c, addr+8*page, orig[8*page:9*page])
		// The child writes: the pin never sees it.
		e.Write(c, addr+5*page, spacetest.Fill('C', page))
		if got := spacetest.Join(p.Bytes())[4*page : 5*page]; bytes.Contains(got, []byte("C")) {
			t.Fatal("the pin sees the child's write")
		}
		e.Expect(s, addr+5*page, orig[5*page:6*page])
	}
	st := s.Stats()
	if when == "beforeFork" && st.ForkCopies == 0 {
		t.Fatal("Fork copied no pinned page for the child")
	}
	e.Check()
	p.Release()
	p.Release() // a second call is a no-op
	if p.Bytes() != nil {
		t.Fatal("Bytes after Release")
	}
	ledgerIs(t, e, 0, 0)
	e.Check()
}

// writeThrough writes b at offset off of the pinned range, across slices.
func writeThrough(p *Pages, off int, b []byte) {
	for _, part := range p.Bytes() {
		if off >= len(part) {
			off -= len(part)
			continue
		}
		n := copy(part[off:], b)
		b = b[n:]
		off = 0
		if len(b) == 0 {
			return
		}
	}
}

// TestBytesCoverExactlyTheRange: any address and length; one slice per
// physically contiguous run; a whole large folio is one slice.
func TestBytesCoverExactlyTheRange(t *testing.T) {
	e := spacetest.New(t, 64<<20, page)
	g := e.A.Geometry()
	for _, tt := range []struct {
		name     string
		orders   cow.OrderSet
		off, len int
		slices   int
	}{
		{"one byte", cow.Orders(), 100, 1, 1},
		{"across a page boundary", cow.Orders(), page - 3, 7, 2},
		{"whole 64 KiB folio", cow.Orders(g.ContOrder), 0, 64 << 10, 1},
		{"inside a 2 MiB folio", cow.Orders(g.PMDOrder), 12345, 1 << 20, 1},
		{"two 64 KiB folios, maybe adjacent", cow.Orders(g.ContOrder), 4000, 100 << 10, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := e.Space(cow.Options{Orders: tt.orders})
			addr := e.Map(s, 4<<20, cow.ProtRead|cow.ProtWrite)
			data := spacetest.Pattern('b', 4<<20, page)
			e.Write(s, addr, data)
			p, err := Pin(s, addr+cow.Addr(tt.off), tt.len, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release()
			parts := p.Bytes()
			if tt.slices >= 0 && len(parts) != tt.slices {
				t.Fatalf("%d slices, want %d", len(parts), tt.slices)
			}
			if got := spacetest.Join(parts); !bytes.Equal(got, data[tt.off:tt.off+tt.len]) {
				t.Fatalf("Bytes cover %d bytes %q…, want %d bytes %q…", len(got), spacetest.Head(got), tt.len, spacetest.Head(data[tt.off:]))
			}
		})
	}
}

// TestZeroPagePin: a pin of unpopulated memory maps a private zeroed page
// first, so writes through the space are seen through the pin. A read-only
// Get of it takes the shared zero page and unshares nothing.
func TestZeroPagePin(t *testing.T) {
	for _, read := range []bool{false, true} {
		e := spacetest.New(t, 8<<20, page)
		s := e.Space(cow.Options{Orders: cow.Orders()})
		addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
		if read {
			e.Read(s, addr, 1) // the zero page is mapped
		}
		p, err := Pin(s, addr, page, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(spacetest.Join(p.Bytes()), spacetest.Fill(0, page)) {
			t.Fatal("a pinned unpopulated page is not zero")
		}
		e.Write(s, addr+10, []byte("after"))
		if got := spacetest.Join(p.Bytes()); !bytes.Equal(got[10:15], []byte("after")) {
			t.Fatalf("a write after pinning the zero page is not seen through the pin: %q", got[10:15])
		}
		e.Check()
		p.Release()
	}
	e := spacetest.New(t, 8<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	g, err := Get(s, addr, 2*page, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.WPCopy != 0 || st.Resident != 0 || st.ZeroPageMaps != 2 {
		t.Fatalf("a read-only Get of unpopulated memory: %+v", st)
	}
	if !bytes.Equal(spacetest.Join(g.Bytes()), spacetest.Fill(0, 2*page)) {
		t.Fatal("Get of unpopulated memory is not zero")
	}
	g.Release()
}

// TestGetIsNotAPin: a read-only Get never unshares; Fork does not copy for
// it; but it stops a later write fault from reusing the page (the page is
// copied), so what the Get holds does not change (the vmsplice cases of
// cow.c).
func TestGetIsNotAPin(t *testing.T) {
	for _, cfg := range spacetest.Configs {
		t.Run(cfg.Name, func(t *testing.T) {
			e := spacetest.New(t, 16<<20, page)
			s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
			addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
			orig := spacetest.Pattern('g', 2<<20, page)
			e.Write(s, addr, orig)
			c := e.Fork(s)
			g, err := Get(c, addr, 8*page, 0) // vmsplice in the child
			if err != nil {
				t.Fatal(err)
			}
			if st := c.Stats(); st.WPCopy != 0 {
				t.Fatalf("a read-only Get copied %d pages", st.WPCopy)
			}
			if err := c.Close(); err != nil { // the child unmaps
				t.Fatal(err)
			}
			e.Write(s, addr, spacetest.Fill(0xff, 8*page)) // the parent writes
			if got := spacetest.Join(g.Bytes()); !bytes.Equal(got, orig[:8*page]) {
				t.Fatalf("the Get sees the parent's write (CVE-2020-29374): %q", spacetest.Head(got))
			}
			if st := s.Stats(); st.WPReuse != 0 && cfg.Name == "order0" {
				t.Fatalf("the parent reused %d pages a Get still references", st.WPReuse)
			}
			e.Check()
			g.Release()
			ledgerIs(t, e, 0, 0)

			// Fork does not copy for a Get: the page stays shared.
			g2, err := Get(s, addr, page, 0)
			if err != nil {
				t.Fatal(err)
			}
			before := s.Stats().ForkCopies
			c2 := e.Fork(s)
			if s.Stats().ForkCopies != before {
				t.Fatal("Fork copied a page only a Get holds")
			}
			e.Check()
			g2.Release()
			c2.Close()
		})
	}
}

// TestErrors: every misuse gets its sentinel, and a pin that fails part way
// holds nothing.
func TestErrors(t *testing.T) {
	e := spacetest.New(t, 16<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	ro := addr + 4<<20
	if err := s.MapFixed(ro, 2<<20, cow.ProtRead); err != nil {
		t.Fatal(err)
	}
	none := addr + 8<<20
	if err := s.MapFixed(none, 2<<20, cow.ProtNone); err != nil {
		t.Fatal(err)
	}
	e.Write(s, addr, spacetest.Fill(1, 2<<20))
	for _, tt := range []struct {
		name string
		call func() (*Pages, error)
		want error
	}{
		{"zero length", func() (*Pages, error) { return Pin(s, addr, 0, 0) }, cow.ErrInvalid},
		{"negative length", func() (*Pages, error) { return Get(s, addr, -1, 0) }, cow.ErrInvalid},
		{"unknown flag", func() (*Pages, error) { return Pin(s, addr, 1, 1<<7) }, cow.ErrInvalid},
		{"FastOnly|SlowOnly", func() (*Pages, error) { return Pin(s, addr, 1, FastOnly|SlowOnly) }, cow.ErrInvalid},
		{"nil space", func() (*Pages, error) { return Pin(nil, addr, 1, 0) }, cow.ErrInvalid},
		{"no mapping", func() (*Pages, error) { return Pin(s, addr+16<<20, 1, 0) }, cow.ErrFault},
		{"past the address space", func() (*Pages, error) { return Pin(s, 1<<47-1, 2, 0) }, cow.ErrFault},
		{"write pin of read-only", func() (*Pages, error) { return Pin(s, ro, page, Write) }, cow.ErrProtection},
		{"read pin of PROT_NONE", func() (*Pages, error) { return Pin(s, none, page, 0) }, cow.ErrProtection},
		{"Get of PROT_NONE", func() (*Pages, error) { return Get(s, none, page, 0) }, cow.ErrProtection},
		{"running into a hole", func() (*Pages, error) { return Pin(s, addr+2<<20-2*page, 4*page, Write) }, cow.ErrFault},
		{"running into read-only", func() (*Pages, error) { return Get(s, ro-page, 2*page, Write) }, cow.ErrFault},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.call()
			if !errors.Is(err, tt.want) || p != nil {
				t.Fatalf("got %v, %v; want %v", p, err, tt.want)
			}
			ledgerIs(t, e, 0, 0)
			e.Check()
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Pin(s, addr, page, 0); !errors.Is(err, cow.ErrClosed) {
		t.Fatalf("Pin after Close: %v", err)
	}
}

// TestReleaseAfterClose: pinned memory outlives the space; Release frees it.
func TestReleaseAfterClose(t *testing.T) {
	e := spacetest.New(t, 8<<20, page)
	s := e.Space(cow.Options{})
	addr := e.Map(s, 2<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill(7, 2<<20))
	p, err := Pin(s, addr, 1<<20, Write|Longterm)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Get(s, addr+(1<<20), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.A.Close(); err == nil {
		t.Fatal("the arena closed with pages pinned")
	}
	if !bytes.Equal(spacetest.Join(p.Bytes()), spacetest.Fill(7, 1<<20)) {
		t.Fatal("pinned memory changed when the space closed")
	}
	free := e.A.Stats().FreePages
	p.Release()
	g.Release()
	if got := e.A.Stats().FreePages - free; got != 512 {
		t.Fatalf("Release after Close freed %d pages, want 512", got)
	}
	ledgerIs(t, e, 0, 0)
}

// TestForkOutOfMemory: a Fork that cannot copy a pinned page for the child
// fails with ErrNoMemory and leaves nothing behind: the parent and the pin
// as they were, no child, no page, and a Fork succeeds once memory is back.
func TestForkOutOfMemory(t *testing.T) {
	e := spacetest.New(t, 4<<20, page)
	s := e.Space(cow.Options{Orders: cow.Orders()})
	addr := e.Map(s, 4<<20, cow.ProtRead|cow.ProtWrite)
	e.Write(s, addr, spacetest.Fill('p', page))
	p, err := Pin(s, addr, page, Write)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the arena (the page tables live outside it).
	filled := page
	for ; filled < 4<<20; filled += page {
		if _, err := s.WriteAt([]byte{'f'}, int64(addr)+int64(filled)); err != nil {
			if !errors.Is(err, folio.ErrNoMemory) {
				t.Fatal(err)
			}
			break
		}
	}
	if st := e.A.Stats(); st.FreePages != 0 {
		t.Fatalf("%d pages still free after filling", st.FreePages)
	}
	c, err := s.Fork()
	if !errors.Is(err, folio.ErrNoMemory) || c != nil {
		t.Fatalf("Fork with no page for the pinned copy: %v, %v; want ErrNoMemory", c, err)
	}
	e.Check()
	writeThrough(p, 0, []byte("pin"))
	e.Expect(s, addr, []byte("pinppp"))
	if err := s.Advise(addr+2<<20, 2<<20, cow.DontNeed); err != nil { // give half back
		t.Fatal(err)
	}
	c = e.Fork(s)
	e.Expect(c, addr, []byte("pinppp"))
	p.Release()
}
