package slab

import (
	"errors"
	"testing"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/internal/spacetest"
)

// FuzzOps runs a sequence of operations decoded from the input against
// the model of live blocks: allocations of any size the arena can hold,
// frees of live blocks, frees and Sizes of addresses near live blocks
// (double frees, interior and stray pointers), Forks whose child takes
// over, and Checks. Every misuse must return a sentinel and change
// nothing; every live block must keep its contents. The seed corpus is in
// testdata/fuzz/FuzzOps.
func FuzzOps(f *testing.F) {
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, data []byte) {
	{
		e := spacetest.New(t, 32<<20, 0)
		s := e.Space(cow.Options{})
		h, err := New(s, Options{ClassReserve: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		m := map[cow.Addr]block{}
		var order []cow.Addr // live blocks in allocation order, for picking
		var freed []cow.Addr
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		pick := func() (cow.Addr, int) {
			if len(order) == 0 {
				return 0, -1
			}
			i := next() % len(order)
			return order[i], i
		}
		for step := 0; len(data) > 0 && step < 300; step++ {
			switch op := next(); op % 8 {
			case 0, 1, 2: // allocate: small, medium or large
				n := 1 + next() | next()<<8
				switch op % 8 {
				case 1:
					n = 1 + n%4096
				case 2:
					n = 1 + n<<2
				default:
					n = 1 + n%256
				}
				p, err := h.Alloc(n)
				if err != nil {
					t.Fatalf("Alloc(%d): %v", n, err)
				}
				size, err := h.Size(p)
				if err != nil || size < n {
					t.Fatalf("Size of Alloc(%d) = %d, %v", n, size, err)
				}
				for q, b := range m {
					if p < q+cow.Addr(b.size) && q < p+cow.Addr(size) {
						t.Fatalf("Alloc(%d) = %#x+%d overlaps %#x+%d", n, uint64(p), size, uint64(q), b.size)
					}
				}
				expectZero(t, s, p, size)
				b := block{n: n, size: size, seed: uint64(step)}
				if _, err := s.WriteAt(pattern(b.seed, size), int64(p)); err != nil {
					t.Fatal(err)
				}
				m[p] = b
				order = append(order, p)
			case 3, 4: // free a live block
				p, i := pick()
				if i < 0 {
					continue
				}
				if err := expectPattern(s, p, m[p]); err != nil {
					t.Fatal(err)
				}
				if err := h.Free(p); err != nil {
					t.Fatalf("Free of a live block: %v", err)
				}
				delete(m, p)
				order = append(order[:i], order[i+1:]...)
				freed = append(freed, p)
			case 5: // a misuse near a live or freed block
				var p cow.Addr
				if q, i := pick(); i >= 0 && next()%2 == 0 {
					p = q + cow.Addr(next()%(m[q].size+8)&^1)
				} else if len(freed) > 0 {
					p = freed[next()%len(freed)]
				} else {
					p = h.Root() + cow.Addr(next()<<12)
				}
				if _, live := m[p]; live {
					continue
				}
				err1 := h.Free(p)
				_, err2 := h.Size(p)
				for _, err := range []error{err1, err2} {
					if !errors.Is(err, ErrNotBlock) && !errors.Is(err, ErrNotAllocated) {
						t.Fatalf("misuse at %#x: %v", uint64(p), err)
					}
				}
			case 6: // fork: the child takes over
				c := e.Fork(s)
				hc, err := Open(c, h.Root())
				if err != nil {
					t.Fatal(err)
				}
				if next()%2 == 0 {
					s.Close()
				}
				s, h = c, hc
			case 7:
				check(t, h)
			}
		}
		for _, p := range order {
			if err := expectPattern(s, p, m[p]); err != nil {
				t.Fatal(err)
			}
		}
		check(t, h)
	}
}
