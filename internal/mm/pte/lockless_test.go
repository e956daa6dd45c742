package pte

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/internal/mm/folio"
)

func stressDuration() time.Duration {
	if testing.Short() {
		return 100 * time.Millisecond
	}
	return 400 * time.Millisecond
}

// TestLocklessGetNeverTorn flips a folded block between two states whose
// access bits give a torn read away: read-write with only entry 0 dirty,
// and read-only with only the last entry young. The writer rewrites entries
// one at a time (as a whole-block permission change does), and now and then
// unfolds and refolds the block (break-before-make). A lockless reader must
// only ever get none, an unfolded entry, or a Cont entry whose gathered
// access bits belong to the permission it reports: RW ⇒ dirty and not
// young, RO ⇒ young and not dirty. Anything else is a torn block.
func TestLocklessGetNeverTorn(t *testing.T) {
	for _, pageSize := range []int{4096, 16384, 65536} {
		t.Run(folioSize(pageSize), func(t *testing.T) {
			l := testLeaf(t, pageSize, 9)
			n := l.contPTEs()
			const base = folio.PFN(0x1000) // aligned for every block size here
			rw := func(k int) PTE {
				p := Mk(base+folio.PFN(k), Present|Write|Cont)
				if k == 0 {
					p |= Dirty
				}
				return p
			}
			ro := func(k int) PTE {
				p := Mk(base+folio.PFN(k), Present|Cont)
				if k == n-1 {
					p |= Young
				}
				return p
			}
			l.Lock()
			l.SetPTEs(0, Mk(base, Present|Write|Dirty), n)
			l.Unlock()

			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 0; !stop.Load(); round++ {
					l.Lock()
					state := rw
					if round%2 == 1 {
						state = ro
					}
					for k := range n {
						l.entry(k).Store(uint64(state(k)))
					}
					if round%5 == 0 {
						l.unfold(0)
						l.TryFold(0)
					}
					l.Unlock()
				}
			}()
			var cont, unfolded, none [2]int // index: read-only, writable
			var readers sync.WaitGroup
			for w := range 2 {
				readers.Add(1)
				go func() {
					defer readers.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 3))
					for !stop.Load() {
						i := rng.IntN(n)
						p := l.GetLockless(i)
						switch {
						case p.None():
							none[w]++
						case p.PFN() != base+folio.PFN(i):
							t.Errorf("entry %d read pfn %#x", i, p.PFN())
						case !p.Cont():
							unfolded[w]++
						case p.Write() && (!p.Dirty() || p.Young()), !p.Write() && (p.Dirty() || !p.Young()):
							t.Errorf("torn block: entry %d read %v", i, p)
						default:
							cont[w]++
						}
					}
				}()
			}
			time.Sleep(stressDuration())
			stop.Store(true)
			readers.Wait()
			wg.Wait()
			if cont[0]+cont[1] == 0 {
				t.Fatal("no folded read at all: the test exercised nothing")
			}
			t.Logf("reads: %d folded, %d unfolded, %d none", cont[0]+cont[1], unfolded[0]+unfolded[1], none[0]+none[1])
		})
	}
}

func folioSize(pageSize int) string {
	return map[int]string{4096: "4KiB", 16384: "16KiB", 65536: "64KiB"}[pageSize]
}

