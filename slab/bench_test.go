package slab

import (
	"fmt"
	"math/rand/v2"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/cputime"
	"github.com/anonfolio/anonfolio/pin"
)

// The benchmarks of the goals in issue 16. Each reports its figure against
// a baseline measured in the same run, as the median of interleaved rounds:
//
//	go test -run '^$' -bench . -benchtime 1x -count 1 ./slab
//
// (-benchtime 1x: each benchmark does a fixed amount of work per round and
// its own repetitions; ns/op is then the time of the whole thing.)

// benchEnv is an arena, a space and an allocator for a benchmark.
func benchEnv(b *testing.B, arena int64, opts cow.Options) (*cow.Space, *Allocator) {
	b.Helper()
	a, err := folio.NewArena(folio.Config{Size: arena, RetainFree: -1})
	if err != nil {
		b.Fatal(err)
	}
	s, err := cow.NewSpace(a, opts)
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(s, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Close()
		a.Close()
	})
	return s, h
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// timeNs returns how long f(n) takes, in ns per iteration.
func timeNs(n int, f func(n int)) float64 {
	t := time.Now()
	f(n)
	return float64(time.Since(t).Nanoseconds()) / float64(n)
}

// cpuNs returns the CPU time f(n) takes on its thread, in ns per iteration.
func cpuNs(n int, f func(n int)) float64 { return cputime.PerOp(n, f) }

// allocFree allocates and frees an n-byte block k times.
func allocFree(h *Allocator, n, k int) {
	for range k {
		p, err := h.Alloc(n)
		if err != nil {
			panic(err)
		}
		if err := h.Free(p); err != nil {
			panic(err)
		}
	}
}

var sink [1024]*[64]byte

// goNew allocates k [64]byte with new, each kept alive for the next 1023
// allocations (so the collector has live objects to mark).
func goNew(k int) {
	for i := range k {
		sink[i%len(sink)] = new([64]byte)
	}
}

// gcCPU returns the CPU time the collector used so far, in ns.
func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64() * 1e9
}

// viewAccessor reads and writes [base, base+len(mem)) straight in mem, a
// pinned view of it, and the rest through the accessor it wraps. It is
// what a perfect Accessor would cost (a slice access) and is valid only
// while nothing forks, unmaps or remaps the range: for benchmarks only.
type viewAccessor struct {
	accessor
	base cow.Addr
	mem  []byte
}

func (v *viewAccessor) word(addr cow.Addr) *uint64 {
	if off := uint64(addr - v.base); addr >= v.base && off+8 <= uint64(len(v.mem)) {
		return (*uint64)(unsafe.Pointer(&v.mem[off]))
	}
	return nil
}

func (v *viewAccessor) LoadUint64(addr cow.Addr) (uint64, error) {
	if p := v.word(addr); p != nil {
		return atomic.LoadUint64(p), nil
	}
	return v.accessor.LoadUint64(addr)
}

func (v *viewAccessor) StoreUint64(addr cow.Addr, x uint64) error {
	if p := v.word(addr); p != nil {
		atomic.StoreUint64(p, x)
		return nil
	}
	return v.accessor.StoreUint64(addr, x)
}

func (v *viewAccessor) WriteAt(p []byte, off int64) (int, error) {
	if o := uint64(off) - uint64(v.base); off >= int64(v.base) && o+uint64(len(p)) <= uint64(len(v.mem)) {
		return copy(v.mem[o:], p), nil
	}
	return v.accessor.WriteAt(p, off)
}

// viewClass gives the class of n-byte blocks of h (in s, a space of PMD
// folios) a pinned view of its first chunk, its metadata included: what a
// perfect Accessor would cost. It is valid while nothing forks, unmaps or
// remaps the chunk, and while the class stays in its first chunk.
func viewClass(b *testing.B, s *cow.Space, h *Allocator, n int) {
	c := &h.st.cls[classOf(uint64(n))]
	size := 1 << c.geo.chunkShift
	pages, err := pin.Pin(s, c.geo.area, size, pin.Write|pin.Longterm)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pages.Release)
	if len(pages.Bytes()) != 1 {
		b.Fatalf("the chunk is in %d pieces", len(pages.Bytes()))
	}
	c.mu.Lock()
	c.acc = &viewAccessor{c.accessorLocked(), c.geo.area, pages.Bytes()[0]}
	c.mu.Unlock()
}

