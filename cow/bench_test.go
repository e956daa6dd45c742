package cow_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonfolio/anonfolio/cow"
	"github.com/anonfolio/anonfolio/folio"
)

// BenchmarkAtomicUnderFork: what USING.md promises of the Accessor's atomic
// operations. Two goroutines, each with an Accessor of its own, AddUint64
// the same counter while a third Forks the space back to back (closing
// each child after reading its counter). No increment may be lost, and each
// child must read a value between the increments finished before its Fork
// began and those started by the time it returned, never more than a later
// child (the benchmark fails otherwise). Reported: ns per AddUint64 with
// the Forks running against the same two goroutines with none (the
// baseline, timed first in the same run), and how many Forks each run
// overlapped.
//
//	go test -run XXX -bench AtomicUnderFork -benchtime 1000000x ./cow
func BenchmarkAtomicUnderFork(b *testing.B) {
	a, err := folio.NewArena(folio.Config{Size: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	s, err := cow.NewSpace(a, cow.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Map(2<<20, cow.ProtRead|cow.ProtWrite)
	if err != nil {
		b.Fatal(err)
	}
	const adders = 2
	per := max(b.N/adders, 1000)
	// run has the adders add per times each, forking meanwhile if fork;
	// it returns ns per add and the Forks taken.
	run := func(fork bool, origin int64) (float64, int) {
		var done, started atomic.Int64 // increments finished, and begun
		done.Store(origin)
		started.Store(origin)
		var wg, forker sync.WaitGroup
		stop := make(chan struct{})
		forks := 0
		if fork {
			forker.Add(1)
			go func() {
				defer forker.Done()
				last := uint64(origin)
				for {
					select {
					case <-stop:
						return
					default:
					}
					lo := done.Load()
					c, err := s.Fork()
					hi := started.Load()
					if err != nil {
						b.Error(err)
						return
					}
					acc := c.NewAccessor()
					v, err := acc.LoadUint64(addr)
					acc.Close()
					c.Close()
					if err != nil || int64(v) < lo || int64(v) > hi || v < last {
						b.Errorf("a Fork's child reads %d (err %v): want %d..%d, at least %d", v, err, lo, hi, last)
						return
					}
					last = v
					forks++
				}
			}()
		}
		start := time.Now()
		for range adders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acc := s.NewAccessor()
				defer acc.Close()
				for range per {
					started.Add(1)
					if _, err := acc.AddUint64(addr, 1); err != nil {
						b.Error(err)
						return
					}
					done.Add(1)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(stop)
		forker.Wait()
		return float64(elapsed.Nanoseconds()) / float64(adders*per), forks
	}
	acc := s.NewAccessor()
	defer acc.Close()
	b.ResetTimer()
	base, _ := run(false, 0)
	ours, forks := run(true, int64(adders*per))
	b.StopTimer()
	if v, err := acc.LoadUint64(addr); err != nil || v != uint64(2*adders*per) {
		b.Fatalf("the counter reads %d (err %v) after %d increments: some were lost", v, err, 2*adders*per)
	}
	b.ReportMetric(ours, "ns/add")
	b.ReportMetric(base, "nofork-ns/add")
	b.ReportMetric(float64(forks), "forks")
}
