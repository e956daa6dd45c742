package model_test

import (
	"bytes"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
	"github.com/anonfolio/anonfolio/pin"
)

const page = 4096

// env is an arena and its spaces; when the test ends it runs cow.Check,
// closes the spaces and fails if a page is still allocated.
type env struct {
	t      *testing.T
	a      *folio.Arena
	spaces []*cow.Space
	held   []*pin.Pages
}

func newEnv(t *testing.T) *env {
	t.Helper()
	a, err := folio.NewArena(folio.Config{Size: 16 << 20, PageSize: page, RetainFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, a: a}
	t.Cleanup(func() {
		for _, p := range e.held {
			p.Release()
		}
		if !t.Failed() {
			e.check()
		}
		for _, s := range e.spaces {
			s.Close()
		}
		if st := a.Stats(); !t.Failed() && st.FreePages != st.TotalPages {
			t.Errorf("leak: %d of %d pages still allocated", st.TotalPages-st.FreePages, st.TotalPages)
		}
		if err := a.Close(); err != nil && !t.Failed() {
			t.Errorf("arena Close: %v", err)
		}
	})
	return e
}

// space returns a space with the given folio orders and a 2 MiB region
// (one directory slot) written with fill.
func (e *env) space(orders cow.OrderSet, fill byte) (*cow.Space, cow.Addr) {
	e.t.Helper()
	s, err := cow.NewSpace(e.a, cow.Options{Orders: orders})
	if err != nil {
		e.t.Fatal(err)
	}
	e.spaces = append(e.spaces, s)
	addr, err := s.Map(2<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(s, addr, bytes.Repeat([]byte{fill}, 2<<20))
	return s, addr
}

func (e *env) fork(s *cow.Space) *cow.Space {
	e.t.Helper()
	c, err := s.Fork()
	if err != nil {
		e.t.Fatal(err)
	}
	e.spaces = append(e.spaces, c)
	return c
}

func (e *env) write(s *cow.Space, addr cow.Addr, b []byte) {
	e.t.Helper()
	if n, err := s.WriteAt(b, int64(addr)); err != nil || n != len(b) {
		e.t.Fatalf("WriteAt(%#x) = %d, %v", uint64(addr), n, err)
	}
}

func (e *env) read(s *cow.Space, addr cow.Addr, n int) []byte {
	e.t.Helper()
	b := make([]byte, n)
	if k, err := s.ReadAt(b, int64(addr)); err != nil || k != n {
		e.t.Fatalf("ReadAt(%#x) = %d, %v", uint64(addr), k, err)
	}
	return b
}

func (e *env) take(p *pin.Pages, err error) *pin.Pages {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
	e.held = append(e.held, p)
	return p
}

// check runs cow.Check over the spaces still open.
func (e *env) check() {
	e.t.Helper()
	var live []*cow.Space
	for _, s := range e.spaces {
		if !s.Closed() {
			live = append(live, s)
		}
	}
	if err := cow.Check(live...); err != nil {
		e.t.Fatal(err)
	}
}

// hookOnce runs f the first time its point is reached, and tells whether
// it ran: a trail whose interleaving never happened proves nothing.
type hookOnce struct {
	done atomic.Bool
	f    func()
}

func once(f func()) *hookOnce { return &hookOnce{f: f} }

func (h *hookOnce) run() {
	if h.done.CompareAndSwap(false, true) {
		h.f()
	}
}

func (h *hookOnce) set(t *testing.T, p testhook.Point) {
	t.Cleanup(testhook.Set(p, h.run))
}

func (h *hookOnce) mustHaveRun(t *testing.T, what string) {
	t.Helper()
	if !h.done.Load() {
		t.Fatalf("the trail's interleaving did not happen: %s", what)
	}
}

// goWait runs f in another goroutine and waits for it: a call made from a
// hook that must not run on the hooked goroutine's stack of locks.
func goWait(f func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
	wg.Wait()
}

// waitInStack waits until some goroutine's stack shows fn, or done is
// closed, yielding meanwhile (no timing is asserted).
func waitInStack(fn string, done <-chan struct{}) {
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-done:
			return
		default:
		}
		n := runtime.Stack(buf, true)
		if strings.Contains(string(buf[:n]), fn) {
			return
		}
		runtime.Gosched()
	}
}

func joined(p *pin.Pages) []byte { return bytes.Join(p.Bytes(), nil) }