// BenchmarkAllocFree64: Alloc+Free of a 64-byte block, one goroutine,
// against new([64]byte) with the collector's CPU time per allocation
// added; through the space's Accessor, and with metadata reached through a
// pinned view (the floor a perfect Accessor would give).
func BenchmarkAllocFree64(b *testing.B) {
	const rounds, k = 9, 200_000
	_, h := benchEnv(b, 64<<20, cow.Options{})
	vs, vh := benchEnv(b, 64<<20, cow.Options{Orders: cow.Orders(9)})
	viewClass(b, vs, vh, 64)
	allocFree(h, 64, 1000)
	allocFree(vh, 64, 1000)
	// Thread CPU time: the machine is shared, and the wall clock counts the
	// time other processes hold the CPU. The collector's CPU time (its
	// background workers and assists, all threads) is added to new's.
	var slab, view, gonew, gogc, slabWall, viewWall, newWall []float64
	for range b.N {
		for range rounds {
			slab = append(slab, cpuNs(k, func(n int) { allocFree(h, 64, n) }))
			view = append(view, cpuNs(k, func(n int) { allocFree(vh, 64, n) }))
			g := gcCPU()
			gonew = append(gonew, cpuNs(k, goNew))
			gogc = append(gogc, (gcCPU()-g)/k)
			slabWall = append(slabWall, timeNs(k, func(n int) { allocFree(h, 64, n) }))
			viewWall = append(viewWall, timeNs(k, func(n int) { allocFree(vh, 64, n) }))
			newWall = append(newWall, timeNs(k, goNew))
		}
	}
	newTotal := median(gonew) + median(gogc)
	b.ReportMetric(median(slab), "accessor-ns/pair")
	b.ReportMetric(median(view), "view-ns/pair")
	b.ReportMetric(median(gonew), "new-ns/op")
	b.ReportMetric(median(gogc), "new-gc-ns/op")
	b.ReportMetric(median(slab)/newTotal, "accessor/new+gc")
	b.ReportMetric(median(view)/newTotal, "view/new+gc")
	b.ReportMetric(median(slabWall), "accessor-wall-ns/pair")
	b.ReportMetric(median(viewWall), "view-wall-ns/pair")
	b.ReportMetric(median(newWall), "new-wall-ns/op")
}

// BenchmarkTwoClasses: two goroutines allocating and freeing in different
// classes (64 and 128 bytes) against one goroutine alone, with the
// Accessor and with pinned views. It reports the speedup in pairs
// per second (wall clock: noisy on a shared machine) and, as a measure of
// contention that other processes do not disturb, the thread CPU time of a
// pair with two goroutines over that with one (1 if they share nothing).
func BenchmarkTwoClasses(b *testing.B) {
	for _, view := range []bool{false, true} {
		name := "accessor"
		if view {
			name = "view"
		}
		b.Run(name, func(b *testing.B) {
			k := 200_000
			s, h := benchEnv(b, 64<<20, cow.Options{Orders: cow.Orders(9)})
			if view {
				viewClass(b, s, h, 64)
				viewClass(b, s, h, 128)
			}
			allocFree(h, 64, 100)
			allocFree(h, 128, 100)
			const rounds = 9
			var speedup, cpu1, cpu2 []float64
			for range b.N {
				for range rounds {
					one := timeNs(k, func(n int) { cpu1 = append(cpu1, cpuNs(n, func(n int) { allocFree(h, 64, n) })) })
					two := timeNs(k, func(n int) {
						var wg sync.WaitGroup
						var c [2]float64
						for i, size := range []int{64, 128} {
							wg.Go(func() { c[i] = cpuNs(n, func(n int) { allocFree(h, size, n) }) })
						}
						wg.Wait()
						cpu2 = append(cpu2, (c[0]+c[1])/2)
					})
					speedup = append(speedup, 2*one/two)
				}
			}
			b.ReportMetric(median(speedup), "speedup")
			b.ReportMetric(slices.Min(speedup), "min-speedup")
			b.ReportMetric(slices.Max(speedup), "max-speedup")
			b.ReportMetric(median(cpu2)/median(cpu1), "cpu2/cpu1")
		})
	}
}

// BenchmarkSpaceUsed runs a random workload (each step allocates a block of
// 8 B to 8 KiB, uniform, and writes it whole; then, with probability 1/2,
// frees a random live block) and reports the memory the space uses (its
// resident pages, then with its page tables) over the bytes live, and
// what rounding to classes alone costs, for order-0 pages, for folios up
// to the contpte size, and for the default orders (up to the PMD size: each
// class in use then holds a 2 MiB folio it fills only as it grows).
func BenchmarkSpaceUsed(b *testing.B) {
	for _, tc := range []struct {
		name   string
		orders func(a *folio.Arena) cow.OrderSet
	}{
		{"order0", func(*folio.Arena) cow.OrderSet { return cow.Orders() }},
		{"64KiB", func(a *folio.Arena) cow.OrderSet { return cow.Orders(a.Geometry().ContOrder) }},
		{"default", cow.DefaultOrders},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const steps = 40_000
			for range b.N {
				a, err := folio.NewArena(folio.Config{Size: 1 << 30, RetainFree: -1})
				if err != nil {
					b.Fatal(err)
				}
				s, _ := cow.NewSpace(a, cow.Options{Orders: tc.orders(a)})
				h, err := New(s, Options{})
				if err != nil {
					b.Fatal(err)
				}
				r := rand.New(rand.NewPCG(16, 16))
				type blk struct {
					p cow.Addr
					n int
				}
				var live []blk
				liveBytes := 0
				buf := make([]byte, 8<<10)
				for i := range buf {
					buf[i] = byte(i) | 1
				}
				for range steps {
					n := 8 + r.IntN(8<<10-8+1)
					p, err := h.Alloc(n)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := s.WriteAt(buf[:n], int64(p)); err != nil {
						b.Fatal(err)
					}
					live = append(live, blk{p, n})
					liveBytes += n
					if r.IntN(2) == 0 {
						i := r.IntN(len(live))
						if err := h.Free(live[i].p); err != nil {
							b.Fatal(err)
						}
						liveBytes -= live[i].n
						live[i] = live[len(live)-1]
						live = live[:len(live)-1]
					}
				}
				st := s.Stats()
				hs, err := h.Stats()
				if err != nil {
					b.Fatal(err)
				}
				resident := float64(st.Resident) * float64(s.PageSize())
				b.ReportMetric(resident/float64(liveBytes), "resident/live")
				b.ReportMetric((resident+float64(st.PageTableBytes))/float64(liveBytes), "resident+pt/live")
				b.ReportMetric(float64(hs.InUse)/float64(liveBytes), "inuse/live")
				b.ReportMetric(hs.Fragmentation, "fragmentation")
				b.ReportMetric(float64(liveBytes)/(1<<20), "live-MiB")
				s.Close()
				a.Close()
			}
		})
	}
}

