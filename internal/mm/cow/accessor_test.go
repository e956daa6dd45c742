package cow

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
	"github.com/anonfolio/anonfolio/internal/testhook"
)

// filledWord returns the word of eight c's.
func filledWord(c byte) uint64 { return binary.LittleEndian.Uint64(fill(c, 8)) }

// invalidation is an event that removes, replaces or write-protects a
// mapping, and what an Accessor that translated the range before must see
// after it.
type invalidation struct {
	name   string
	orders func(g folio.Geometry) OrderSet
	// event runs on a space whose 2 MiB region at addr reads 'o' everywhere
	// (written through s), with an Accessor primed on addr by a read and a
	// write; it returns the space the Accessors should now be checked on
	// (s, or a child).
	event func(t *testing.T, e *env, s *Space, addr Addr) *Space
	// check verifies what an Accessor on s primed before the event sees.
	check func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr)
}

func expectWord(t *testing.T, acc *Accessor, addr Addr, want uint64, wantErr error) {
	t.Helper()
	got, err := acc.LoadUint64(addr)
	switch {
	case wantErr != nil && !errors.Is(err, wantErr):
		t.Fatalf("LoadUint64(%#x) = %#x, %v; want %v", uint64(addr), got, err, wantErr)
	case wantErr == nil && (err != nil || got != want):
		t.Fatalf("LoadUint64(%#x) = %#x, %v; want %#x (a stale translation?)", uint64(addr), got, err, want)
	}
}

func invalidations() []invalidation {
	order0 := func(folio.Geometry) OrderSet { return Orders() }
	pmd := func(g folio.Geometry) OrderSet { return Orders(g.PMDOrder) }
	o, n := filledWord('o'), filledWord('n')
	return []invalidation{
		{"Fork then write", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space { e.fork(s); return s },
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				if err := acc.StoreUint64(addr, n); err != nil {
					t.Fatal(err)
				}
				expectWord(t, acc, addr, n, nil)
				c := e.spaces[len(e.spaces)-1]
				expect(t, c, addr, fill('o', 8)) // the write copied: the child keeps the snapshot
			}},
		{"Unmap", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Unmap(addr, 2<<20); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, 0, ErrFault)
				wantErr(t, acc.StoreUint64(addr, n), ErrFault, "a store after Unmap")
			}},
		{"MapFixed", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.MapFixed(addr, 2<<20, ProtRead|ProtWrite); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) { expectWord(t, acc, addr, 0, nil) }},
		{"Protect read-only", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Protect(addr, 2<<20, ProtRead); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				wantErr(t, acc.StoreUint64(addr, n), ErrProtection, "a store after Protect(read-only)")
				if _, err := acc.AddUint64(addr, 1); !errors.Is(err, ErrProtection) {
					t.Fatalf("an add after Protect(read-only): %v", err)
				}
				if ok, err := acc.CompareAndSwapUint64(addr, o, n); ok || !errors.Is(err, ErrProtection) {
					t.Fatalf("a matching CAS after Protect(read-only): %v, %v; want ErrProtection", ok, err)
				}
				if ok, err := acc.CompareAndSwapUint64(addr, n, o); ok || err != nil {
					t.Fatalf("a CAS that does not match, read-only: %v, %v; want false, nil", ok, err)
				}
				expectWord(t, acc, addr, o, nil)
			}},
		{"Protect none", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Protect(addr, 2<<20, ProtNone); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, 0, ErrProtection)
			}},
		{"Remap", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Remap(addr, 2<<20, addr+4<<20); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, 0, ErrFault)
				expectWord(t, acc, addr+4<<20, o, nil)
			}},
		{"DontNeed", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				for _, p := range checkPages(addr) {
					if err := s.Advise(p, 4096, DontNeed); err != nil {
						t.Fatal(err)
					}
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, 0, nil)
				expectWord(t, acc, addr+4096, o, nil)
			}},
		{"Collapse", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Advise(addr, 2<<20, Collapse); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				if err := acc.StoreUint64(addr, n); err != nil {
					t.Fatal(err)
				}
				expect(t, s, addr, fill('n', 8)) // into the new folio, not the old page
			}},
		{"WriteProtect", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.WriteProtect(addr, 2<<20); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				before := s.Stats().WPReuse
				if err := acc.StoreUint64(addr, n); err != nil {
					t.Fatal(err)
				}
				if got := s.Stats().WPReuse - before; got != 1 {
					t.Fatalf("the store after WriteProtect took %d write faults, want 1 (it must fault)", got)
				}
			}},
		{"copy-on-write of the page", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				e.fork(s)
				for _, p := range checkPages(addr) {
					write(t, s, p, fill('n', 8)) // this space's write copies the page
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) { expectWord(t, acc, addr, n, nil) }},
		{"split of a huge entry", pmd,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				for _, p := range checkPages(addr) {
					if err := s.Advise(p+4096, 4096, DontNeed); err != nil {
						t.Fatal(err)
					}
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr+4096, 0, nil)
				expectWord(t, acc, addr, o, nil)
			}},
		{"leaf unshared by the child's write", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				c := e.fork(s) // shares the leaf; the Accessor is the parent's
				for _, p := range checkPages(addr) {
					write(t, c, p, fill('c', 8))
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, o, nil)
				if err := acc.StoreUint64(addr, n); err != nil {
					t.Fatal(err)
				}
				expect(t, e.spaces[len(e.spaces)-1], addr, fill('c', 8))
			}},
		{"shared leaf dropped by this space", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				c := e.fork(s)
				if err := s.Advise(addr, 2<<20, DontNeed); err != nil { // the parent lets the leaf go
					t.Fatal(err)
				}
				for _, p := range checkPages(addr) {
					write(t, c, p, fill('c', 8))
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) { expectWord(t, acc, addr, 0, nil) }},
		{"Close", order0,
			func(t *testing.T, e *env, s *Space, addr Addr) *Space {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(t *testing.T, e *env, s *Space, acc *Accessor, addr Addr) {
				expectWord(t, acc, addr, 0, ErrClosed)
				wantErr(t, acc.StoreUint64(addr, n), ErrClosed, "a store after Close")
			}},
	}
}

