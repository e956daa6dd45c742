package slab

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
	"github.com/tidwall/btree"
)

// block is what the model knows of a live block.
type block struct {
	n    int    // bytes asked for
	size int    // usable bytes (Size)
	seed uint64 // its contents are pattern(seed, size)
}

// model is the set of live blocks, ordered by address, shared by the
// goroutines of a test.
type model struct {
	mu sync.Mutex
	// +checklocks:mu
	live btree.Map[cow.Addr, block]
}

// add records a new block, failing if it overlaps a live one.
func (m *model) add(p cow.Addr, b block) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	m.live.Descend(p, func(q cow.Addr, o block) bool {
		if q+cow.Addr(o.size) > p {
			err = fmt.Errorf("block %#x+%d overlaps the live block %#x+%d", uint64(p), b.size, uint64(q), o.size)
		}
		return false
	})
	m.live.Ascend(p, func(q cow.Addr, o block) bool {
		if q < p+cow.Addr(b.size) {
			err = fmt.Errorf("block %#x+%d overlaps the live block %#x+%d", uint64(p), b.size, uint64(q), o.size)
		}
		return false
	})
	if err == nil {
		m.live.Set(p, b)
	}
	return err
}

// take removes and returns a random live block.
func (m *model) take(r *rand.Rand) (cow.Addr, block, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live.Len() == 0 {
		return 0, block{}, false
	}
	p, b, _ := m.live.DeleteAt(r.IntN(m.live.Len()))
	return p, b, true
}

func (m *model) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live.Len()
}

// worker runs ops random operations on h against m: allocations that must
// read zero, not overlap, and be at least as large as asked; frees of
// random live blocks (any goroutine's) that must still hold what was
// written to them; Size of live blocks.
func worker(s *cow.Space, h *Allocator, m *model, seed uint64, ops, target, maxLarge int) error {
	r := rand.New(rand.NewPCG(seed, 99))
	for i := range ops {
		if r.IntN(100) < 50+(target-m.len())*40/target { // allocate more while below target
			n := randSize(r, maxLarge)
			p, err := h.Alloc(n)
			if err != nil {
				return fmt.Errorf("Alloc(%d): %w", n, err)
			}
			size, err := h.Size(p)
			if err != nil || size < n || size != int(classSize(classOf(uint64(n)))) {
				return fmt.Errorf("Size of Alloc(%d) at %#x = %d, %v", n, uint64(p), size, err)
			}
			buf := make([]byte, size)
			if _, err := s.ReadAt(buf, int64(p)); err != nil {
				return err
			}
			if i := firstNonZero(buf); i >= 0 {
				return fmt.Errorf("new %d-byte block at %#x reads %#x at +%d", size, uint64(p), buf[i], i)
			}
			b := block{n: n, size: size, seed: seed<<32 | uint64(i)}
			if _, err := s.WriteAt(pattern(b.seed, size), int64(p)); err != nil {
				return err
			}
			if err := m.add(p, b); err != nil {
				return err
			}
			continue
		}
		p, b, ok := m.take(r)
		if !ok {
			continue
		}
		if err := expectPattern(s, p, b); err != nil {
			return err
		}
		if err := h.Free(p); err != nil {
			return fmt.Errorf("Free(%#x) of a live %d-byte block: %w", uint64(p), b.size, err)
		}
	}
	return nil
}

func expectPattern(s *cow.Space, p cow.Addr, b block) error {
	got := make([]byte, b.size)
	if _, err := s.ReadAt(got, int64(p)); err != nil {
		return err
	}
	if !bytes.Equal(got, pattern(b.seed, b.size)) {
		return fmt.Errorf("the %d-byte block at %#x lost its contents", b.size, uint64(p))
	}
	return nil
}

// drain checks every live block's contents and the allocator's counts,
// frees them all and checks that nothing is left.
func drain(t testing.TB, s *cow.Space, h *Allocator, m *model) {
	t.Helper()
	check(t, h)
	st, err := h.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var inUse int64
	m.mu.Lock()
	m.live.Scan(func(p cow.Addr, b block) bool {
		inUse += int64(b.size)
		return true
	})
	n := m.live.Len()
	m.mu.Unlock()
	if st.Blocks != int64(n) || st.InUse != inUse {
		t.Fatalf("Stats: %d blocks, %d bytes; the model has %d, %d", st.Blocks, st.InUse, n, inUse)
	}
	for {
		p, b, ok := m.take(rand.New(rand.NewPCG(0, 0)))
		if !ok {
			break
		}
		if err := expectPattern(s, p, b); err != nil {
			t.Fatal(err)
		}
		mustFree(t, h, p)
	}
	if st, _ := h.Stats(); st.Blocks != 0 {
		t.Fatalf("%d blocks left after freeing every live one", st.Blocks)
	}
	check(t, h)
}

// TestModel runs four goroutines of random allocations and frees (half of
// them frees of other goroutines' blocks) against the model, in three folio
// configurations, then once more under GOMAXPROCS(1).
func TestModel(t *testing.T) {
	ops := 3000
	if testing.Short() {
		ops = 600
	}
	run := func(t *testing.T, cfg spacetest.Config) {
		e := spacetest.New(t, 256<<20, 0)
		s := e.Space(cow.Options{Orders: cfg.Orders(e.A.Geometry())})
		h, err := New(s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := &model{}
		errs := make(chan error, 4)
		for g := range 4 {
			go func() { errs <- worker(s, h, m, uint64(g+1), ops, 200, 1<<20) }()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		drain(t, s, h, m)
	}
	for _, cfg := range spacetest.Configs {
		if cfg.Name != "order0" && cfg.Name != "64KiB" && cfg.Name != "all" {
			continue
		}
		t.Run(cfg.Name, func(t *testing.T) { run(t, cfg) })
	}
	t.Run("GOMAXPROCS1", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		run(t, spacetest.Configs[0])
	})
}