// BenchmarkOpen: Open of an allocator holding 1 Mi blocks (in a fresh Fork,
// so that nothing is cached), against Open of one holding a single block.
func BenchmarkOpen(b *testing.B) {
	const rounds, k = 9, 200
	open := func(s *cow.Space, root cow.Addr, n int) {
		for range n {
			c, err := s.Fork()
			if err != nil {
				panic(err)
			}
			if _, err := Open(c, root); err != nil {
				panic(err)
			}
			c.Close()
		}
	}
	forkOnly := func(s *cow.Space, n int) {
		for range n {
			c, err := s.Fork()
			if err != nil {
				panic(err)
			}
			c.Close()
		}
	}
	big, hb := benchEnv(b, 256<<20, cow.Options{})
	for range 1 << 20 {
		if _, err := hb.Alloc(64); err != nil {
			b.Fatal(err)
		}
	}
	small, hs := benchEnv(b, 16<<20, cow.Options{})
	if _, err := hs.Alloc(64); err != nil {
		b.Fatal(err)
	}
	var obig, osmall []float64
	for range b.N {
		for range rounds {
			// Open's cost: Fork+Open+Close less Fork+Close.
			obig = append(obig, timeNs(k, func(n int) { open(big, hb.Root(), n) })-timeNs(k, func(n int) { forkOnly(big, n) }))
			osmall = append(osmall, timeNs(k, func(n int) { open(small, hs.Root(), n) })-timeNs(k, func(n int) { forkOnly(small, n) }))
		}
	}
	b.ReportMetric(median(obig), "open-1Mi-ns")
	b.ReportMetric(median(osmall), "open-1-ns")
}

// TestAllocFreeAllocates: the common Alloc and Free allocate no Go memory.
func TestAllocFreeAllocates(t *testing.T) {
	e := newEnv(t, 16<<20, cow.Options{}, Options{})
	allocFree(e.h, 64, 10)
	if n := testing.AllocsPerRun(100, func() { allocFree(e.h, 64, 1) }); n != 0 {
		t.Errorf("Alloc+Free of 64 bytes: %v Go allocations", n)
	}
}

// BenchmarkClear: what freeing a block of n bytes costs by overwriting it
// with zeros, against dropping its pages (Advise DontNeed) and faulting
// them back in at the next use: each round dirties the block a page at a
// time, as a user would, then clears it. It is why blocks under eight
// pages are zeroed and larger ones give their pages back (for the memory,
// not the speed).
func BenchmarkClear(b *testing.B) {
	const rounds, k = 9, 2000
	s, _ := benchEnv(b, 64<<20, cow.Options{Orders: cow.Orders()})
	addr, err := s.Map(1<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		b.Fatal(err)
	}
	ps := s.PageSize()
	one := []byte{1}
	for _, n := range []int{ps, 4 * ps, 16 * ps, 64 * ps} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			dirty := func() {
				for off := 0; off < n; off += ps {
					s.WriteAt(one, int64(addr)+int64(off))
				}
			}
			write := func(k int) {
				for range k {
					dirty()
					for off := 0; off < n; off += len(zeros) {
						s.WriteAt(zeros[:min(len(zeros), n-off)], int64(addr)+int64(off))
					}
				}
			}
			drop := func(k int) {
				for range k {
					dirty()
					s.Advise(addr, n, cow.DontNeed)
				}
			}
			var ratio []float64
			for range b.N {
				for range rounds {
					ratio = append(ratio, cpuNs(k, drop)/cpuNs(k, write))
				}
			}
			b.ReportMetric(median(ratio), "dontneed/zero")
		})
	}
}
