package cow

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// config is one folio configuration of the test matrix.
type config struct {
	name   string
	orders func(g folio.Geometry) OrderSet
}

// configs is the matrix issue 3 asks for: order 0 only; 16 KiB; 64 KiB;
// 256 KiB; 2 MiB; all orders (for 4 KiB pages; other page sizes scale).
var configs = []config{
	{"order0", func(folio.Geometry) OrderSet { return Orders() }},
	{"16KiB", func(folio.Geometry) OrderSet { return Orders(2) }},
	{"64KiB", func(g folio.Geometry) OrderSet { return Orders(g.ContOrder) }},
	{"256KiB", func(folio.Geometry) OrderSet { return Orders(6) }},
	{"2MiB", func(g folio.Geometry) OrderSet { return Orders(g.PMDOrder) }},
	{"all", func(g folio.Geometry) OrderSet {
		var o []int
		for i := 1; i <= g.MaxOrder; i++ {
			o = append(o, i)
		}
		return Orders(o...)
	}},
}

// env is an arena and the spaces of a test; cleanup checks the invariants and
// that every page came back.
type env struct {
	t      testing.TB
	a      *folio.Arena
	spaces []*Space
}

func newEnv(t testing.TB, size int64) *env {
	t.Helper()
	a, err := folio.NewArena(folio.Config{Size: size, PageSize: 4096, RetainFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, a: a}
	t.Cleanup(func() {
		if !t.Failed() {
			e.check()
		}
		for _, s := range e.spaces {
			s.Close()
		}
		if st := a.Stats(); st.FreePages != st.TotalPages && !t.Failed() {
			t.Errorf("leak: %d of %d pages still allocated after every space closed", st.TotalPages-st.FreePages, st.TotalPages)
		}
		if err := a.Close(); err != nil && !t.Failed() {
			t.Errorf("arena Close: %v", err)
		}
	})
	return e
}

func (e *env) space(orders OrderSet) *Space {
	e.t.Helper()
	s, err := NewSpace(e.a, Options{Orders: orders})
	if err != nil {
		e.t.Fatal(err)
	}
	e.spaces = append(e.spaces, s)
	return s
}

func (e *env) fork(s *Space) *Space {
	e.t.Helper()
	c, err := s.Fork()
	if err != nil {
		e.t.Fatal(err)
	}
	e.spaces = append(e.spaces, c)
	return c
}

func (e *env) check() {
	e.t.Helper()
	var live []*Space
	for _, s := range e.spaces {
		if !s.closed.Load() {
			live = append(live, s)
		}
	}
	if err := Check(live...); err != nil {
		e.t.Fatal(err)
	}
}

func mustMap(t testing.TB, s *Space, length int, prot Prot) Addr {
	t.Helper()
	addr, err := s.Map(length, prot)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func write(t testing.TB, s *Space, addr Addr, b []byte) {
	t.Helper()
	if n, err := s.WriteAt(b, int64(addr)); err != nil || n != len(b) {
		t.Fatalf("WriteAt(%#x, %d bytes) = %d, %v", uint64(addr), len(b), n, err)
	}
}

func read(t testing.TB, s *Space, addr Addr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if k, err := s.ReadAt(b, int64(addr)); err != nil || k != n {
		t.Fatalf("ReadAt(%#x, %d bytes) = %d, %v", uint64(addr), n, k, err)
	}
	return b
}

func expect(t testing.TB, s *Space, addr Addr, want []byte) {
	t.Helper()
	if got := read(t, s, addr, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("at %#x read %q…, want %q…", uint64(addr), head(got), head(want))
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

// pauseFirst stops the first goroutine that reaches test hook point p until
// resume is closed; paused is closed when it gets there. The hook is
// removed when the test ends.
func pauseFirst(t *testing.T, p testhook.Point) (paused, resume chan struct{}) {
	paused, resume = make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	t.Cleanup(testhook.Set(p, func() {
		if first.CompareAndSwap(false, true) {
			close(paused)
			<-resume
		}
	}))
	return paused, resume
}

// waitPaused waits for a goroutine to reach the hook pauseFirst set, and
// fails the test after 10 s instead of hanging: an interleaving that
// never happens proves nothing.
func waitPaused(t *testing.T, paused chan struct{}) {
	t.Helper()
	select {
	case <-paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the interleaving did not happen: nothing reached the hook")
	}
}