// TestLocklessWalkDuringHugeSplit installs a huge entry, splits it to a leaf
// and tears the leaf down, over and over, while lockless walkers look the
// address up. Whenever the slot was mapped for the whole of a lookup (the
// writer's phase counter did not move and was odd), the lookup must find the
// mapping, through the huge entry or the leaf: the split publishes the leaf
// before it clears the huge entry.
func TestLocklessWalkDuringHugeSplit(t *testing.T) {
	tb := New(geometry(t, 4096), uniformFolios(9), 1)
	const addr = 7 << 21
	d := tb.DirAlloc(addr)
	i := d.Index(addr)
	const pfn = folio.PFN(0x800)
	var phase atomic.Uint64 // odd: the slot maps pfn
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			d.Lock()
			if !d.SetHugeLocked(i, Mk(pfn, Present|Write)) {
				panic("slot not empty")
			}
			phase.Add(1) // mapped from here...
			d.SplitHugeLocked(i)
			phase.Add(1) // ...to here
			l := d.Leaf(i)
			l.Lock()
			l.Clear(0, l.Len())
			l.Unlock()
			d.FreeLeafLocked(i)
			d.Unlock()
		}
	}()
	var found, checked atomic.Int64
	var readers sync.WaitGroup
	for w := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for !stop.Load() {
				k := rng.IntN(512)
				p1 := phase.Load()
				var p PTE
				if h := d.Huge(i); h.Present() {
					p = h.Advance(k)
				} else if l := d.Leaf(i); l != nil {
					p = l.GetLockless(k)
				}
				p2 := phase.Load()
				if p1 != p2 || p1%2 == 0 {
					continue
				}
				checked.Add(1)
				if !p.Present() || p.PFN() != pfn+folio.PFN(k) {
					t.Errorf("lookup of page %d while mapped found %v", k, p)
					return
				}
				found.Add(1)
			}
		}()
	}
	time.Sleep(stressDuration())
	stop.Store(true)
	readers.Wait()
	wg.Wait()
	if checked.Load() == 0 {
		t.Fatal("no lookup fell inside a mapped phase: the test exercised nothing")
	}
	t.Logf("%d lookups inside a mapped phase", checked.Load())
}

// TestRunLockless checks RunLockless against the entry-by-entry walk it
// replaces, from every start and for every bound, over a leaf that mixes
// folded blocks, single entries, a PFN break, a permission change and holes.
func TestRunLockless(t *testing.T) {
	for _, pageSize := range []int{4096, 65536} {
		t.Run(folioSize(pageSize), func(t *testing.T) {
			l := testLeaf(t, pageSize, 9)
			c := l.contPTEs()
			const base = folio.PFN(0x10000)
			l.Lock()
			l.SetPTEs(0, Mk(base, Present|Write), 3*c)                  // three folded blocks
			l.SetPTEs(3*c, Mk(base+folio.PFN(3*c), Present|Write), 4)   // continued by singles
			l.SetPTEs(3*c+4, Mk(base+folio.PFN(5*c), Present|Write), 1) // a PFN break
			l.SetPTEs(4*c, Mk(base+folio.PFN(4*c), Present), c)         // read-only, folded
			l.SetPTEs(5*c, Mk(base+folio.PFN(5*c), Present|Write), c)   // writable again
			l.Unlock()
			if !l.GetRaw(0).Cont() || l.GetRaw(3*c).Cont() {
				t.Fatal("the layout did not fold as intended")
			}
			naive := func(i, max int, e PTE) int {
				n := 1
				for n < max && i+n < l.Len() && SameMapping(l.GetLockless(i+n), e.Advance(n)) {
					n++
				}
				return n
			}
			for i := 0; i < 6*c+2; i++ {
				e := l.GetLockless(i)
				if e.None() {
					continue
				}
				for max := 1; max <= min(l.Len()-i, 7*c); max++ {
					if got, want := l.RunLockless(i, max, e), naive(i, max, e); got != want {
						t.Fatalf("RunLockless(%d, %d) = %d, the entry walk gives %d", i, max, got, want)
					}
				}
			}
			if got := l.RunLockless(0, l.Len(), l.GetLockless(0)); got != 3*c+4 {
				t.Errorf("run from 0 = %d, want the %d pages up to the PFN break", got, 3*c+4)
			}
			// RunRaw is the same walk, entry by entry as stored, and 0 when
			// the first entry does not match either.
			for i := 0; i < 6*c+2; i++ {
				e := l.GetLockless(i)
				if e.None() {
					continue
				}
				for max := 1; max <= min(l.Len()-i, 7*c); max++ {
					if got, want := l.RunRaw(i, max, e), naive(i, max, e); got != want {
						t.Fatalf("RunRaw(%d, %d) = %d, the entry walk gives %d", i, max, got, want)
					}
				}
			}
			if got := l.RunRaw(0, 4, l.GetLockless(0).WrProtect()); got != 0 {
				t.Errorf("RunRaw of a permission the entry does not have = %d, want 0", got)
			}
			if got := l.RunRaw(l.Len()-1, 8, Mk(base, Present|Write)); got != 0 {
				t.Errorf("RunRaw of a page at a none entry, max past the leaf's end = %d, want 0", got)
			}
		})
	}
}