// checkPages are the pages the two Accessors of a test check, one each
// (checks write): the region's first and third.
func checkPages(addr Addr) []Addr { return []Addr{addr, addr + 8192} }

// TestAccessorSeesEveryInvalidation: an Accessor that translated a range
// before an event that removes, replaces or write-protects its mappings
// sees the new state after it, never a stale page: in the goroutine that
// caused the event, and in another goroutine whose Accessor was primed
// before it.
func TestAccessorSeesEveryInvalidation(t *testing.T) {
	for _, inv := range invalidations() {
		t.Run(inv.name, func(t *testing.T) {
			e := newEnv(t, 32<<20)
			s := e.space(inv.orders(e.a.Geometry()))
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			if inv.name == "Remap" {
				mustMap(t, s, 4<<20, ProtRead|ProtWrite) // room above, so that addr+4 MiB is free to move to
				if err := s.Unmap(addr+2<<20, 4<<20); err != nil {
					t.Fatal(err)
				}
			}
			write(t, s, addr, fill('o', 2<<20))
			prime := func(acc *Accessor) {
				for _, p := range checkPages(addr) {
					if v, err := acc.LoadUint64(p); err != nil || v != filledWord('o') {
						t.Fatalf("priming read: %#x, %v", v, err)
					}
					if err := acc.StoreUint64(p+8, filledWord('o')); err != nil {
						t.Fatalf("priming write: %v", err)
					}
				}
			}
			mine := s.NewAccessor()
			defer mine.Close()
			prime(mine)
			theirs := make(chan *Accessor)
			done := make(chan bool)
			go func() { // another goroutine's Accessor, primed before the event
				acc := s.NewAccessor()
				prime(acc)
				theirs <- acc
				<-done
			}()
			other := <-theirs
			defer other.Close()
			sp := inv.event(t, e, s, addr)
			pages := checkPages(addr)
			inv.check(t, e, sp, mine, pages[0])
			checked := make(chan struct{})
			go func() { // each Accessor checks a page of its own: the checks write
				defer close(checked)
				inv.check(t, e, sp, other, pages[1])
			}()
			<-checked
			close(done)
		})
	}
}

