// Package spacetest holds what the test suites outside package cow share: an
// arena with its spaces that checks the invariants and counts every page
// back when the test ends, the folio configurations of the test matrix, and
// data helpers.
package spacetest

import (
	"bytes"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// Config is one folio configuration of the test matrix.
type Config struct {
	Name   string
	Orders func(g folio.Geometry) cow.OrderSet
}

// Configs is the matrix: order 0 only; 16 KiB; 64 KiB (the contpte
// order); 256 KiB; 2 MiB (the PMD order); all orders. The names are those of
// 4 KiB pages; other page sizes keep the orders.
var Configs = []Config{
	{"order0", func(folio.Geometry) cow.OrderSet { return cow.Orders() }},
	{"16KiB", func(folio.Geometry) cow.OrderSet { return cow.Orders(2) }},
	{"64KiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(g.ContOrder) }},
	{"256KiB", func(folio.Geometry) cow.OrderSet { return cow.Orders(6) }},
	{"2MiB", func(g folio.Geometry) cow.OrderSet { return cow.Orders(g.PMDOrder) }},
	{"all", func(g folio.Geometry) cow.OrderSet {
		var o []int
		for i := 1; i <= g.MaxOrder; i++ {
			o = append(o, i)
		}
		return cow.Orders(o...)
	}},
}

// MatrixFor is Configs, or under -short its three corners: order 0 only,
// the contpte order and all orders. Long, slow tests (a round trip of
// every image kind, writers against a chain of Saves) use it so that the
// race step of CI stays inside its budget; the plain run keeps the whole
// matrix.
func MatrixFor(t testing.TB) []Config {
	if !testing.Short() {
		return Configs
	}
	return []Config{Configs[0], Configs[2], Configs[5]}
}

// Env is an arena and the spaces of one test. When the test ends it runs
// cow.Check over the live spaces, closes them, and fails the test if any
// page is still allocated.
type Env struct {
	T      testing.TB
	A      *folio.Arena
	Spaces []*cow.Space
}

// New returns an Env with an arena of size bytes of pageSize pages.
func New(t testing.TB, size int64, pageSize int) *Env {
	t.Helper()
	return NewConfig(t, folio.Config{Size: size, PageSize: pageSize})
}

// NewConfig returns an Env with an arena made from cfg (with MaxOrder to cap
// the folio size: at 64 KiB pages the PMD order makes 512 MiB folios). Free
// memory is never scavenged, whatever cfg.RetainFree says, so that a test's
// page counts are its own.
func NewConfig(t testing.TB, cfg folio.Config) *Env {
	t.Helper()
	cfg.RetainFree = -1
	a, err := folio.NewArena(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, A: a}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		e.Check()
		for _, s := range e.Spaces {
			s.Close()
		}
		if st := a.Stats(); st.FreePages != st.TotalPages {
			t.Errorf("leak: %d of %d pages still allocated after every space closed", st.TotalPages-st.FreePages, st.TotalPages)
		}
		if err := a.Close(); err != nil {
			t.Errorf("arena Close: %v", err)
		}
	})
	return e
}

// Space returns a new space with the given options.
func (e *Env) Space(opts cow.Options) *cow.Space {
	e.T.Helper()
	s, err := cow.NewSpace(e.A, opts)
	if err != nil {
		e.T.Fatal(err)
	}
	e.Spaces = append(e.Spaces, s)
	return s
}

// Fork forks s.
func (e *Env) Fork(s *cow.Space) *cow.Space {
	e.T.Helper()
	c, err := s.Fork()
	if err != nil {
		e.T.Fatal(err)
	}
	e.Spaces = append(e.Spaces, c)
	return c
}

// Check runs cow.Check over the spaces that are not closed.
func (e *Env) Check() {
	e.T.Helper()
	var live []*cow.Space
	for _, s := range e.Spaces {
		if !s.Closed() {
			live = append(live, s)
		}
	}
	if err := cow.Check(live...); err != nil {
		e.T.Fatal(err)
	}
}

// Map maps length bytes in s.
func (e *Env) Map(s *cow.Space, length int, prot cow.Prot) cow.Addr {
	e.T.Helper()
	addr, err := s.Map(length, prot)
	if err != nil {
		e.T.Fatal(err)
	}
	return addr
}

// Write writes b at addr in s.
func (e *Env) Write(s *cow.Space, addr cow.Addr, b []byte) {
	e.T.Helper()
	if n, err := s.WriteAt(b, int64(addr)); err != nil || n != len(b) {
		e.T.Fatalf("WriteAt(%#x, %d bytes) = %d, %v", uint64(addr), len(b), n, err)
	}
}

// Read reads n bytes at addr in s.
func (e *Env) Read(s *cow.Space, addr cow.Addr, n int) []byte {
	e.T.Helper()
	b := make([]byte, n)
	if k, err := s.ReadAt(b, int64(addr)); err != nil || k != n {
		e.T.Fatalf("ReadAt(%#x, %d bytes) = %d, %v", uint64(addr), n, k, err)
	}
	return b
}

// Expect fails the test unless s reads want at addr.
func (e *Env) Expect(s *cow.Space, addr cow.Addr, want []byte) {
	e.T.Helper()
	if got := e.Read(s, addr, len(want)); !bytes.Equal(got, want) {
		e.T.Fatalf("at %#x read %q…, want %q…", uint64(addr), Head(got), Head(want))
	}
}

// Head returns the first 16 bytes of b, for messages.
func Head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// Fill returns n bytes of c.
func Fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

// Pattern returns n bytes tagged by c and the page index, so a misplaced
// page shows.
func Pattern(c byte, n, pageSize int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c + byte(i/pageSize)
	}
	return b
}

// Join concatenates slices (the result of pin.Pages.Bytes).
func Join(parts [][]byte) []byte { return bytes.Join(parts, nil) }

// PanicString formats a recovered panic value.
func PanicString(r any) string {
	if err, ok := r.(error); ok {
		return err.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return "non-string panic"
}
