package slab

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
)

// hookedAccessor calls afterWrite after each write it makes to its space.
type hookedAccessor struct {
	accessor
	s     *cow.Space
	after func(s *cow.Space)
}

func (h *hookedAccessor) WriteAt(p []byte, off int64) (int, error) {
	n, err := h.accessor.WriteAt(p, off)
	h.after(h.s)
	return n, err
}

func (h *hookedAccessor) StoreUint64(addr cow.Addr, v uint64) error {
	err := h.accessor.StoreUint64(addr, v)
	h.after(h.s)
	return err
}

// hookWrites makes every accessor made until the test ends call after(s)
// after each of its writes.
func hookWrites(t *testing.T, after func(s *cow.Space)) {
	wrapAccessor = func(s *cow.Space, a accessor) accessor { return &hookedAccessor{a, s, after} }
	t.Cleanup(func() { wrapAccessor = nil })
}

// TestForkAtEveryWrite runs a sequence of operations that takes every path
// (carve, fill and pop, free into a full slab and push, empty a slab,
// large blocks) and forks the space after every single write of every
// operation. Each child must open, pass Check (repairing what the cut
// left busy), hold every block allocated before the operation with its
// contents, and hold the operation's own block either way; then it must
// keep working.
func TestForkAtEveryWrite(t *testing.T) {
	var (
		work  *cow.Space // the space whose writes fork
		k, at int        // fork after write number at of the operation
		forks []*cow.Space
	)
	hookWrites(t, func(s *cow.Space) {
		if s != work {
			return
		}
		if k++; k == at {
			c, err := s.Fork()
			if err != nil {
				t.Fatal(err)
			}
			forks = append(forks, c)
		}
	})
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	root := e.h.Root()
	m := map[cow.Addr]block{}

	// The operations: allocate 70 blocks of 48 bytes (a slab fills, a
	// second is carved), free in an order that pushes full slabs back and
	// empties one, then the same with 40 KiB (large) blocks.
	type op struct {
		alloc int // bytes to allocate, or 0 to free
		idx   int // the block to free: the one operation idx allocated
	}
	var ops []op
	for _, n := range []int{48, 40 << 10} {
		base := len(ops)
		for range 70 {
			ops = append(ops, op{alloc: n})
		}
		for _, i := range []int{65, 3, 64, 66, 67, 68, 69, 0, 1, 2} {
			ops = append(ops, op{idx: base + i})
		}
	}
	allocs := make([]cow.Addr, len(ops))
	run := func(h *Allocator, o op) cow.Addr {
		if o.alloc > 0 {
			return mustAlloc(t, h, o.alloc)
		}
		mustFree(t, h, allocs[o.idx])
		return allocs[o.idx]
	}
	trials := 0
	for i, o := range ops {
		// Run the operation in a fresh Fork of the current state once per
		// write it makes, forking again after a different write each time.
		// (In short mode, not for the 60 allocations that take the
		// common path, one write each, between a carve and a fill.)
		quiet := o.alloc > 0 && i%80 >= 2 && i%80 < 62
		for at = 1; !(testing.Short() && quiet); at++ {
			work = e.Fork(e.s)
			hw, err := Open(work, root)
			if err != nil {
				t.Fatal(err)
			}
			k = 0
			target := run(hw, o)
			work = nil
			for _, c := range forks {
				verifyChild(t, c, root, m, target)
				c.Close()
				trials++
			}
			forks = forks[:0]
			if at > k {
				break // that run made fewer than at writes: no fork
			}
		}
		target := run(e.h, o)
		if o.alloc > 0 {
			allocs[i] = target
			size, _ := e.h.Size(target)
			m[target] = block{n: o.alloc, size: size, seed: uint64(i)}
			e.Write(e.s, target, pattern(uint64(i), size))
		} else {
			delete(m, target)
		}
	}
	t.Logf("%d operations, %d forks", len(ops), trials)
}