// TestSeqlockReadOfReusedPage: a seqlock read that found its page, and is
// stopped before it copies, while the page is unmapped, freed and given to
// another space that writes a secret into it, must not return the secret:
// the translation's generation moved, so the copy is thrown away (and
// cleared from the caller's buffer) and the read retried, which finds the
// page gone and reads zero. Through Space.ReadAt, Accessor.ReadAt and
// Accessor.LoadUint64.
func TestSeqlockReadOfReusedPage(t *testing.T) {
	reads := map[string]func(s *Space, acc *Accessor, addr Addr) []byte{
		"Space.ReadAt": func(s *Space, _ *Accessor, addr Addr) []byte {
			b := make([]byte, 8)
			s.ReadAt(b, int64(addr))
			return b
		},
		"Accessor.ReadAt": func(_ *Space, acc *Accessor, addr Addr) []byte {
			b := make([]byte, 8)
			acc.ReadAt(b, int64(addr))
			return b
		},
		"Accessor.LoadUint64": func(_ *Space, acc *Accessor, addr Addr) []byte {
			v, _ := acc.LoadUint64(addr)
			return binary.LittleEndian.AppendUint64(nil, v)
		},
	}
	for name, readOnce := range reads {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			other := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			theirs := mustMap(t, other, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, fill('o', 8192)) // two pages: the leaf outlives the DontNeed
			acc := s.NewAccessor()
			defer acc.Close()
			acc.LoadUint64(addr) // translate the slot

			paused, resume := pauseFirst(t, testhook.LocklessAfterGrab)
			got := make(chan []byte)
			go func() { got <- readOnce(s, acc, addr) }()
			waitPaused(t, paused)
			if err := s.Advise(addr, 4096, DontNeed); err != nil {
				t.Fatal(err)
			}
			// The freed page is the next one the order-0 cache hands out.
			write(t, other, theirs, fill('S', 4096))
			close(resume)
			if b := <-got; b[0] == 'S' {
				t.Fatalf("the read returned another space's secret %q from a page reused under it", b)
			} else if b[0] != 'o' && b[0] != 0 {
				t.Fatalf("the read returned %q, want the old contents or zeros", b)
			}
		})
	}
}

// TestZapWaitsForLocklessWriter: a reference-free write that found its page
// writable and is stopped before it copies holds no reference; a DontNeed
// of the page must not free it (to be reused by another space) until the
// write is done, or the write lands in the other space's page.
func TestZapWaitsForLocklessWriter(t *testing.T) {
	writes := map[string]func(s *Space, acc *Accessor, addr Addr){
		"Space.WriteAt":        func(s *Space, _ *Accessor, addr Addr) { s.WriteAt(fill('W', 8), int64(addr)) },
		"Accessor.WriteAt":     func(_ *Space, acc *Accessor, addr Addr) { acc.WriteAt(fill('W', 8), int64(addr)) },
		"Accessor.StoreUint64": func(_ *Space, acc *Accessor, addr Addr) { acc.StoreUint64(addr, filledWord('W')) },
	}
	for name, writeOnce := range writes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 16<<20)
			s := e.space(Orders())
			other := e.space(Orders())
			addr := mustMap(t, s, 2<<20, ProtRead|ProtWrite)
			theirs := mustMap(t, other, 2<<20, ProtRead|ProtWrite)
			write(t, s, addr, fill('o', 8192))
			acc := s.NewAccessor()
			defer acc.Close()

			paused, resume := pauseFirst(t, testhook.LocklessAfterRecheck)
			wrote := make(chan struct{})
			go func() { writeOnce(s, acc, addr); close(wrote) }()
			waitPaused(t, paused)
			zapped := make(chan error, 1)
			go func() {
				err := s.Advise(addr, 4096, DontNeed)
				if err == nil {
					// From the goroutine that freed the page: its order-0
					// cache hands the page out next.
					_, err = other.WriteAt(fill('S', 4096), int64(theirs))
				}
				zapped <- err
			}()
			select { // with the bug it is all done at once; fixed, the zap waits for the writer
			case err := <-zapped:
				zapped <- err
			case <-time.After(100 * time.Millisecond):
			}
			close(resume)
			<-wrote
			if err := <-zapped; err != nil {
				t.Fatal(err)
			}
			expect(t, other, theirs, fill('S', 8))
		})
	}
}
