package cow_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
	"github.com/anonfolio/anonfolio/internal/cputime"
)

// The access benchmarks report each figure against its baseline measured
// in the same run, as the median over interleaved rounds (the machine is
// shared and noisy): ns per operation of ours, of the baseline, and their
// ratio ("x-base").
//
//	go test -run XXX -bench 'Access|SpaceRW' ./cow

// compare runs op and base in 9 interleaved rounds of b.N/9 operations each
// (op first in even rounds, base first in odd ones) and reports the median
// ns per operation of each and the median of the rounds' ratios.
func compare(b *testing.B, unit string, op, base func(i int)) {
	const rounds = 9
	n := max(b.N/rounds, 2000)
	timed := func(f func(int)) float64 {
		start := time.Now()
		for i := range n {
			f(i)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	var ours, theirs, ratio []float64
	for r := range rounds {
		var o, t float64
		if r%2 == 0 {
			o, t = timed(op), timed(base)
		} else {
			t, o = timed(base), timed(op)
		}
		ours, theirs, ratio = append(ours, o), append(theirs, t), append(ratio, o/t)
	}
	b.ReportMetric(median(ours), "ns/"+unit)
	b.ReportMetric(median(theirs), "base-ns/"+unit)
	b.ReportMetric(median(ratio), "x-base")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// accessEnv is a space with size bytes mapped and written, on a populated
// arena (no figure includes the kernel's first touch of our memory), and a
// Go slice of the same size, resident, for the baselines.
type accessEnv struct {
	s    *cow.Space
	addr cow.Addr
	heap []uint64
	idx  []int // random word indexes
}

func newAccessEnv(b *testing.B, size int) *accessEnv {
	b.Helper()
	a, err := folio.NewArena(folio.Config{Size: int64(size) + 16<<20, Populate: true, RetainFree: -1})
	if err != nil {
		b.Fatal(err)
	}
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(); a.Close() })
	addr, err := s.Map(max(size, 2<<20), cow.ProtRead|cow.ProtWrite)
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for off := 0; off < size; off += len(chunk) {
		if _, err := s.WriteAt(chunk[:min(len(chunk), size-off)], int64(addr)+int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	e := &accessEnv{s: s, addr: addr, heap: make([]uint64, size/8), idx: make([]int, 1<<16)}
	for i := range e.heap {
		e.heap[i] = uint64(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range e.idx {
		e.idx[i] = rng.IntN(size / 8)
	}
	return e
}

func (e *accessEnv) word(i int) int { return e.idx[i&(len(e.idx)-1)] }

var sink uint64

// BenchmarkAccessorRandom8: random 8-byte loads and stores through an
// Accessor, against the same on a Go slice, over 64 MiB (memory-bound) and
// over 256 KiB (cache-resident).
func BenchmarkAccessorRandom8(b *testing.B) {
	for _, size := range []int{64 << 20, 256 << 10} {
		e := newAccessEnv(b, size)
		acc := e.s.NewAccessor()
		defer acc.Close()
		b.Run(fmt.Sprintf("load/%dKiB", size>>10), func(b *testing.B) {
			compare(b, "load", func(i int) {
				v, _ := acc.LoadUint64(e.addr + cow.Addr(e.word(i))*8)
				sink += v
			}, func(i int) { sink += e.heap[e.word(i)] })
		})
		b.Run(fmt.Sprintf("store/%dKiB", size>>10), func(b *testing.B) {
			compare(b, "store", func(i int) {
				acc.StoreUint64(e.addr+cow.Addr(e.word(i))*8, uint64(i))
			}, func(i int) { e.heap[e.word(i)] = uint64(i) })
		})
		// StoreUint64 is sync/atomic's store (sequentially consistent: an
		// XCHG on x86-64, which waits for the line), so against the slice
		// with the same store too.
		b.Run(fmt.Sprintf("store-vs-atomic/%dKiB", size>>10), func(b *testing.B) {
			compare(b, "store", func(i int) {
				acc.StoreUint64(e.addr+cow.Addr(e.word(i))*8, uint64(i))
			}, func(i int) { atomic.StoreUint64(&e.heap[e.word(i)], uint64(i)) })
		})
	}
}

// BenchmarkSpaceRW: Space.ReadAt of 8 random bytes against the same from a
// Go slice, and ReadAt/WriteAt of 4 KiB (sequential over 64 MiB) against
// copy().
func BenchmarkSpaceRW(b *testing.B) {
	const size = 64 << 20
	e := newAccessEnv(b, size)
	heap := make([]byte, size)
	for i := range heap {
		heap[i] = byte(i)
	}
	var w [8]byte
	b.Run("ReadAt8/random", func(b *testing.B) {
		compare(b, "read", func(i int) {
			e.s.ReadAt(w[:], int64(e.addr)+int64(e.word(i))*8)
		}, func(i int) {
			off := e.word(i) * 8
			copy(w[:], heap[off:off+8])
		})
	})
	page := make([]byte, 4096)
	pages := size / 4096
	b.Run("ReadAt4KiB", func(b *testing.B) {
		compare(b, "4KiB", func(i int) {
			e.s.ReadAt(page, int64(e.addr)+int64(i%pages)*4096)
		}, func(i int) { copy(page, heap[(i%pages)*4096:]) })
	})
	b.Run("WriteAt4KiB", func(b *testing.B) {
		compare(b, "4KiB", func(i int) {
			e.s.WriteAt(page, int64(e.addr)+int64(i%pages)*4096)
		}, func(i int) { copy(heap[(i%pages)*4096:], page) })
	})
}

// BenchmarkAccessorParallel: two goroutines reading random words through
// Accessors of their own, in one 2 MiB folio or in different ones, against
// one goroutine doing the same: the speedup of the pair ("x-one", wall
// clock: ideally 2 on two idle CPUs, and less whenever other processes
// hold a CPU), and, as a measure of interference that other processes do
// not disturb, the thread CPU time of a read with two goroutines over that
// with one ("cpu2/cpu1": 1 if the readers share nothing; the speedup on
// two idle CPUs is 2 over it). Reads take no reference and write nothing
// shared, so they should not slow each other.
func BenchmarkAccessorParallel(b *testing.B) {
	const size = 64 << 20
	e := newAccessEnv(b, size)
	const span = (2 << 20) / 8 // the words of one 2 MiB folio
	for _, where := range []string{"same-folio", "different-folios"} {
		b.Run(where, func(b *testing.B) {
			// reader reads n words as goroutine g and returns its
			// thread's CPU time per read.
			reader := func(g, n int) float64 {
				acc := e.s.NewAccessor()
				defer acc.Close()
				base := 0
				if where == "different-folios" {
					base = g * 16 * span // 32 MiB apart
				}
				var sum uint64
				ns := cputime.PerOp(n, func(n int) {
					for i := range n {
						v, _ := acc.LoadUint64(e.addr + cow.Addr(base+e.word(i)%span)*8)
						sum += v
					}
				})
				sink += sum
				return ns
			}
			const rounds = 7
			n := max(b.N/rounds, 200000)
			var speedup, cpu1, cpu2 []float64
			for range rounds {
				start := time.Now()
				cpu1 = append(cpu1, reader(0, n))
				one := time.Since(start)
				var wg sync.WaitGroup
				var c [2]float64
				start = time.Now()
				for g := range 2 {
					wg.Go(func() { c[g] = reader(g, n) })
				}
				wg.Wait()
				two := time.Since(start)
				speedup = append(speedup, 2*float64(one)/float64(two))
				cpu2 = append(cpu2, (c[0]+c[1])/2)
			}
			b.ReportMetric(median(speedup), "x-one")
			b.ReportMetric(median(cpu2)/median(cpu1), "cpu2/cpu1")
			b.ReportMetric(0, "ns/op")
		})
	}
}