// verifyChild checks a space forked in the middle of an operation on
// target, with the model m of the blocks live before it (target aside).
func verifyChild(t *testing.T, c *cow.Space, root cow.Addr, m map[cow.Addr]block, target cow.Addr) {
	t.Helper()
	hc, err := Open(c, root)
	if err != nil {
		t.Fatalf("Open in a child forked mid-operation: %v", err)
	}
	if err := hc.Check(); err != nil {
		t.Fatalf("Check of a child forked mid-operation: %v", err)
	}
	st, err := hc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(m))
	if _, ok := m[target]; ok {
		want-- // target was freed after the fork's instant, or before
	}
	if st.Blocks != want && st.Blocks != want+1 {
		t.Fatalf("child holds %d blocks, want %d or %d", st.Blocks, want, want+1)
	}
	for p, b := range m {
		if p == target {
			continue
		}
		if _, err := hc.Size(p); err != nil {
			t.Fatalf("block %#x lost in the child: %v", uint64(p), err)
		}
		if err := expectPattern(c, p, b); err != nil {
			t.Fatal(err)
		}
	}
	// The child works on: allocate a few blocks of every size used, free
	// them, and check again.
	var ps []cow.Addr
	for _, n := range []int{48, 48, 40 << 10} {
		p, err := hc.Alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m[p]; ok && p != target {
			t.Fatalf("the child handed out the live block %#x", uint64(p))
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := hc.Free(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := hc.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestForkConcurrent forks the space again and again, without quiescing,
// while four goroutines allocate and free: every child must open, pass
// Check, and keep working.
func TestForkConcurrent(t *testing.T) {
	ops := 2000
	if testing.Short() {
		ops = 400
	}
	e := newEnv(t, 256<<20, cow.Options{}, Options{})
	m := &model{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			if err := worker(e.s, e.h, m, uint64(g+10), ops, 150, 256<<10); err != nil {
				errs <- err
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	forks := 0
	for loop := true; loop; forks++ {
		select {
		case <-done:
			loop = false
		case <-time.After(2 * time.Millisecond):
		}
		c, err := e.s.Fork()
		if err != nil {
			t.Fatal(err)
		}
		hc, err := Open(c, e.h.Root())
		if err != nil {
			t.Fatal(err)
		}
		if err := hc.Check(); err != nil {
			t.Fatalf("fork %d: %v", forks, err)
		}
		p, err := hc.Alloc(100)
		if err != nil {
			t.Fatal(err)
		}
		if err := hc.Free(p); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d forks", forks)
	drain(t, e.s, e.h, m)
}

// TestQuiesce: between Quiesce and resume no operation runs, and a Fork
// taken there holds no half-done list change.
func TestQuiesce(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	var done atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(5, 5))
		var ps []cow.Addr
		for {
			select {
			case <-stop:
				for _, p := range ps {
					e.h.Free(p)
				}
				errs <- nil
				return
			default:
			}
			if len(ps) < 100 || r.IntN(2) == 0 {
				p, err := e.h.Alloc(1 + r.IntN(200))
				if err != nil {
					errs <- err
					return
				}
				ps = append(ps, p)
			} else {
				i := r.IntN(len(ps))
				if err := e.h.Free(ps[i]); err != nil {
					errs <- err
					return
				}
				ps[i] = ps[len(ps)-1]
				ps = ps[:len(ps)-1]
			}
			done.Add(1)
		}
	}()
	for range 20 {
		time.Sleep(time.Millisecond)
		resume := e.h.Quiesce()
		n := done.Load()
		c, err := e.s.Fork()
		time.Sleep(100 * time.Microsecond)
		if got := done.Load(); got > n+1 {
			t.Errorf("%d operations ran while quiesced", got-n)
		}
		resume()
		resume() // a no-op
		if err != nil {
			t.Fatal(err)
		}
		a := newAccessor(c)
		for i := range e.h.st.cls {
			cg := &e.h.st.cls[i].geo
			if _, ok := c.Pagemap(cg.word); !ok {
				continue
			}
			if w, err := a.LoadUint64(cg.word); err != nil || w&busyBit != 0 {
				t.Fatalf("class %d in a quiesced fork: word %#x, %v", i, w, err)
			}
		}
		hc, err := Open(c, e.h.Root())
		if err != nil {
			t.Fatal(err)
		}
		if err := hc.Check(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestForkIsolation: after a Fork, parent and child allocate, write and
// free independently.
func TestForkIsolation(t *testing.T) {
	e := newEnv(t, 64<<20, cow.Options{}, Options{})
	p := mustAlloc(t, e.h, 64)
	e.Write(e.s, p, pattern(1, 64))
	c := e.Fork(e.s)
	hc, err := Open(c, e.h.Root())
	if err != nil {
		t.Fatal(err)
	}
	q1 := mustAlloc(t, e.h, 64)
	q2 := mustAlloc(t, hc, 64)
	if q1 != q2 {
		t.Errorf("parent and child should hand out the same next block: %#x, %#x", uint64(q1), uint64(q2))
	}
	e.Write(e.s, q1, pattern(2, 64))
	e.Write(c, q2, pattern(3, 64))
	mustFree(t, hc, p)
	e.Expect(e.s, p, pattern(1, 64))
	expectZero(t, c, p, 64)
	if err := hc.Free(p); !errors.Is(err, ErrNotAllocated) {
		t.Errorf("double free in the child: %v", err)
	}
	if _, err := e.h.Size(p); err != nil {
		t.Errorf("the parent's block was freed by the child's Free: %v", err)
	}
	e.Expect(e.s, q1, pattern(2, 64))
	e.Expect(c, q2, pattern(3, 64))
	check(t, hc)
}
